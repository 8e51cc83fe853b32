"""The change feed cannot die silently: a cancelled store read elsewhere leaves its stream alone,
a stream the store ended without an error is restarted, and a stream that is alive but silent is
caught by the liveness check. Each restart shows in /health and /metrics."""

import asyncio
import re

import pytest

from core.times import now_ms
from store import changes
from store.changes import JobChangeFeed
from store.jobs import JobFilter
from tests.live_client import Collected, Subscriber, submit, until_live

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone

MANY_JOBS = 1500


async def many_jobs(make, job_type: dict, count: int = MANY_JOBS) -> None:
    """PENDING jobs bulk-inserted, so reads of them take several milliseconds."""
    await make.bulk_jobs(job_type, [now_ms() - 1000] * count,
                         {"input_data": [{"name": "pad", "value": "x" * 200}]})


async def cancel_mid_read(read, delay: float = 0.003) -> None:
    """Start a store read and cancel it after `delay`, while it may be on the wire: the driver
    then closes the connection it ran on, and nx-27017 drops every cursor that connection
    opened."""
    task = asyncio.create_task(read())
    await asyncio.sleep(delay)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def swap_stream(feed: JobChangeFeed, stream) -> None:
    """Put `stream` in place of the feed's own, which is closed."""
    old, feed._stream = feed._stream, stream
    await old.close()


async def arrives_with_no_other_restart(feed: JobChangeFeed, collected: Collected,
                                        other_process, job_type: dict) -> None:
    """After the feed's one restart, another process's next change comes through the new
    stream within a second."""
    later = await submit(other_process, job_type)
    await collected.until(later["id"], "QUEUED", within=1.0)
    assert feed.restarts == 1


@pytest.mark.gen_test(timeout=60)
async def test_cancelled_reads_on_the_shared_connections_leave_the_feed_alive(store, make):
    job_type = await make.job_type("live", category="live")
    await many_jobs(make, job_type)
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs)
    await feed.start()
    try:
        for delay_ms in list(range(20)) * 2:  # some cancels land on the wire, whatever the pace
            await cancel_mid_read(lambda: store.jobs.list_jobs(
                JobFilter(job_type_ids=[job_type["id"]]), [("id", 1)], 1, 1000), delay_ms / 1000)
        for _ in range(10):
            job = await submit(store, job_type)
            await collected.until(job["id"], "QUEUED")
    finally:
        await feed.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_stream_the_store_ended_without_an_error_is_restarted(store, make):
    """The stream's own connection closed under it: nx-27017 answers the next getMore with
    "no more" and the driver marks the stream dead without raising."""
    job_type = await make.job_type("live", category="live")
    await many_jobs(make, job_type)
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs)
    await feed.start()
    try:
        stream_jobs = feed._stream_client[store.db.db.name]["jobs"]
        for _ in range(5):
            await cancel_mid_read(lambda: stream_jobs.find({}).to_list())
            if feed.restarts:
                break
        job = await submit(store, job_type)
        await collected.until(job["id"], "QUEUED")
        assert feed.restarts >= 1
    finally:
        await feed.stop()


@pytest.mark.gen_test(timeout=60)
async def test_liveness_check_restarts_a_stream_that_is_alive_but_silent(store, make,
                                                                         other_process):
    """A stream that delivers nothing while the store changes (a resume past a gap, a lost
    cursor the store still answers for) is restarted once the store stays ahead for
    `stale_after`, and what it missed is handed out. The changes come from another process:
    this process's own are handed out without the stream."""
    job_type = await make.job_type("live", category="live")
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs, stale_after=0.4)
    await feed.start()
    try:
        await swap_stream(feed, await store.db["not_jobs"].watch())
        job = await submit(other_process, job_type)
        await collected.until(job["id"], "QUEUED")
        assert feed.restarts == 1
        assert 0.4 < feed.max_lag < 2.0, feed.max_lag
        assert feed.lag == 0.0
        await arrives_with_no_other_restart(feed, collected, other_process, job_type)
    finally:
        await feed.stop()


@pytest.mark.gen_test(timeout=60)
async def test_health_and_metrics_show_the_feeds_restarts_and_lag(hub, make, api,
                                                                   http_client, base_url):
    job_type = await make.job_type("live", category="live")
    subscriber = await Subscriber.connect(base_url)
    try:
        await until_live(hub, 1)
        feed = hub.feed
        feed.restarts, feed.max_lag = 2, 1.25
        status, body, _ = await api.get("/health")
        assert status == 200
        assert body["live"] == {"running": True, "mode": "change-stream", "lag_seconds": 0.0,
                                "max_lag_seconds": 1.25, "restarts": 2}
        text = (await http_client.fetch(base_url + "/metrics")).body.decode()
        assert re.search(r"^jobdeck_live_feed_restarts_total 2\.0$", text, re.MULTILINE)
        assert re.search(r"^jobdeck_live_feed_max_lag_seconds 1\.25$", text, re.MULTILINE)
        assert re.search(r"^jobdeck_live_feed_lag_seconds 0\.0$", text, re.MULTILINE)
        job = await make.submit(job_type)
        await subscriber.until_row(job["id"], "QUEUED")
    finally:
        subscriber.close()


class UnansweredStream:
    """A change stream whose getMore the store never answers (the clients have no socket
    timeout, so the driver would wait for ever)."""

    alive = True

    async def try_next(self):
        await asyncio.Event().wait()

    async def close(self):
        await asyncio.Event().wait()  # the store answers nothing, a killCursors neither


@pytest.mark.gen_test(timeout=60)
async def test_a_getmore_the_store_never_answers_restarts_the_stream(store, make, other_process,
                                                                      monkeypatch):
    """The liveness check runs between getMores, so it cannot catch this one: the wait itself
    is bounded (GETMORE_LIMIT), and the changes another process made meanwhile are handed out."""
    monkeypatch.setattr(changes, "GETMORE_LIMIT", 0.5)
    job_type = await make.job_type("live", category="live")
    collected = Collected()
    feed = JobChangeFeed(store, collected.on_jobs)
    await feed.start()
    try:
        await swap_stream(feed, UnansweredStream())
        job = await submit(other_process, job_type)
        await collected.until(job["id"], "QUEUED", within=5.0)
        assert feed.restarts == 1
        await arrives_with_no_other_restart(feed, collected, other_process, job_type)
    finally:
        await feed.stop()
