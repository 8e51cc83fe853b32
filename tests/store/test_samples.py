"""store/samples.py: the charts' per-minute figures: queue samples, finished jobs of closed
minutes recorded once and kept when a job moves on, caught up after a pause, and the open
minutes counted from the jobs."""

import pytest

from core.times import now_ms
from store.counts import MINUTES_KEPT_MS
from store.reads import AGGREGATE_BATCH
from store.samples import FINISHED_GRACE_MS, KEEP_MS, MINUTE_MS, field, hour_of
from tests.commands import AGGREGATES

pytestmark = pytest.mark.gen_test


async def failed_at(make, job_type, at: int) -> dict:
    job, _ = await make.failed(job_type)
    await make.touch(job["id"], at, at)
    return job


async def test_finished_minutes_are_recorded_once_and_kept(store, make):
    jt = await make.job_type("sampled")
    minute = now_ms() // MINUTE_MS * MINUTE_MS
    old = minute - 30 * MINUTE_MS
    job = await failed_at(make, jt, old + 1000)
    first = await store.samples.take(minute - 20 * MINUTE_MS)
    assert first == {"_id": minute - 20 * MINUTE_MS, "queued": 0, "running": 0}
    await make.queued(jt)
    # A later sample of the same minute writes what it sees then.
    first = await store.samples.take(minute - 20 * MINUTE_MS + 30_000)
    assert first == {"_id": minute - 20 * MINUTE_MS, "queued": 1, "running": 0}
    # The failed job is requeued: its recorded minute still counts it (it did fail then).
    await store.jobs.requeue_job(job["id"])
    recent = await failed_at(make, jt, minute - 5 * MINUTE_MS)
    samples, finished = await store.samples.between(minute - 60 * MINUTE_MS, now_ms() + 1)
    assert samples == [first]
    assert finished == {"COMPLETED": {}, "FAILED": {old: 1, minute - 5 * MINUTE_MS: 1}}
    # A later sample catches up on the minutes since (the requeued job now counts where it
    # failed last); the first minute recorded stays as it was.
    await store.samples.take(minute + FINISHED_GRACE_MS)
    hours = {doc["_id"]: doc async for doc in store.db["job_minutes"].find({})}
    recorded = {m: hours[hour_of(m)][field("f", m)] for m in range(old, minute, MINUTE_MS)}
    assert recorded == {m: 1 if m in (old, minute - 5 * MINUTE_MS) else 0
                        for m in range(old, minute, MINUTE_MS)}
    assert await store.db["job_minutes_state"].find_one({}) == {"_id": "finished",
                                                                "through": minute}
    _, finished = await store.samples.between(minute - 60 * MINUTE_MS, now_ms() + 1)
    assert finished == {"COMPLETED": {}, "FAILED": {old: 1, minute - 5 * MINUTE_MS: 1}}
    assert recent["id"] != job["id"]


async def test_samples_past_the_kept_span_are_removed(store):
    now = now_ms()
    await store.samples.take(now - KEEP_MS - 2 * 3600_000)
    await store.samples.take(now)
    samples, _ = await store.samples.between(now - 2 * KEEP_MS, now + 1)
    assert [s["_id"] for s in samples] == [now - now % MINUTE_MS]
    hours = [doc["_id"] async for doc in store.db["job_minutes"].find({}, {"_id": 1})]
    assert min(hours) >= hour_of(now - KEEP_MS) and max(hours) == hour_of(now)


async def test_a_first_sample_records_finished_jobs_in_every_minute_of_the_kept_span(store):
    """More finished minutes than one read's batch holds (store/reads.py AGGREGATE_BATCH)."""
    now = now_ms()
    closed = now - now % MINUTE_MS - MINUTE_MS
    minutes = range(closed - AGGREGATE_BATCH * MINUTE_MS - 60 * MINUTE_MS, closed, MINUTE_MS)
    ids = await store.db.next_ids("jobs", len(minutes))
    await store.db["jobs"].insert_many(
        [{"_id": job_id, "id": job_id, "job_type_id": 1, "status": "COMPLETED",
          "last_status_change": minute + 7, "last_modified": minute + 7}
         for job_id, minute in zip(ids, minutes, strict=True)], ordered=False)

    await store.samples.take(closed + MINUTE_MS + FINISHED_GRACE_MS)

    assert (await store.db["job_minutes_state"].find_one({}))["through"] == closed + MINUTE_MS
    _, finished = await store.samples.between(minutes[0], closed)
    assert finished == {"COMPLETED": dict.fromkeys(minutes, 1), "FAILED": {}}


async def test_the_open_minutes_come_from_the_kept_counts_as_the_jobs_would_say(store, make):
    """With the kept counts read first, the minutes after the recorded ones are theirs (jobs by
    status and minute of the last status change): the same figures as counting the jobs,
    without an aggregation over the jobs."""
    jt = await make.job_type("open")
    now = now_ms()
    minute = now - now % MINUTE_MS
    await store.samples.take(minute - 3 * MINUTE_MS + FINISHED_GRACE_MS)
    for ago in (0, 1, 1, 2):
        job, _ = await make.completed(jt)
        await make.touch(job["id"], minute - ago * MINUTE_MS + 7, minute - ago * MINUTE_MS + 7)
    await failed_at(make, jt, minute - MINUTE_MS + 9)
    requeued = await failed_at(make, jt, minute - 2 * MINUTE_MS + 9)
    await store.jobs.requeue_job(requeued["id"])
    await failed_at(make, jt, minute + 11)
    counted = await store.samples.between(minute - 60 * MINUTE_MS, now_ms() + 1)
    assert counted[1] == {"COMPLETED": {minute: 1, minute - MINUTE_MS: 2,
                                        minute - 2 * MINUTE_MS: 1},
                          "FAILED": {minute - MINUTE_MS: 1, minute: 1}}
    kept = await store.counts.read()
    AGGREGATES.clear()
    assert await store.samples.between(minute - 60 * MINUTE_MS, now_ms() + 1, kept) == counted
    assert "jobs" not in AGGREGATES.on


async def test_open_minutes_older_than_the_kept_ones_are_counted_from_the_jobs(store, make):
    """A sampler down for longer than the kept counts keep minutes: the minutes since its last
    record are counted from the jobs, even with the kept counts at hand."""
    jt = await make.job_type("behind")
    now = now_ms()
    minute = now - now % MINUTE_MS
    await store.samples.take(minute - MINUTES_KEPT_MS - 30 * MINUTE_MS)
    old = await failed_at(make, jt, minute - MINUTES_KEPT_MS - 10 * MINUTE_MS + 5)
    await store.counts.fold_all()
    recent = await failed_at(make, jt, minute - 5)
    kept = await store.counts.read()
    AGGREGATES.clear()
    _, finished = await store.samples.between(minute - 3 * MINUTES_KEPT_MS, now_ms() + 1, kept)
    assert finished == {"COMPLETED": {}, "FAILED": {
        minute - MINUTES_KEPT_MS - 10 * MINUTE_MS: 1, minute - MINUTE_MS: 1}}
    assert "jobs" in AGGREGATES.on and recent["id"] != old["id"]
