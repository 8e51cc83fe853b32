"""GET /jobs/: filters, order, pagination, time ranges and the exact row shape."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from core.times import format_ms, now_ms
from store import Store
from tests.commands import AGGREGATES
from tests.responses import (
    ERROR_BASE_KEYS,
    JOB_KEYS,
    JOB_TYPE_BASE_KEYS,
    TIME_FORMAT,
    assert_plain_error,
)

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z
HOUR = 3_600_000


async def scale_pair(make):
    """Scale's JobsViewTest fixture: test1/test-1 RUNNING and test2/test-2 PENDING."""
    type1 = await make.job_type("test1", "1.0", "test-1")
    type2 = await make.job_type("test2", "1.0", "test-2")
    running, _ = await make.running(type1)
    pending = await make.pending(type2)
    return type1, type2, running, pending


def ids(body) -> list[int]:
    return [row["id"] for row in body["results"]]


@pytest.mark.gen_test
async def test_lists_all_jobs_with_their_types(api, make):
    await scale_pair(make)
    status, body, _ = await api.get("/jobs/")
    assert status == 200
    assert body["count"] == 2
    assert {row["job_type"]["name"] for row in body["results"]} == {"test1", "test2"}


@pytest.mark.gen_test
@pytest.mark.parametrize("query, expected", [
    ("status=RUNNING", "running"), ("status=PENDING", "pending"),
    ("job_type_name=test1", "running"), ("job_type_name=test2", "pending"),
    ("job_type_category=test-1", "running"), ("job_type_category=test-2", "pending"),
])
async def test_scale_filters_pick_one_job(api, make, query, expected):
    _, _, running, pending = await scale_pair(make)
    status, body, _ = await api.get(f"/jobs/?{query}")
    assert status == 200
    want = running if expected == "running" else pending
    assert body["count"] == 1
    assert ids(body) == [want["id"]]
    assert body["results"][0]["status"] == want["status"]


@pytest.mark.gen_test
async def test_job_id_and_job_type_id_filters(api, make):
    type1, type2, running, pending = await scale_pair(make)
    _, body, _ = await api.get(f"/jobs/?job_id={running['id']}")
    assert ids(body) == [running["id"]]
    _, body, _ = await api.get(f"/jobs/?job_type_id={type2['id']}")
    assert ids(body) == [pending["id"]]
    assert body["results"][0]["job_type"]["id"] == type2["id"]
    _, body, _ = await api.get(f"/jobs/?job_type_id={type1['id']}&job_type_name=test2")
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.gen_test
async def test_repeated_filters_are_or(api, make):
    type1, type2, running, pending = await scale_pair(make)
    queued, _ = await make.queued(type1)
    _, body, _ = await api.get("/jobs/?status=RUNNING&status=PENDING&order=id")
    assert ids(body) == [running["id"], pending["id"]]
    _, body, _ = await api.get(f"/jobs/?job_id={pending['id']}&job_id={queued['id']}&order=id")
    assert ids(body) == [pending["id"], queued["id"]]
    _, body, _ = await api.get(f"/jobs/?job_type_id={type1['id']}&job_type_id={type2['id']}")
    assert body["count"] == 3
    _, body, _ = await api.get("/jobs/?job_type_name=test1&job_type_name=test2")
    assert body["count"] == 3
    _, body, _ = await api.get("/jobs/?job_type_category=test-2&job_type_category=nope")
    assert ids(body) == [pending["id"]]


@pytest.mark.gen_test
async def test_scale_order_by_name_then_version_descending(api, make):
    """Scale's test_order_by: test1 3.0, 2.0, 1.0, then test2 1.0."""
    made = {}
    for name, version in (("test1", "1.0"), ("test2", "1.0"), ("test1", "3.0"),
                          ("test1", "2.0")):
        job_type = await make.job_type(name, version, f"cat-{name}")
        made[(name, version)] = (await make.pending(job_type))["id"]
    status, body, _ = await api.get("/jobs/?order=job_type__name&order=-job_type__version")
    assert status == 200
    assert [(r["job_type"]["name"], r["job_type"]["version"]) for r in body["results"]] == [
        ("test1", "3.0"), ("test1", "2.0"), ("test1", "1.0"), ("test2", "1.0")]
    assert ids(body) == [made[("test1", "3.0")], made[("test1", "2.0")],
                         made[("test1", "1.0")], made[("test2", "1.0")]]
    _, dotted, _ = await api.get("/jobs/?order=job_type.name&order=-job_type.version")
    assert ids(dotted) == ids(body)


@pytest.mark.gen_test
async def test_default_order_is_last_modified_then_id(api, make):
    job_type = await make.job_type()
    jobs = [await make.pending(job_type) for _ in range(4)]
    await make.touch(jobs[0]["id"], T0 + 3 * HOUR)
    await make.touch(jobs[1]["id"], T0 + HOUR)
    await make.touch(jobs[2]["id"], T0 + 2 * HOUR)
    await make.touch(jobs[3]["id"], T0 + HOUR)
    _, body, _ = await api.get("/jobs/")
    assert ids(body) == [jobs[1]["id"], jobs[3]["id"], jobs[2]["id"], jobs[0]["id"]]
    _, body, _ = await api.get("/jobs/?order=-last_modified")  # ties: newest id first
    assert ids(body) == [jobs[0]["id"], jobs[2]["id"], jobs[3]["id"], jobs[1]["id"]]
    _, body, _ = await api.get("/jobs/?order=-id")
    assert ids(body) == [j["id"] for j in reversed(jobs)]


@pytest.mark.gen_test
async def test_order_by_priority_and_status(api, make):
    low = await make.job_type("low", priority=5)
    high = await make.job_type("high", priority=1)
    first = await make.pending(low)
    second, _ = await make.running(high)
    _, body, _ = await api.get("/jobs/?order=priority")
    assert ids(body) == [second["id"], first["id"]]
    _, body, _ = await api.get("/jobs/?order=-status")
    assert [r["status"] for r in body["results"]] == ["RUNNING", "PENDING"]


@pytest.mark.gen_test
async def test_unknown_order_field_lists_the_allowed_ones(api):
    status, body, headers = await api.get("/jobs/?order=-data")
    assert_plain_error(status, body, headers, 400, "order '-data'", "job_type__name",
                       "last_modified", "priority")


@pytest.mark.gen_test
async def test_row_has_exactly_the_documented_keys_and_base_forms(api, make):
    job_type = await make.job_type("kml", "1.0.0", "footprints", title="KML", icon_code="f0ac")
    job, _ = await make.failed(job_type)
    error = await make.store.errors.by_name("algorithm-unknown")
    _, body, _ = await api.get("/jobs/")
    row = body["results"][0]
    assert list(row) == JOB_KEYS
    assert list(row["job_type"]) == JOB_TYPE_BASE_KEYS
    assert row["job_type"] == {
        "id": job_type["id"], "name": "kml", "version": "1.0.0", "title": "KML",
        "description": None, "category": "footprints", "author_name": None, "author_url": None,
        "is_system": False, "is_long_running": False, "is_active": True,
        "is_operational": True, "is_paused": False, "icon_code": "f0ac"}
    assert row["job_type_rev"] == {"id": job_type["job_type_rev_id"],
                                   "job_type": {"id": job_type["id"]}, "revision_num": 1}
    assert list(row["event"]) == ["id", "type", "rule", "occurred"]
    assert row["event"]["type"] == "USER" and row["event"]["rule"] is None
    assert TIME_FORMAT.match(row["event"]["occurred"])
    assert list(row["error"]) == ERROR_BASE_KEYS
    assert row["error"] == {"id": error["id"], "name": "algorithm-unknown",
                            "title": error["title"], "description": error["description"],
                            "category": "ALGORITHM"}
    assert row["status"] == "FAILED"
    assert (row["priority"], row["num_exes"], row["timeout"], row["max_tries"]) == (
        100, 1, 1800, 3)
    assert (row["cpus_required"], row["mem_required"]) == (1.0, 128.0)
    assert (row["disk_in_required"], row["disk_out_required"]) == (0.0, 64.0)
    for key in ("created", "queued", "started", "ended", "last_status_change",
                "last_modified"):
        assert TIME_FORMAT.match(row[key]), (key, row[key])
    stored = await make.store.jobs.get_job(job["id"])
    assert row["ended"] == format_ms(stored["ended"])


@pytest.mark.gen_test
async def test_pending_row_has_null_times_and_null_error(api, make):
    job = await make.pending(await make.job_type())
    _, body, _ = await api.get("/jobs/")
    row = body["results"][0]
    assert (row["error"], row["queued"], row["started"], row["ended"]) == (None,) * 4
    assert row["created"] == format_ms(job["created"])
    assert row["status"] == "PENDING" and row["num_exes"] == 0


# -- pagination -------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_pagination_counts_and_absolute_links(api, make, base_url):
    job_type = await make.job_type()
    jobs = [await make.pending(job_type) for _ in range(5)]
    status, body, _ = await api.get("/jobs/?page_size=2&order=id&status=PENDING")
    assert status == 200
    assert body["count"] == 5 and ids(body) == [jobs[0]["id"], jobs[1]["id"]]
    assert body["previous"] is None
    assert body["next"] == f"{base_url}/jobs/?page_size=2&order=id&status=PENDING&page=2"
    _, body, _ = await api.get(body["next"].removeprefix(base_url))
    assert ids(body) == [jobs[2]["id"], jobs[3]["id"]]
    assert body["previous"] == f"{base_url}/jobs/?page_size=2&order=id&status=PENDING&page=1"
    assert body["next"] == f"{base_url}/jobs/?page_size=2&order=id&status=PENDING&page=3"
    _, body, _ = await api.get("/jobs/?page_size=2&order=id&status=PENDING&page=3")
    assert ids(body) == [jobs[4]["id"]] and body["next"] is None
    assert body["previous"].endswith("page=2")


@pytest.mark.gen_test
async def test_default_page_size_is_100_and_1000_is_allowed(api, make):
    job_type = await make.job_type()
    await make.bulk_jobs(job_type, [T0 + i for i in range(1, 102)], event=await make.event())
    _, body, _ = await api.get("/jobs/")
    assert body["count"] == 101 and len(body["results"]) == 100
    assert ids(body) == list(range(1, 101))
    assert body["next"].endswith("/jobs/?page=2")
    _, body, _ = await api.get("/jobs/?page=2")
    assert ids(body) == [101] and body["next"] is None
    _, body, _ = await api.get("/jobs/?page_size=1000")
    assert len(body["results"]) == 101 and body["next"] is None


@pytest.mark.gen_test
async def test_page_one_of_nothing_is_empty_but_later_pages_are_404(api, make):
    status, body, _ = await api.get("/jobs/?status=COMPLETED")
    assert (status, body) == (200, {"count": 0, "next": None, "previous": None, "results": []})
    status, body, headers = await api.get("/jobs/?page=2")
    assert_plain_error(status, body, headers, 404, "page 2")
    job_type = await make.job_type()
    await make.pending(job_type)
    status, body, headers = await api.get("/jobs/?page=2")
    assert_plain_error(status, body, headers, 404, "page 2 is past the last page of 1")
    status, body, headers = await api.get("/jobs/?page=99999999999999999999")
    assert_plain_error(status, body, headers, 404, "past the last page")


@pytest.mark.gen_test
@pytest.mark.parametrize("query, fragment", [
    ("page=0", "page must be"), ("page=-1", "page must be"), ("page=abc", "page must be an"),
    ("page=1.5", "page must be an integer"), ("page_size=0", "page_size must be from 1 to 1000"),
    ("page_size=1001", "page_size must be from 1 to 1000"), ("page_size=x", "page_size"),
    ("job_id=abc", "job_id must be an integer"), ("job_type_id=1e3", "job_type_id"),
    ("job_id=99999999999999999999", "job_id 99999999999999999999 is out of range"),
    ("job_type_id=-99999999999999999999", "job_type_id"),
    ("status=running", ("status 'running' is not valid; choose from PENDING, BLOCKED, QUEUED, "
                        "RUNNING, FAILED, COMPLETED, CANCELED")),
    ("status=%FF", "status"), ("job_type_name=%FF%FE", "job_type_name"),
])
async def test_bad_query_arguments_are_plain_400s(api, query, fragment):
    status, body, headers = await api.get(f"/jobs/?{query}")
    assert_plain_error(status, body, headers, 400, fragment)


# -- started / ended ----------------------------------------------------------------------------


async def three_jobs_at(make, *offsets):
    job_type = await make.job_type()
    jobs = []
    for offset in offsets:
        job = await make.pending(job_type)
        await make.touch(job["id"], T0 + offset)
        jobs.append(job)
    return jobs


@pytest.mark.gen_test
async def test_started_and_ended_filter_last_modified(api, make):
    early, middle, late = await three_jobs_at(make, 0, HOUR, 2 * HOUR)
    start = quote(format_ms(T0 + HOUR))
    end = quote(format_ms(T0 + 2 * HOUR))
    _, body, _ = await api.get(f"/jobs/?started={start}")
    assert ids(body) == [middle["id"], late["id"]]
    _, body, _ = await api.get(f"/jobs/?ended={end}")
    assert ids(body) == [early["id"], middle["id"]]
    _, body, _ = await api.get(f"/jobs/?started={start}&ended={end}")
    assert ids(body) == [middle["id"]]
    offset = quote("2023-11-14T23:13:20+01:00")  # T0 written in another zone
    _, body, _ = await api.get(f"/jobs/?started={offset}")
    assert ids(body) == [early["id"], middle["id"], late["id"]]


@pytest.mark.gen_test
@pytest.mark.parametrize("duration, back", [
    ("PT3H0M0S", timedelta(hours=3)), ("P1D", timedelta(days=1)), ("P1W", timedelta(weeks=1))])
async def test_durations_mean_now_minus_the_duration(api, make, duration, back):
    now = now_ms()
    inside = back.total_seconds() * 1000 - HOUR
    outside = back.total_seconds() * 1000 + HOUR
    old, recent = await three_jobs_at(make, 0, 0)
    await make.touch(old["id"], int(now - outside))
    await make.touch(recent["id"], int(now - inside))
    _, body, _ = await api.get(f"/jobs/?started={duration}")
    assert ids(body) == [recent["id"]]
    _, body, _ = await api.get(f"/jobs/?ended={duration}")
    assert ids(body) == [old["id"]]


@pytest.mark.gen_test
@pytest.mark.parametrize("query, fragment", [
    ("started=2015-01-01T00:00:00", "started: '2015-01-01T00:00:00' has no timezone"),
    ("ended=2015-01-01", "ended:"),
    ("started=yesterday", "started: 'yesterday' is not an ISO-8601"),
    ("ended=P1X", "ended:"),
    ("started=P99999999999Y", "started:"),
    ("started=PT99999999999999999999S", "started:"),
    ("started=2015-01-02T00:00:00Z&ended=2015-01-01T00:00:00Z", "started must be before ended"),
    ("started=2015-01-01T00:00:00Z&ended=2015-01-01T00:00:00Z", "started must be before ended"),
    ("started=P1D&ended=P2D", "started must be before ended"),
])
async def test_bad_time_ranges_are_plain_400s(api, query, fragment):
    status, body, headers = await api.get(f"/jobs/?{query.replace('+', '%2B')}")
    assert_plain_error(status, body, headers, 400, fragment)


@pytest.mark.gen_test
async def test_times_are_utc_with_milliseconds(api, make):
    job = await make.pending(await make.job_type())
    moment = int(datetime(2015, 8, 28, 17, 55, 41, 5000, tzinfo=UTC).timestamp() * 1000)
    await make.touch(job["id"], moment)
    _, body, _ = await api.get("/jobs/")
    assert body["results"][0]["last_modified"] == "2015-08-28T17:55:41.005Z"


@pytest.mark.gen_test
async def test_a_repeated_order_field_counts_once(api, make):
    job_type = await make.job_type()
    jobs = [await make.pending(job_type) for _ in range(2)]
    status, body, _ = await api.get("/jobs/?order=-id&order=id&order=job_type.id")
    assert status == 200 and ids(body) == [jobs[1]["id"], jobs[0]["id"]]




@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/jobs/", "/jobs/updates/", "/jobs/executions/"])
@pytest.mark.parametrize("counters", ["read", "kept"])
async def test_totals_by_status_and_job_type_are_the_kept_counts_even_mid_fold(
        api, make, store, path, counters):
    """A job list's total with no filter, by status or by job type reads the kept counts (no
    count over the jobs), and equals the rows even when another process folds after the counters
    document the read uses: read in this request, right before that fold (the chaos test once
    saw 1049 of 1050), or `kept` from before it."""
    convert, fetch = await make.job_type("convert"), await make.job_type("fetch")
    for _ in range(3):
        await make.queued(convert)
    await make.running(fetch)
    await make.completed(convert)
    await store.counts.fold_all()
    await make.queued(fetch)
    await make.pending(convert)
    other = await Store(store.db._url, store.db.db.name).open()
    read_counters = store.counts.read_counters

    async def read_then_fold():
        doc = await read_counters()
        await other.counts.fold_all()
        return doc

    try:
        for query, matching in [
                ("", {}), ("?status=QUEUED", {"status": "QUEUED"}),
                ("?status=RUNNING", {"status": "RUNNING"}),
                ("?status=QUEUED&status=PENDING", {"status": {"$in": ["QUEUED", "PENDING"]}}),
                ("?job_type_name=fetch", {"job_type_id": fetch["id"]}),
                (f"?job_type_id={convert['id']}", {"job_type_id": convert["id"]}),
                (f"?job_type_id={fetch['id']}&status=QUEUED",
                 {"job_type_id": fetch["id"], "status": "QUEUED"})]:
            if counters == "read":
                store.counts.counters_doc = None
                store.counts.read_counters = read_then_fold
                await make.queued(fetch)  # one more job for the fold between the two reads
            else:
                kept = await read_counters()
                await make.queued(fetch)
                await other.counts.fold_all()
                store.counts.counters_doc = kept
            AGGREGATES.clear()
            status, body, _ = await api.get(f"{path}{query}")
            assert (status, "jobs" in AGGREGATES.on) == (200, False)
            assert body["count"] == len(body["results"]) == \
                await store.db["jobs"].count_documents(matching), query
    finally:
        store.counts.read_counters = read_counters
        await other.close()
