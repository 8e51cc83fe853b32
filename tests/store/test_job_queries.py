"""JobStore's read side: list_jobs filters, orders, paging and counts; executions; queue status."""

import asyncio

import pytest

from core.times import now_ms
from store.counts import MINUTE_MS
from store.jobs import JOB_ORDER_FIELDS, JobFilter
from tests.fixtures import JobBuilder


@pytest.fixture
def store_listeners(commands):
    """tests/fixtures.py's store, with `commands` listening on its clients."""
    return [commands]


async def scale_jobs(store, make):
    """Scale's test set: test1 1.0/2.0/3.0 (category test-1) and test2 1.0 (test-2), one job each,
    with distinct statuses, priorities and times."""
    t1v1 = await make.job_type("test1", "1.0", category="test-1", priority=30, timeout=100,
                               max_tries=1, cpus_required=2.0, mem_required=512.0)
    t1v2 = await make.job_type("test1", "2.0", category="test-1", priority=10, timeout=300,
                               max_tries=4)
    t1v3 = await make.job_type("test1", "3.0", category="test-1", priority=20, timeout=200)
    t2 = await make.job_type("test2", "1.0", category="test-2", priority=40, max_tries=2,
                             cpus_required=0.5, mem_required=256.0)
    await make.running(t1v3)                               # job 1 RUNNING
    await make.pending(t2)                                 # job 2 PENDING
    await make.queued(t1v1)                                # job 3 QUEUED
    _, exe = await make.running(t1v2)                      # job 4 FAILED below
    error = await store.errors.by_name("algorithm-unknown")
    await store.jobs.fail_execution(exe["id"], error)
    times = {1: (4000, 1500), 2: (1000, 1000), 3: (3000, 3500), 4: (2000, 2500)}
    for job_id, (modified, changed) in times.items():
        await store.db["jobs"].update_one(
            {"id": job_id}, {"$set": {"last_modified": modified, "last_status_change": changed}})
    return {"t1v1": t1v1, "t1v2": t1v2, "t1v3": t1v3, "t2": t2}


async def ids(store, flt=None, order=(("last_modified", 1),), page=1, page_size=100):
    count, rows = await store.jobs.list_jobs(flt or JobFilter(), list(order), page, page_size)
    return count, [row["id"] for row in rows]


@pytest.mark.gen_test
async def test_every_filter_field(store, make):
    types = await scale_jobs(store, make)
    t1v1, t1v2, t2 = types["t1v1"]["id"], types["t1v2"]["id"], types["t2"]["id"]
    assert await ids(store) == (4, [2, 4, 3, 1])
    assert await ids(store, JobFilter(statuses=["RUNNING"])) == (1, [1])
    assert await ids(store, JobFilter(statuses=["PENDING", "FAILED"])) == (2, [2, 4])
    assert await ids(store, JobFilter(job_ids=[3, 1, 99])) == (2, [3, 1])
    assert await ids(store, JobFilter(job_type_ids=[t2, t1v2])) == (2, [2, 4])
    assert await ids(store, JobFilter(job_type_names=["test1"])) == (3, [4, 3, 1])
    assert await ids(store, JobFilter(job_type_names=["test2", "nope"])) == (1, [2])
    assert await ids(store, JobFilter(job_type_categories=["test-2"])) == (1, [2])
    assert await ids(store, JobFilter(job_type_categories=["test-1"])) == (3, [4, 3, 1])
    assert await ids(store, JobFilter(job_type_ids=[t1v1], job_type_names=["test1"])) == (1, [3])
    assert await ids(store, JobFilter(job_type_ids=[t2], job_type_names=["test1"])) == (0, [])
    assert await ids(store, JobFilter(job_type_names=["missing"])) == (0, [])
    assert await ids(store, JobFilter(started=2000)) == (3, [4, 3, 1])
    assert await ids(store, JobFilter(ended=3000)) == (2, [2, 4])
    assert await ids(store, JobFilter(started=2000, ended=4000)) == (2, [4, 3])
    updates = JobFilter(started=1500, ended=3500, time_field="last_status_change")
    assert await ids(store, updates, [("last_status_change", 1)]) == (2, [1, 4])
    both = JobFilter(statuses=["RUNNING", "QUEUED"], job_type_categories=["test-1"],
                     job_ids=[1, 2, 3], started=3000)
    assert await ids(store, both) == (2, [3, 1])


@pytest.mark.gen_test
async def test_scale_order_by_name_then_version_descending(store, make):
    await scale_jobs(store, make)
    order = [(JOB_ORDER_FIELDS["job_type__name"], 1), (JOB_ORDER_FIELDS["job_type__version"], -1)]
    _, rows = await store.jobs.list_jobs(JobFilter(), order, 1, 100)
    assert [(r["job_type_name"], r["job_type_version"]) for r in rows] == [
        ("test1", "3.0"), ("test1", "2.0"), ("test1", "1.0"), ("test2", "1.0")]


def sort_key(field):
    """Python's version of the store sort: missing/null first, then the value, then `id`."""
    def key(job):
        value = job
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return (value is not None, value if value is not None else 0)
    return key


@pytest.mark.gen_test
async def test_order_by_every_order_field(store, make):
    await scale_jobs(store, make)
    by_id = await store.db["jobs"].find({}, {"_id": 0}).sort("id", 1).to_list()
    for name, field in JOB_ORDER_FIELDS.items():
        for direction in (1, -1):
            # ties by `id` in the field's direction (store/reads.py tie_broken): a stable sort
            # of the jobs in that `id` order
            expected = sorted(by_id if direction == 1 else by_id[::-1], key=sort_key(field),
                              reverse=direction == -1)
            got = await ids(store, order=[(field, direction)])
            assert got == (4, [j["id"] for j in expected]), (name, direction)


@pytest.mark.gen_test
async def test_order_ties_break_on_id_after_every_key(store, make):
    await scale_jobs(store, make)
    order = [("job_type_name", -1), ("status", 1)]
    assert await ids(store, order=order) == (4, [2, 4, 3, 1])
    assert await ids(store, order=[("timeout", 1), ("id", -1)]) == (4, [3, 1, 4, 2])


@pytest.mark.gen_test
async def test_paging_and_count(store, make):
    job_type = await make.job_type("paged")
    for _ in range(5):
        await make.pending(job_type)
    order = [("id", 1)]
    assert await ids(store, order=order, page=1, page_size=2) == (5, [1, 2])
    assert await ids(store, order=order, page=2, page_size=2) == (5, [3, 4])
    assert await ids(store, order=order, page=3, page_size=2) == (5, [5])
    assert await ids(store, order=order, page=4, page_size=2) == (5, [])
    assert await ids(store, order=[("id", -1)], page=2, page_size=3) == (5, [2, 1])
    assert await ids(store, JobFilter(statuses=["QUEUED"])) == (0, [])
    count, rows = await store.jobs.list_jobs(JobFilter(job_ids=[2]), order, 1, 10,
                                             projection={"_id": 0, "id": 1, "status": 1})
    assert (count, rows) == (1, [{"id": 2, "status": "PENDING"}])


@pytest.mark.gen_test
async def test_get_job_and_its_executions_newest_first(store, make):
    job_type = await make.job_type("exes", max_tries=3)
    job, first = await make.running(job_type)
    unknown = await store.errors.by_name("unknown")
    await store.jobs.fail_execution(first["id"], unknown)
    stored = await store.jobs.get_job(job["id"])
    assert [e["id"] for e in await store.jobs.exes_for_job(job["id"])] == [
        stored["latest_exe_id"], first["id"]]
    assert (await store.jobs.get_exe(first["id"]))["status"] == "FAILED"
    assert await store.jobs.get_job(999) is None
    assert await store.jobs.get_exe(999) is None
    assert await store.jobs.exes_for_job(999) == []
    found = await store.jobs.exes_by_ids([first["id"], 999])
    assert list(found) == [first["id"]]


@pytest.mark.gen_test
async def test_list_exes_filters_and_paging(store, make):
    first_type = await make.job_type("one")
    second_type = await make.job_type("two")
    await make.running(first_type, node_id=7)       # exe 1 RUNNING on node 7
    await make.queued(second_type)                  # exe 2 QUEUED
    await make.running(second_type, node_id=8)      # exe 3 RUNNING on node 8
    for exe_id, modified in ((1, 300), (2, 100), (3, 200)):
        await store.db["job_exes"].update_one({"id": exe_id}, {"$set": {"last_modified": modified}})

    async def exe_ids(**kw):
        count, rows = await store.jobs.list_exes(**kw)
        return count, [row["id"] for row in rows]

    assert await exe_ids() == (3, [2, 3, 1])
    assert await exe_ids(statuses=["RUNNING"]) == (2, [3, 1])
    assert await exe_ids(job_type_ids={second_type["id"]}) == (2, [2, 3])
    assert await exe_ids(job_type_ids=set()) == (0, [])
    assert await exe_ids(node_ids=[7]) == (1, [1])
    assert await exe_ids(started=150, ended=300) == (1, [3])
    assert await exe_ids(order=[("id", -1)], page=2, page_size=2) == (3, [1])
    assert await exe_ids(page=3, page_size=2) == (3, [])


@pytest.mark.gen_test
async def test_queue_status_per_job_type(store, make):
    fast = await make.job_type("fast", priority=5)
    slow = await make.job_type("slow", priority=50)
    jobs = [(await make.queued(fast))[0], (await make.queued(fast))[0],
            (await make.queued(slow))[0]]
    await make.running(slow)
    for job, (queued, priority) in zip(jobs, ((500, 9), (200, 3), (700, 50)), strict=True):
        await store.db["jobs"].update_one({"id": job["id"]},
                                          {"$set": {"queued": queued, "priority": priority}})
    rows = await store.jobs.queue_status()
    assert rows == [
        {"job_type": await store.job_types.get(fast["id"]), "count": 2, "longest_queued": 200,
         "highest_priority": 3},
        {"job_type": await store.job_types.get(slow["id"]), "count": 1, "longest_queued": 700,
         "highest_priority": 50},
    ]


@pytest.mark.gen_test
async def test_queue_status_puts_paused_types_last_and_leaves_out_unknown_ones(store, make):
    """Unpaused first, then by best priority, then longest queued; a paused type (its flag
    written as 0/1 by nx-27017's `$set`) comes back as true."""
    paused = await make.job_type("paused", priority=1)
    later = await make.job_type("later", priority=9)
    sooner = await make.job_type("sooner", priority=9)
    gone = await make.job_type("gone", priority=1)
    for job_type in (paused, later, sooner, gone):
        await make.queued(job_type)
    await store.jobs.jobs.update_one({"job_type_id": sooner["id"]}, {"$set": {"queued": 1}})
    await store.job_types.update(paused, {"is_paused": True}, None)
    await store.db["job_types"].delete_one({"id": gone["id"]})
    rows = await store.jobs.queue_status()
    assert [(r["job_type"]["name"], r["job_type"]["is_paused"]) for r in rows] == [
        ("sooner", False), ("later", False), ("paused", True)]
    assert await store.jobs.count_queued([paused["id"], later["id"]]) == 2
    assert await store.jobs.count_queued([]) == 0


@pytest.mark.gen_test(timeout=60)
async def test_names_resolve_without_reading_job_types_but_for_another_process_ones(
        store, make, other_process, commands):
    """With the kept counts read first, a job type name filter reads no job types while this
    process knows every type that has jobs (store/job_types.py `ids_named`); a type another
    process made is read once its jobs are counted, and its jobs are counted and listed."""
    mine = await make.job_type("convert", "1.0")
    await make.queued(mine)
    await make.completed(mine)
    await make.queued(await make.job_type("fetch"))
    theirs = JobBuilder(other_process, None)

    async def listed():
        commands.sent.clear()
        count, jobs = await store.jobs.list_jobs(JobFilter(job_type_names=["convert"]),
                                                 [("id", 1)], 1, 100, kept_total=True)
        return count, [job["id"] for job in jobs], \
            [name for name in commands.names() if name.endswith(" job_types")]

    assert (await listed())[::2] == (2, [])
    their_type = await theirs.job_type("convert", "2.0")
    await theirs.job_type("convert", "3.0")  # no jobs
    their_job, _ = await theirs.queued(their_type)
    named = sorted(doc["id"] for doc in
                   await store.db["jobs"].find({"job_type_name": "convert"}).to_list())
    assert len(named) == 3 and their_job["id"] in named
    assert await listed() == (3, named, ["find job_types"])
    assert await listed() == (3, named, [])


@pytest.mark.gen_test(timeout=60)
async def test_categories_resolve_from_this_process_and_show_another_process_edit_in_time(
        store, make, other_process, commands):
    """A category can be edited: this process's edit shows at once, another process's after at
    most `CACHE_SECONDS` (then the job types are read again), as in answers that embed a job
    type; in between, a category filter reads no job types."""
    store.job_types.CACHE_SECONDS = 0.5
    imaging = await make.job_type("convert", "1.0", "imaging")
    network = await make.job_type("fetch", "1.0", "network")
    converted, _ = await make.queued(imaging)
    fetched, _ = await make.queued(network)

    async def listed(category: str):
        commands.sent.clear()
        _, jobs = await store.jobs.list_jobs(JobFilter(job_type_categories=[category]),
                                             [("id", 1)], 1, 100, kept_total=True)
        return [job["id"] for job in jobs], \
            [name for name in commands.names() if name.endswith(" job_types")]

    assert await listed("imaging") == ([converted["id"]], ["find job_types"])
    assert await listed("imaging") == ([converted["id"]], [])
    await store.job_types.update(imaging, {"category": "archive"}, None)
    assert await listed("archive") == ([converted["id"]], [])
    theirs = await other_process.job_types.get(network["id"])
    await other_process.job_types.update(theirs, {"category": "archive"}, None)
    await asyncio.sleep(store.job_types.CACHE_SECONDS)
    assert await listed("archive") == ([converted["id"], fetched["id"]], ["find job_types"])
    assert await listed("network") == ([], [])


@pytest.mark.gen_test(timeout=60)
async def test_recent_status_changes_are_counted_from_the_kept_minutes(store, make, commands):
    """`started` within the minutes the kept counts keep, on `last_status_change`: the total is
    their per-minute counts after `started`'s minute plus the jobs of that minute from
    `started` on, taken from page 1's rows when it reaches past that minute, else counted over
    that minute alone; never a count over the whole range. Exact either way."""
    convert, fetch = await make.job_type("convert"), await make.job_type("fetch")
    now = now_ms()
    base = now - now % MINUTE_MS - 10 * MINUTE_MS
    offsets = [-3 * MINUTE_MS + 5_000, 10_000, 20_000, 20_000, 40_000, MINUTE_MS + 1_000,
               3 * MINUTE_MS, 3 * MINUTE_MS, 7 * MINUTE_MS + 59_999]
    for n, offset in enumerate(offsets):
        job_type = (convert, fetch)[n % 2]
        job, _ = await (make.completed(job_type) if n % 3 else make.queued(job_type))
        await make.touch(job["id"], base + offset, base + offset)
    await store.counts.fold_all()
    await make.queued(convert)  # changed now, not folded yet
    cases = [(base + 15_000, [], []), (base + 15_000, ["COMPLETED"], []),
             (base + 15_000, [], [fetch["id"]]), (base + 20_000, ["QUEUED"], [convert["id"]]),
             (base + MINUTE_MS, [], []), (base + 59_999, [], []), (now - 1, [], [])]
    for since, statuses, type_ids in cases:
        query: dict = {"last_status_change": {"$gte": since}}
        if statuses:
            query["status"] = {"$in": statuses}
        if type_ids:
            query["job_type_id"] = {"$in": type_ids}
        expected = await store.db["jobs"].count_documents(query)
        for order, page, page_size in [([("last_status_change", 1), ("id", 1)], 1, 100),
                                       ([("last_status_change", 1), ("id", 1)], 1, 1),
                                       ([("last_status_change", 1), ("id", 1)], 2, 2),
                                       ([("last_status_change", -1), ("id", -1)], 1, 100)]:
            flt = JobFilter(statuses=statuses, job_type_ids=type_ids, started=since,
                            time_field="last_status_change")
            commands.sent.clear()
            count, jobs = await store.jobs.list_jobs(flt, order, page, page_size,
                                                     kept_total=True)
            rows = await store.db["jobs"].find(query, sort=order, skip=(page - 1) * page_size,
                                               limit=page_size).to_list()
            case = (since - base, statuses, type_ids, order[0], page, page_size)
            assert (count, [j["id"] for j in jobs]) == (expected, [r["id"] for r in rows]), case
            # Page 1 in order holds the first minute's jobs when it reaches past that minute.
            past_first_minute = page == 1 and order[0] == ("last_status_change", 1) and (
                len(rows) < page_size
                or rows[-1]["last_status_change"] >= since - since % MINUTE_MS + MINUTE_MS)
            assert ("aggregate jobs" in commands.names()) == (not past_first_minute), \
                (case, commands.names())
            if page_size == 100 and order[0] == ("last_status_change", 1):
                assert past_first_minute, case
