"""GET /jobs/updates/: jobs whose status changed in the range, with their input files."""

from urllib.parse import quote

import pytest

from core.times import format_ms
from tests.responses import FILE_KEYS, JOB_KEYS, assert_plain_error

T0 = 1_700_000_000_000
HOUR = 3_600_000


async def three_jobs(make):
    """Status changes at T0+2h, T0, T0+1h; last_modified in the opposite order."""
    job_type = await make.job_type()
    jobs = [await make.pending(job_type) for _ in range(3)]
    for job, changed, modified in zip(jobs, (2, 0, 1), (0, 2, 1), strict=True):
        await make.touch(job["id"], T0 + 10 * HOUR + modified * HOUR, T0 + changed * HOUR)
    return jobs


def ids(body):
    return [row["id"] for row in body["results"]]


@pytest.mark.gen_test
async def test_default_order_is_last_status_change(api, make):
    jobs = await three_jobs(make)
    status, body, _ = await api.get("/jobs/updates/")
    assert status == 200 and body["count"] == 3
    assert ids(body) == [jobs[1]["id"], jobs[2]["id"], jobs[0]["id"]]
    _, listed, _ = await api.get("/jobs/")
    assert ids(listed) == [jobs[0]["id"], jobs[2]["id"], jobs[1]["id"]]
    _, body, _ = await api.get("/jobs/updates/?order=-last_status_change")
    assert ids(body) == [jobs[0]["id"], jobs[2]["id"], jobs[1]["id"]]


@pytest.mark.gen_test
async def test_range_filters_on_last_status_change(api, make):
    jobs = await three_jobs(make)
    start, end = quote(format_ms(T0 + HOUR)), quote(format_ms(T0 + 2 * HOUR))
    _, body, _ = await api.get(f"/jobs/updates/?started={start}&ended={end}")
    assert ids(body) == [jobs[2]["id"]]
    _, body, _ = await api.get(f"/jobs/updates/?started={start}")
    assert ids(body) == [jobs[2]["id"], jobs[0]["id"]]
    # The same range over last_modified (which /jobs/ uses) matches none of them.
    _, listed, _ = await api.get(f"/jobs/?started={start}&ended={end}")
    assert listed["count"] == 0


@pytest.mark.gen_test
async def test_status_change_through_a_transition_shows_up(api, make):
    job_type = await make.job_type()
    job = await make.pending(job_type)
    await make.touch(job["id"], T0, T0)
    _, body, _ = await api.get("/jobs/updates/?started=PT1H")
    assert body["count"] == 0
    await make.store.jobs.queue_job(job["id"])
    _, body, _ = await api.get("/jobs/updates/?started=PT1H")
    assert ids(body) == [job["id"]] and body["results"][0]["status"] == "QUEUED"


@pytest.mark.gen_test
async def test_rows_add_input_files(api, make, base_url):
    store = make.store
    job_type = await make.job_type(interface={
        "command": "x", "command_arguments": "", "input_data": [{"name": "f", "type": "files"}]})
    workspace = await store.files.create_workspace("raw", "Raw", "/raw")
    files = [await store.files.create_file(workspace["id"], n, "text/plain", 1, n)
             for n in ("a.txt", "b.txt")]
    data = {"input_data": [{"name": "f", "file_ids": [f["id"] for f in files]}]}
    job, _ = await make.queued(job_type, data, input_file_ids=[f["id"] for f in files])
    bare = await make.pending(job_type)
    _, body, _ = await api.get("/jobs/updates/?order=id")
    rows = body["results"]
    assert [list(r) for r in rows] == [[*JOB_KEYS, "input_files"]] * 2
    assert rows[0]["id"] == job["id"]
    assert [f["file_name"] for f in rows[0]["input_files"]] == ["a.txt", "b.txt"]
    assert list(rows[0]["input_files"][0]) == FILE_KEYS
    assert rows[0]["input_files"][0]["workspace"] == {"id": workspace["id"], "name": "raw"}
    assert rows[0]["input_files"][0]["url"] == f"{base_url}/files/{files[0]['id']}/download/"
    assert rows[1]["id"] == bare["id"] and rows[1]["input_files"] == []


@pytest.mark.gen_test
async def test_filters_and_errors_match_jobs_list(api, make):
    type1 = await make.job_type("test1", category="test-1")
    type2 = await make.job_type("test2", category="test-2")
    running, _ = await make.running(type1)
    pending = await make.pending(type2)
    for query, want in (("status=RUNNING", running), ("job_type_name=test2", pending),
                        (f"job_id={pending['id']}", pending),
                        (f"job_type_id={type1['id']}", running),
                        ("job_type_category=test-2", pending)):
        _, body, _ = await api.get(f"/jobs/updates/?{query}")
        assert ids(body) == [want["id"]], query
    for query, fragment in (("status=DONE", "status 'DONE'"), ("job_id=x", "job_id"),
                            ("started=2020-01-01T00:00:00", "started"),
                            ("order=bogus", "order 'bogus'"), ("page_size=5000", "page_size")):
        status, body, headers = await api.get(f"/jobs/updates/?{query}")
        assert_plain_error(status, body, headers, 400, fragment)
