"""Local fan-out: a status change this process writes reaches its own subscribers without the
store's change stream; changes of another process still come through the stream; nothing comes
twice or out of order per job."""

import asyncio

import pytest
from pymongo import monitoring

from core.times import now_ms
from live.hub import LiveHub
from store import Store
from store.changes import JobChangeFeed
from tests.live_client import Collected, Subscriber, submit, until_live, update_row

# Waits on the change stream of another process (tests/live/test_feed_healing.py: `alone`).
pytestmark = pytest.mark.alone

# A stream that stalls is never restarted within a test: only local fan-out can deliver.
NEVER_STALE = 3600.0


@pytest.fixture
def hub(store, io_loop):
    hub = LiveHub(store, stale_after=NEVER_STALE)
    yield hub
    io_loop.run_sync(hub.stop)


async def stall_stream(feed: JobChangeFeed, store) -> None:
    """Swap the feed's change stream for one that stays alive and silent."""
    silent = await store.db["not_jobs"].watch()
    old, feed._stream = feed._stream, silent
    await old.close()


@pytest.mark.gen_test(timeout=60)
async def test_every_transition_reaches_a_subscriber_while_the_stream_is_stalled(
        base_url, hub, make, api, store):
    job_type = await make.job_type("live", category="live")
    subscriber = await Subscriber.connect(base_url)
    await until_live(hub, 1)
    await stall_stream(hub.feed, store)
    watermark = hub.feed._watermark

    done = await make.submit(job_type)                        # submit (API)
    await make.start(done)                                    # start
    await make.complete(done)                                 # complete
    other = await make.submit(job_type)
    status, _, _ = await api.patch(f"/jobs/{other['id']}/", {"status": "CANCELED"})
    assert status == 200                                      # cancel (API)
    requeued = await store.jobs.requeue_job(other["id"])      # requeue
    assert requeued is not None
    await make.start(other)
    error = await store.errors.by_name("algorithm-unknown")
    latest = await store.jobs.get_job(other["id"])
    assert await store.jobs.fail_execution(latest["latest_exe_id"], error) is not None  # fail
    pending = await store.jobs.create_job(job_type, {}, await store.jobs.create_event("USER", {}))
    assert await store.jobs.queue_job(pending["id"]) is not None  # PENDING, then queue

    await subscriber.until_row(done["id"], "COMPLETED")
    await subscriber.until_row(other["id"], "FAILED")
    await subscriber.until_row(pending["id"], "QUEUED")
    by_job: dict[int, list[str]] = {}
    for row in subscriber.rows:
        by_job.setdefault(row["id"], []).append(row["status"])
    assert by_job == {done["id"]: ["QUEUED", "RUNNING", "COMPLETED"],
                      other["id"]: ["QUEUED", "CANCELED", "QUEUED", "RUNNING", "FAILED"],
                      pending["id"]: ["PENDING", "QUEUED"]}
    assert len(set(subscriber.keys())) == len(subscriber.keys())
    for job in (done, other, pending):
        assert [r for r in subscriber.rows if r["id"] == job["id"]][-1] == \
            await update_row(api, job["id"])
    # None of it came through the stream or a restart of it.
    assert hub.feed._watermark == watermark and hub.feed.restarts == 0
    subscriber.close()


@pytest.mark.gen_test(timeout=60)
async def test_jobs_the_engine_runs_in_groups_reach_a_subscriber_while_the_stream_is_stalled(
        base_url, hub, make, store, start_engine):
    """The engine claims and completes jobs through JobStore.apply_transitions (group commit):
    those writes reach subscribers by local fan-out too."""
    job_type = await make.command_type("quick", "true", cpus_required=0.25)
    subscriber = await Subscriber.connect(base_url)
    await until_live(hub, 1)
    await stall_stream(hub.feed, store)
    watermark = hub.feed._watermark
    jobs = [await make.submit(job_type) for _ in range(6)]
    await start_engine()  # six queued jobs: one scheduling pass claims them as a group
    for job in jobs:
        await subscriber.until_row(job["id"], "COMPLETED")
    by_job: dict[int, list[str]] = {}
    for row in subscriber.rows:
        by_job.setdefault(row["id"], []).append(row["status"])
    assert by_job == {job["id"]: ["QUEUED", "RUNNING", "COMPLETED"] for job in jobs}
    assert hub.feed._watermark == watermark and hub.feed.restarts == 0
    subscriber.close()


@pytest.mark.gen_test(timeout=30)
async def test_two_changes_of_a_job_within_one_millisecond_both_reach_the_feed(store, make):
    job_type = await make.job_type("live", category="live")
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs)
    await feed.start()
    try:
        pending = await store.jobs.create_job(job_type, {},
                                              await store.jobs.create_event("USER", {}))
        await collected.until(pending["id"], "PENDING")
        queued = await store.jobs.queue_job(pending["id"], when=pending["last_status_change"])
        assert queued is not None
        await collected.until(pending["id"], "QUEUED", within=3.0)
    finally:
        await feed.stop()


async def until_change(collected: Collected, job: dict) -> None:
    """Wait until the feed has handed out this very change (the test's timeout bounds it)."""
    while (job["id"], job["last_status_change"]) not in {
            (j["id"], j["last_status_change"]) for j in collected.jobs}:
        collected.arrived.clear()
        await collected.arrived.wait()


@pytest.mark.gen_test(timeout=60)
async def test_changes_of_both_processes_come_once_and_in_order(store, make, other_process):
    job_type = await make.job_type("live", category="live")
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs)
    await feed.start()
    try:
        job = await submit(store, job_type)                   # here
        await collected.until(job["id"], "QUEUED")
        running, _ = await other_process.jobs.start_execution(job["latest_exe_id"], None)
        await collected.until(job["id"], "RUNNING")           # there
        canceled = await store.jobs.cancel_job(job["id"])     # here
        await collected.until(job["id"], "CANCELED")
        requeued = await other_process.jobs.requeue_job(job["id"])  # there
        await until_change(collected, requeued)
        last = await store.jobs.cancel_job(job["id"])         # here
        # Until the stream has brought this process's changes back too.
        while feed._watermark < last["last_status_change"]:
            await asyncio.sleep(0.01)
    finally:
        await feed.stop()
    assert [(j["id"], j["status"], j["last_status_change"]) for j in collected.jobs] == [
        (job["id"], "QUEUED", job["last_status_change"]),
        (job["id"], "RUNNING", running["last_status_change"]),
        (job["id"], "CANCELED", canceled["last_status_change"]),
        (job["id"], "QUEUED", requeued["last_status_change"]),
        (job["id"], "CANCELED", last["last_status_change"])]
    assert all("data" not in j and "results" not in j and "_id" not in j
               for j in collected.jobs)


class ImageReads(monitoring.CommandListener):
    """Counts the feed's image re-reads: finds on `jobs` by a set of `_id`s."""

    def __init__(self):
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        query = event.command.get("filter") or {}
        if event.command_name == "find" and event.command.get("find") == "jobs" and \
                isinstance(query.get("_id"), dict) and "$in" in query["_id"]:
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@pytest.mark.gen_test(timeout=60)
async def test_the_stream_rereads_no_job_this_process_already_handed_out(mongo_url, make,
                                                                         store):
    reads = ImageReads()
    counted = await Store(mongo_url, store.db.db.name, listeners=[reads]).open()
    job_type = await make.job_type("live", category="live")
    collected = Collected()
    feed = JobChangeFeed(counted, collected.on_jobs)
    await feed.start()
    try:
        jobs = [await submit(counted, job_type) for _ in range(20)]
        canceled = [await counted.jobs.cancel_job(job["id"]) for job in jobs]
        newest = max(job["last_status_change"] for job in canceled)
        while feed._watermark < newest:
            await asyncio.sleep(0.01)
    finally:
        await feed.stop()
        await counted.close()
    assert reads.count == 0
    assert sorted((j["id"], j["status"]) for j in collected.jobs) == sorted(
        [(job["id"], "QUEUED") for job in jobs] + [(job["id"], "CANCELED") for job in jobs])


class JobInserts(monitoring.CommandListener):
    """When (ms) each `insert` into `jobs` was acknowledged."""

    def __init__(self):
        self.acknowledged: list[int] = []
        self._inserts: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.command.get("insert") == "jobs":
            self._inserts.add(event.request_id)

    def succeeded(self, event) -> None:
        if event.request_id in self._inserts:
            self.acknowledged.append(now_ms())

    def failed(self, event) -> None:
        pass


@pytest.mark.gen_test(timeout=60)
async def test_a_submission_that_waited_for_a_batch_takes_the_time_of_its_own_write(
        mongo_url, make, store):
    """Live delivery is measured from `last_status_change`: a submission pending while the
    batch before it is written becomes QUEUED when its own batch is written, not before."""
    inserts = JobInserts()
    counted = await Store(mongo_url, store.db.db.name, listeners=[inserts]).open()
    try:
        job_type = await make.job_type("live", category="live")
        padded = {"version": "1.0", "output_data": [],
                  "input_data": [{"name": "pad", "value": "x" * 100_000}]}
        earlier = [asyncio.ensure_future(counted.jobs.submit_user_job(job_type, padded, ""))
                   for _ in range(20)]
        while counted.jobs._pending or counted.jobs._writer is None:  # its batch is writing
            await asyncio.sleep(0)
        late, _ = await counted.jobs.submit_user_job(job_type, {}, "")
        await asyncio.gather(*earlier)
    finally:
        await counted.close()
    assert len(inserts.acknowledged) == 2  # the earlier batch's jobs, then the late one
    assert late["last_status_change"] >= inserts.acknowledged[0]
    assert late["created"] == late["queued"] == late["last_status_change"]
    stored = await store.jobs.get_job(late["id"])
    assert stored["last_status_change"] == late["last_status_change"]
