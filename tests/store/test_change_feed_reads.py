"""What the live feed's liveness check costs the store (store/changes.py, JobChangeFeed), on each
backend.

Every server's feed asks the store, `stale_after / 4` apart (twice a second by default), whether
it holds a change newer than any the feed handed out. That read has to stay cheap however many
jobs the store holds: asked as "the newest change of all jobs", SecantusDB examines every job
(about 0.3 s at 1,000 jobs, measured), and with two servers on one store it was so busy that
live changes reached subscribers seconds late (tests/live/test_chaos.py[secantus]). nx-27017
and a real MongoDB answer either form from the index, so there the first test passes either way.
"""

import asyncio

import pytest
from pymongo import monitoring

from core.times import now_ms
from store.changes import JobChangeFeed
from tests.live_client import Collected, submit

MANY_JOBS = 1050
# What a `find` command asks (without the session, read preference and other envelope fields).
FIND_FIELDS = ("find", "filter", "projection", "sort", "skip", "limit", "singleBatch", "hint")


class JobReads(monitoring.CommandListener):
    """The `find` commands on one database's `jobs`, recorded between start() and stop().
    Registered once for the process, like tests/store/conftest.py's write guard: it sees every
    client made after this module is imported, which includes every test's store."""

    def __init__(self):
        self.database: str | None = None
        self.commands: list[dict] = []

    def start(self, database: str) -> None:
        self.database, self.commands = database, []

    def stop(self) -> list[dict]:
        self.database = None
        return self.commands

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if (event.database_name == self.database and event.command_name == "find"
                and event.command.get("find") == "jobs"):
            self.commands.append({k: event.command[k] for k in FIND_FIELDS
                                  if k in event.command})

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


JOB_READS = JobReads()
monitoring.register(JOB_READS)


async def many_jobs(store, make, count: int = MANY_JOBS) -> dict:
    job_type = await make.job_type("many")
    event = await make.event()
    ids = await store.db.next_ids("jobs", count)
    await store.db["jobs"].insert_many([store.jobs.new_job_doc(
        job_id, job_type, {"version": "1.0", "input_data": []}, event, now_ms() - 1000)
        for job_id in ids])
    return job_type


@pytest.mark.gen_test(timeout=60)
async def test_a_caught_up_feed_checks_liveness_without_examining_the_jobs(store, make):
    await many_jobs(store, make)
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs, stale_after=0.4)  # a check every 0.1 s
    await feed.start()
    JOB_READS.start(store.db.db.name)
    try:
        await asyncio.sleep(1.5)
    finally:
        reads = JOB_READS.stop()
        await feed.stop()
    assert feed.mode == "change-stream" and feed.restarts == 0 and not collected.jobs
    assert len(reads) >= 3, f"harness: the liveness check read the store {len(reads)} times"
    examined = []
    for command in {repr(c): c for c in reads}.values():
        explained = await store.db.db.command({"explain": command,
                                               "verbosity": "executionStats"})
        stats = explained["executionStats"]
        examined.append((command.get("filter"), stats["totalKeysExamined"],
                         stats["totalDocsExamined"]))
    assert all(keys <= 1 and docs <= 1 for _, keys, docs in examined), (
        f"the liveness check of a caught-up feed examines the jobs (filter, keys examined, "
        f"documents examined) of {MANY_JOBS}: {examined}")


@pytest.mark.gen_test(timeout=60)
async def test_the_liveness_check_still_restarts_a_silent_stream(store, make, other_process):
    """A stream that delivers nothing while the store changes (another process: this one's own
    changes are handed out without the stream) is restarted once the store stays ahead for
    `stale_after`, and the change it missed is handed out."""
    job_type = await many_jobs(store, make)
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs, stale_after=0.4)
    await feed.start()
    try:
        silent = await store.db["not_jobs"].watch()
        old, feed._stream = feed._stream, silent
        await old.close()
        job = await submit(other_process, job_type)
        await collected.until(job["id"], "QUEUED", within=10)
        assert feed.restarts == 1
        assert 0.4 < feed.max_lag < 5.0, feed.max_lag
        assert feed.lag == 0.0
    finally:
        await feed.stop()
