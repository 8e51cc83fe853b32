"""The store's change feed in both modes: every status change made by the transition functions
comes out once, in order, and nothing from before the feed started."""

import asyncio

import pytest

from store.changes import JobChangeFeed


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("use_change_stream", [True, False], ids=["change-stream", "tail"])
async def test_feed_hands_out_each_status_change_once(store, make, use_change_stream):
    job_type = await make.job_type("live", category="live")
    before, _ = await store.jobs.submit_job(job_type, {}, await store.jobs.create_event(
        "USER", {}), "")
    batches = []
    arrived = asyncio.Event()

    async def on_jobs(batch):
        batches.append(batch)
        arrived.set()

    async def until(job_id, status):
        while not any(j["id"] == job_id and j["status"] == status for b in batches for j in b):
            arrived.clear()
            await arrived.wait()

    feed = JobChangeFeed(store, on_jobs, use_change_stream=use_change_stream)
    await feed.start()
    try:
        assert feed.mode == ("change-stream" if use_change_stream else "tail")
        event = await store.jobs.create_event("USER", {})
        job, exe = await store.jobs.submit_job(job_type, {}, event, "")
        # Tailing sees one state per poll, so each change is awaited before the next.
        await until(job["id"], "QUEUED")
        running, _ = await store.jobs.start_execution(exe["id"], None)
        await store.jobs.update_execution(exe["id"], pre_started=running["started"])
        await until(job["id"], "RUNNING")
        canceled = await store.jobs.cancel_job(job["id"])
        await until(job["id"], "CANCELED")
    finally:
        await feed.stop()
    changes = [(j["id"], j["status"], j["last_status_change"]) for b in batches for j in b]
    assert changes == [(job["id"], "QUEUED", job["last_status_change"]),
                       (job["id"], "RUNNING", running["last_status_change"]),
                       (job["id"], "CANCELED", canceled["last_status_change"])]
    assert before["id"] not in {j["id"] for b in batches for j in b}
    assert all("data" not in j and "_id" not in j for b in batches for j in b)
