"""Job counts kept as the transitions happen (store/counts.py): exact against a full recount
after random transitions, with two stores (or two server processes) folding at once, a fold
cut off after its commit point and a server killed mid-way; and the queue status counts from
them without scanning the jobs."""

import asyncio
import contextlib
import random
import signal
import uuid

import pytest
from tornado.httpclient import HTTPClientError

from core.model import JobStatus
from core.times import now_ms
from store import Store
from store.counts import (
    COUNTS_ID,
    HOUR_MS,
    MINUTE_MS,
    MINUTES_KEPT_MS,
    NOT_COUNTED,
    UNCOUNTED,
    JobCounts,
)
from tests.commands import AGGREGATES
from tests.live.test_processes import call, spawn_server, stop_server, until_ready


async def counted_doc(store) -> dict:
    """The counters document's counts as {type id: {status: n}}, zeros left out."""
    doc = await store.db["job_counts"].find_one({"_id": COUNTS_ID})
    table: dict[int, dict[str, int]] = {}
    for key, n in doc.items():
        if key.startswith("n:") and n:
            _, type_id, status = key.split(":", 2)
            table.setdefault(int(type_id), {})[status] = n
    return table


async def overview_recount(store, now: int) -> dict:
    """What the overview shows, recounted from the jobs and executions (scans: a test's
    reference): the last hour by type and status, the oldest
    queued minute per type, and the RUNNING executions' use per node."""
    since = now - HOUR_MS - (now - HOUR_MS) % MINUTE_MS
    changed: dict[int, dict[str, int]] = {}
    oldest: dict[int, int] = {}
    async for job in store.db["jobs"].find({}):
        minute = job["last_status_change"] - job["last_status_change"] % MINUTE_MS
        type_id, status = job["job_type_id"], job["status"]
        if minute >= since:
            row = changed.setdefault(type_id, {})
            row[status] = row.get(status, 0) + 1
        if status == JobStatus.QUEUED:
            oldest[type_id] = min(job["queued"], oldest.get(type_id, job["queued"]))
    use: dict = {}
    async for exe in store.db["job_exes"].find({"status": "RUNNING"}):
        row = use.setdefault(exe["node_id"], {"running": 0, "cpus": 0, "mem": 0})
        row["running"] += 1
        row["cpus"] += exe.get("cpus_scheduled") or 0
        row["mem"] += exe.get("mem_scheduled") or 0
    for type_id, queued in oldest.items():  # to the minute within the minutes kept
        hour = queued - queued % HOUR_MS
        recent = hour >= now - MINUTES_KEPT_MS + HOUR_MS
        oldest[type_id] = queued - queued % MINUTE_MS if recent else hour
    return {"changed": changed, "oldest": oldest, "use": use}


async def overview_read(store, now: int) -> dict:
    kept = await store.counts.read()
    return {"changed": kept.changed_since(now - HOUR_MS),
            "oldest": kept.oldest_queued(now), "use": kept.node_use()}


async def assert_exact(*stores) -> None:
    """Every store's read equals a recount now (the overview's figures too); after folding
    everything, so does the counters document itself, with no job left uncounted."""
    recount = await stores[0].counts.recount()
    now = now_ms()
    overview = await overview_recount(stores[0], now)
    for store in stores:
        assert await store.counts.current() == recount
        assert await overview_read(store, now) == overview
    await asyncio.gather(*(store.counts.fold_all() for store in stores))
    assert await counted_doc(stores[0]) == recount
    assert await stores[0].db["jobs"].count_documents(UNCOUNTED) == 0
    assert await stores[0].counts.current() == recount


async def random_transition(  # noqa: C901 (one branch per transition)
        store, rng: random.Random, job_types: list[dict]) -> None:
    """One of: submit, create (PENDING), queue, start, complete, fail (retried or not),
    cancel, requeue; on a random job, which may refuse it."""
    jobs = store.jobs
    kind = rng.choice(("submit", "submit", "create", "queue", "start", "start", "complete",
                       "fail", "cancel", "requeue"))
    job_type = rng.choice(job_types)
    if kind == "submit":
        event = await jobs.create_event("USER", {"user": "test"})
        await jobs.submit_job(job_type, {}, event, "")
        return
    if kind == "create":
        await jobs.create_job(job_type, {}, await jobs.create_event("USER", {}))
        return
    top = (await store.db["counters"].find_one({"_id": "jobs"}))["seq"]
    if top == 0:
        return
    job = await jobs.get_job(rng.randint(1, top))
    if job is None:
        return
    exe_id = job.get("latest_exe_id")
    if kind == "queue":
        await jobs.queue_job(job["id"])
    elif kind == "start" and exe_id is not None:
        await jobs.start_execution(exe_id, rng.choice((None, 1, 2)), scheduled={
            "cpus_scheduled": rng.choice((0.5, 1.0, 2.0)), "mem_scheduled": 256.0})
    elif kind == "complete" and exe_id is not None:
        await jobs.complete_execution(exe_id, {})
    elif kind == "fail" and exe_id is not None:
        name = rng.choice(("node-lost", "algorithm-unknown"))
        await jobs.fail_execution(exe_id, await store.errors.by_name(name))
    elif kind == "cancel":
        with contextlib.suppress(ValueError):  # InvalidTransition
            await jobs.cancel_job(job["id"])
    elif kind == "requeue":
        await jobs.requeue_job(job["id"])


@pytest.fixture
def second_store(store, io_loop):
    """Another Store on the same database: what a second server process has."""
    other = Store(store.db._url, store.db.db.name)
    io_loop.run_sync(other.open)
    yield other
    io_loop.run_sync(other.close)


@pytest.mark.gen_test(timeout=120)
async def test_counts_match_a_recount_after_random_transitions(store, second_store, make):
    rng = random.Random(1313)
    job_types = [await make.job_type(f"t{i}", max_tries=2) for i in range(3)]
    # One job of each final status whatever the random mix does (its interleaving of the two
    # stores varies from run to run); the random transitions may move them on.
    await make.completed(job_types[0])
    await make.cancel((await make.running(job_types[1]))[0])

    async def worker(s, seed, steps):
        r = random.Random(seed)
        for step in range(steps):
            await random_transition(s, r, job_types)
            if step % 25 == 0:
                await s.counts.fold()
            if step % 10 == 0:
                await read_between_recounts(s)

    async def read_between_recounts(s):
        """Jobs are never removed, so a read's total lies between the number of jobs just
        before it and just after it, whatever folds and transitions run meanwhile."""
        before = await s.db["jobs"].count_documents({})
        read = total(await s.counts.current())
        after = await s.db["jobs"].count_documents({})
        assert before <= read <= after

    async def folder(s, done):
        while not done.is_set():
            await s.counts.fold(limit=7)
            await asyncio.sleep(0)

    # Two stores transition and fold concurrently, as two server processes do; each also folds
    # in small batches all along, so folds of both overlap.
    done = asyncio.Event()
    folders = [asyncio.create_task(folder(s, done)) for s in (store, second_store)]
    await asyncio.gather(worker(store, rng.random(), 250), worker(second_store, rng.random(), 250))
    done.set()
    await asyncio.gather(*folders)
    recount = await store.counts.recount()
    assert sum(n for row in recount.values() for n in row.values()) > 100
    assert {s for row in recount.values() for s in row} >= {
        JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.CANCELED}
    await assert_exact(store, second_store)


def fold_between_reads(store, *folds) -> list[dict]:
    """Make `store`'s next count read run `folds` (coroutine functions) right after reading the
    counters document, before it reads the jobs: another process's fold landing between a
    read's two operations. Returns the list the counters documents read are appended to."""
    seen: list[dict] = []
    read_counters = store.counts.read_counters
    pending = list(folds)

    async def read_then_fold():
        doc = await read_counters()
        seen.append(doc)
        while pending:
            await pending.pop(0)()
        return doc

    store.counts.read_counters = read_then_fold
    return seen


def total(table: dict) -> int:
    return sum(n for row in table.values() for n in row.values())


@pytest.mark.gen_test(timeout=60)
async def test_a_read_is_exact_when_a_fold_lands_between_its_two_reads(
        store, second_store, make):
    """The cause of the chaos test's total one short: a read took the counters document, then
    another process folded (its commit, and its jobs marked counted), then the read found those
    jobs counted and the document without them."""
    job_type = await make.job_type("between")
    for _ in range(4):
        await make.queued(job_type)
    await store.counts.fold_all()
    await make.queued(job_type)
    await make.running(job_type)
    fold_between_reads(store, second_store.counts.fold)
    assert await store.counts.current() == await store.counts.recount() == {
        job_type["id"]: {JobStatus.QUEUED: 5, JobStatus.RUNNING: 1}}


@pytest.mark.gen_test(timeout=60)
async def test_a_read_is_exact_while_a_fold_is_in_flight_between_its_reads(
        store, second_store, make):
    """Another process's fold commits and marks only some of its jobs counted (it is still
    writing the rest, or it died there) between a read's two operations; a transition of a job
    it counted comes in between too."""
    job_type = await make.job_type("in-flight")
    created = [await make.queued(job_type) for _ in range(6)]
    halted = JobCounts(second_store.db)

    async def half_of(batch):
        await halted._mark({**batch, "jobs": batch["jobs"][:3]})
        raise Halted

    class Halted(Exception):
        pass

    halted._finish = half_of

    async def fold_half():
        with pytest.raises(Halted):
            await halted.fold()
        await store.jobs.start_execution(created[0][1]["id"], None)

    fold_between_reads(store, fold_half)
    expected = {job_type["id"]: {JobStatus.QUEUED: 5, JobStatus.RUNNING: 1}}
    assert await store.counts.current() == await store.counts.recount() == expected
    await assert_exact(store, second_store)


@pytest.mark.gen_test(timeout=60)
async def test_a_job_folded_twice_between_a_reads_two_operations_makes_it_read_again(
        store, second_store, make):
    job_type = await make.job_type("twice")
    _, exe = await make.queued(job_type)

    async def run_and_fold():
        await second_store.counts.fold_all()
        await store.jobs.start_execution(exe["id"], None)
        await second_store.counts.fold_all()

    seen = fold_between_reads(store, second_store.counts.fold_all, run_and_fold)
    assert await store.counts.current() == {job_type["id"]: {JobStatus.RUNNING: 1}}
    assert len(seen) == 2  # the first read found the job folded twice since its document


@pytest.fixture
def store_listeners(commands):
    """tests/fixtures.py's store, with `commands` listening on its clients."""
    return [commands]


async def one_read(store, commands) -> tuple[dict, list[str]]:
    """The kept counts by type and status, and the commands their read sent. The background
    fold is stopped first (a read starts it again, to run a second later)."""
    await store.counts.stop()
    commands.sent.clear()
    counts = await store.counts.current()
    return counts, commands.names()


@pytest.mark.gen_test(timeout=60)
async def test_a_read_takes_the_counters_document_read_before_and_stays_exact(
        store, second_store, make, commands):
    """A read reuses the counters document an earlier read took: one operation (the jobs
    changed since it), exact when another process folded since that document, also a job of
    that fold that changed again after it."""
    job_type = await make.job_type("kept")
    for _ in range(3):
        await make.queued(job_type)
    await store.counts.fold_all()
    await store.counts.read()
    await store.counts.stop()  # its own folds would read the document anew
    _, exe = await make.queued(job_type)
    await make.running(job_type)
    await second_store.counts.fold_all()
    await store.jobs.start_execution(exe["id"], None)
    newest = await store.db["job_counts"].find_one({"_id": COUNTS_ID})
    assert store.counts.counters_doc["gen"] < newest["gen"]
    counts, sent = await one_read(store, commands)
    assert sent == ["find jobs"]
    assert counts == await store.counts.recount() == {
        job_type["id"]: {JobStatus.QUEUED: 3, JobStatus.RUNNING: 2}}


@pytest.mark.gen_test(timeout=60)
async def test_the_background_fold_reads_the_counters_anew_after_another_process_folded(
        store, second_store, make, commands):
    """A read that found jobs another process folded since its counters document makes the
    background fold read the document again, so the reads after it find none of them."""
    job_type = await make.job_type("behind")
    await store.counts.read()
    await store.counts.stop()  # the next read starts it again, after the other's fold
    for _ in range(2):
        await make.queued(job_type)
    await second_store.counts.fold_all()
    newest = (await store.db["job_counts"].find_one({"_id": COUNTS_ID}))["gen"]
    await store.counts.read()
    while store.counts.counters_doc["gen"] < newest:
        await asyncio.sleep(0.05)
    changed = await store.db["jobs"].count_documents(
        {"fold_gen": {"$gt": store.counts.counters_doc["gen"]}})
    counts, sent = await one_read(store, commands)
    assert (changed, sent) == (0, ["find jobs"])
    assert counts == await store.counts.recount() == {job_type["id"]: {JobStatus.QUEUED: 2}}


@pytest.mark.gen_test(timeout=60)
async def test_a_fold_cut_off_after_its_commit_is_finished_by_another_store(
        store, second_store, make):
    job_type = await make.job_type("cut")
    for _ in range(5):
        await make.queued(job_type)
    _, exe = await make.running(job_type)

    class Killed(Exception):
        pass

    async def die(batch):  # the process dies right after the counters' commit point
        raise Killed

    cut = JobCounts(store.db)
    cut._finish = die
    with pytest.raises(Killed):
        await cut.fold()
    doc = await store.db["job_counts"].find_one({"_id": COUNTS_ID})
    assert len(doc["batch"]["jobs"]) == 6
    # Reads are exact meanwhile: the batch's jobs count at the batch's version.
    expected = {job_type["id"]: {JobStatus.QUEUED: 5, JobStatus.RUNNING: 1}}
    assert await second_store.counts.current() == expected
    # A transition of a job in the cut-off batch, before anyone finishes it.
    await store.jobs.complete_execution(exe["id"], {})
    expected = {job_type["id"]: {JobStatus.QUEUED: 5, JobStatus.COMPLETED: 1}}
    assert await second_store.counts.current() == expected
    await second_store.counts.fold_all()
    doc = await store.db["job_counts"].find_one({"_id": COUNTS_ID})
    assert doc["batch"] is None
    assert await counted_doc(store) == expected == await store.counts.recount()


@pytest.mark.gen_test(timeout=60)
async def test_jobs_written_before_counting_are_counted(store, make):
    """A store from before the counters: its jobs have no marks; the first open counts them."""
    job_type = await make.job_type("old")
    await make.queued(job_type)
    await make.completed(job_type)
    await store.db["jobs"].update_many({}, {"$unset": {"tv": "", "fold_gen": "", "ctv": "",
                                                       "cst": "", "cg": "", "pcst": "",
                                                       "pcg": ""}})
    await store.db["job_counts"].delete_many({})
    reopened = await Store(store.db._url, store.db.db.name).open()
    try:
        expected = {job_type["id"]: {JobStatus.QUEUED: 1, JobStatus.COMPLETED: 1}}
        assert await reopened.counts.current() == expected
        await assert_exact(reopened)
    finally:
        await reopened.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_store_counted_in_the_earlier_format_is_counted_afresh(store, make):
    """The format before fold_gen: counted jobs carry `ctv`/`cst`, uncounted ones
    `uncounted: true`, and the counters document has no `format`."""
    job_type = await make.job_type("earlier")
    for _ in range(3):
        await make.queued(job_type)
    await make.completed(job_type)
    jobs = store.db["jobs"]
    await jobs.update_many({}, {"$unset": {"fold_gen": "", "cs": "", "cg": "", "pcs": "",
                                           "pcg": ""}, "$set": {"ctv": 1, "cst": "PENDING"}})
    await jobs.update_one({"status": "COMPLETED"}, {"$set": {"uncounted": True}})
    await store.db["job_counts"].replace_one(
        {"_id": COUNTS_ID}, {"gen": 7, "batch": None, f"n:{job_type['id']}:PENDING": 4})
    reopened = await Store(store.db._url, store.db.db.name).open()
    try:
        assert await reopened.counts.current() == {
            job_type["id"]: {JobStatus.QUEUED: 3, JobStatus.COMPLETED: 1}}
        await assert_exact(reopened)
    finally:
        await reopened.close()




@pytest.mark.gen_test(timeout=60)
async def test_queue_status_and_status_counts_do_not_scan_the_jobs(store, api, make):
    first, second = await make.job_type("first"), await make.job_type("second", priority=5)
    for _ in range(3):
        await make.queued(first)
    await make.running(second)
    await make.queued(second)
    await make.completed(first)
    AGGREGATES.clear()
    status, body, _ = await api.get("/queue/status/")
    counts = await store.stats.counts_by_status()
    assert "jobs" not in AGGREGATES.on
    assert status == 200
    assert [(row["job_type_name"], row["count"], row["highest_priority"])
            for row in body["queue_status"]] == [("second", 1, 5), ("first", 3, first["priority"])]
    assert counts == {JobStatus.QUEUED: 4, JobStatus.RUNNING: 1, JobStatus.COMPLETED: 1}


@pytest.mark.alone
@pytest.mark.gen_test(timeout=180)
async def test_counts_stay_exact_with_two_server_processes_and_one_killed(  # noqa: C901
        backend, tmp_path):
    """Two servers on one store take random submits, cancels and requeues; this process runs
    and fails jobs through the store; one server is killed mid-way (SIGKILL) and started
    again. The counts that both serve, and the counters once folded, equal a recount."""
    if backend[0] != "nx":
        pytest.skip("one backend is enough for the process test")
    mongo_url = backend[1]
    db_name = f"test_counts_{uuid.uuid4().hex[:12]}"
    store = await Store(mongo_url, db_name).open()
    servers = {}
    try:
        for name in ("a", "b"):
            servers[name] = spawn_server(mongo_url, db_name, tmp_path / f"{name}.log")
        for name, (process, url) in servers.items():
            await until_ready(process, url, tmp_path / f"{name}.log")
        job_type = await call(servers["a"][1] + "/job-types/", "POST", {
            "name": "counted", "version": "1.0", "title": "Counted",
            "interface": {"version": "1.0", "command": "run.sh", "command_arguments": "",
                          "input_data": [], "output_data": []}})
        rng = random.Random(27017)
        unknown = await store.errors.by_name("algorithm-unknown")

        async def client(name, steps):
            for _ in range(steps):
                process, url = servers[name]
                if process.poll() is not None:
                    return
                kind = rng.choice(("submit", "submit", "cancel", "requeue", "status"))
                top = (await store.db["counters"].find_one({"_id": "jobs"}))["seq"]
                job_id = rng.randint(1, max(top, 1))
                try:
                    if kind == "submit":
                        await call(url + "/queue/new-job/", "POST", {
                            "job_type_id": job_type["id"],
                            "job_data": {"version": "1.0", "input_data": [],
                                         "output_data": []}})
                    elif kind == "cancel":
                        await call(f"{url}/jobs/{job_id}/", "PATCH", {"status": "CANCELED"})
                    elif kind == "requeue":
                        await call(url + "/queue/requeue-jobs/", "POST", {"job_ids": [job_id]})
                    else:
                        await call(url + "/queue/status/")
                except (HTTPClientError, OSError):  # a refused transition, the killed server
                    continue

        async def engine(steps):
            for _ in range(steps):
                job = await store.db["jobs"].find_one(
                    {"status": rng.choice((JobStatus.QUEUED, JobStatus.RUNNING))},
                    {"latest_exe_id": 1, "status": 1})
                if job is None:
                    await asyncio.sleep(0.01)
                    continue
                if job["status"] == JobStatus.QUEUED:
                    await store.jobs.start_execution(job["latest_exe_id"], None)
                elif rng.random() < 0.6:
                    await store.jobs.complete_execution(job["latest_exe_id"], {})
                else:
                    await store.jobs.fail_execution(job["latest_exe_id"], unknown)

        async def killer():
            await asyncio.sleep(3)
            servers["b"][0].send_signal(signal.SIGKILL)
            servers["b"][0].wait(timeout=20)

        await asyncio.gather(client("a", 150), client("b", 150), engine(200), killer())
        servers["b"] = spawn_server(mongo_url, db_name, tmp_path / "b2.log")
        await until_ready(servers["b"][0], servers["b"][1], tmp_path / "b2.log")
        recount = await store.counts.recount()
        assert recount and sum(recount[job_type["id"]].values()) > 20
        queued = recount[job_type["id"]].get(JobStatus.QUEUED, 0)
        for _, url in servers.values():
            served = await call(url + "/queue/status/")
            assert [row["count"] for row in served["queue_status"]] == \
                ([queued] if queued else [])
        await assert_exact(store)
    finally:
        for process, _ in servers.values():
            stop_server(process)
        await store.db.client.drop_database(db_name)
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_overview_and_queue_pages_count_without_scanning(store, api, make):
    """The overview's counts by status and the queue table come from the kept counts; what
    the overview still aggregates over the jobs is bounded to the last hour."""
    worker = await make.job_type("worker")
    for _ in range(2):
        await make.queued(worker)
    await make.completed(worker)
    await make.cancel((await make.queued(worker))[0])
    AGGREGATES.clear()
    status, _, _ = await api.get("/")
    assert status == 200
    assert all("last_status_change" in match for match in AGGREGATES.job_matches), \
        AGGREGATES.job_matches
    assert await store.stats.counts_by_status() == {
        JobStatus.QUEUED: 2, JobStatus.COMPLETED: 1, JobStatus.CANCELED: 1}
    AGGREGATES.clear()
    status, _, _ = await api.get("/dashboard/queue")
    assert status == 200
    assert "jobs" not in AGGREGATES.on


@pytest.mark.gen_test(timeout=60)
async def test_a_job_that_changes_between_a_folds_read_and_its_marks_is_counted_once(
        store, make):
    """A fold marks its jobs with one update each, conditioned on the version it read; a job
    whose transition came in between misses that update, and must still be marked counted at
    that version (its transition left it uncounted for the next fold), or the next fold would
    count it a second time from its state before."""
    job_type = await make.job_type("changing")
    await store.counts.fold_all()
    queued, exe = await make.queued(job_type)
    other, _ = await make.queued(job_type)
    mark = store.counts._mark

    async def start_then_mark(batch):
        await store.jobs.start_execution(exe["id"], None)
        await mark(batch)

    store.counts._mark = start_then_mark
    assert await store.counts.fold() == 2
    store.counts._mark = mark
    job = await store.db["jobs"].find_one({"_id": queued["id"]})
    assert (job["ctv"], job["cs"][0], job["fold_gen"]) == (job["tv"] - 1, JobStatus.QUEUED,
                                                           NOT_COUNTED)
    assert (await store.db["jobs"].find_one({"_id": other["id"]}))["fold_gen"] > 0
    await store.counts.fold_all()
    assert await counted_doc(store) == await store.counts.recount() == {
        job_type["id"]: {JobStatus.QUEUED: 1, JobStatus.RUNNING: 1}}


@pytest.mark.gen_test(timeout=60)
async def test_a_read_with_nothing_changed_reuses_the_last_one_and_a_change_ends_that(
        store, make):
    """Reads that find no job changed since the counters document they use hand out the same
    counts (their keys parsed once); the first job changed after makes a new one, exact."""
    job_type = await make.job_type("kept")
    await make.queued(job_type)
    await store.counts.fold_all()
    await store.counts.stop()  # its own folds would read the document anew
    first = await store.counts.read()
    assert await store.counts.read() is first
    assert first.by_type() == {job_type["id"]: {JobStatus.QUEUED: 1}}
    await make.running(job_type)
    after = await store.counts.read()
    assert after is not first
    assert after.by_type() == {job_type["id"]: {JobStatus.QUEUED: 1, JobStatus.RUNNING: 1}}
    assert first.by_type() == {job_type["id"]: {JobStatus.QUEUED: 1}}


@pytest.mark.gen_test(timeout=60)
async def test_the_oldest_queued_job_is_read_to_the_minute_when_kept_else_to_the_hour(
        store, make):
    """A type whose oldest QUEUED job is hours old shows its hour, read without the minute
    counters; one queued in the current hour shows its minute, beside it in the same read."""
    now = now_ms()
    this_hour = now - now % HOUR_MS
    queued = {"old": now - 5 * HOUR_MS, "new": this_hour + (now - this_hour) // 2}
    types = {name: await make.job_type(name) for name in queued}
    for name, when in queued.items():
        job = (await make.bulk_jobs(types[name], [when - 1000]))[0]
        await store.jobs.queue_job(job["id"], when=when)
    await store.counts.fold_all()
    oldest = (await store.counts.read()).oldest_queued(now)
    assert oldest == {types["old"]["id"]: queued["old"] - queued["old"] % HOUR_MS,
                      types["new"]["id"]: queued["new"] - queued["new"] % MINUTE_MS}
    assert oldest == (await overview_recount(store, now))["oldest"]
