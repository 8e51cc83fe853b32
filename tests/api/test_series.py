"""GET /jobs/series/: the overview charts' series, and its one parameter."""

import pytest

from core.times import format_ms, now_ms
from tests.commands import AGGREGATES


@pytest.mark.gen_test
async def test_series_counts_finished_jobs_per_interval_and_the_queue_now(api, make, store):
    jt = await make.job_type("series")
    job, _ = await make.completed(jt)
    minute = now_ms() // 60_000 * 60_000
    await make.touch(job["id"], minute - 120_000, minute - 120_000)
    await make.queued(jt)
    status, body, headers = await api.get("/jobs/series/?range=1h")
    assert status == 200 and headers["Content-Type"] == "application/json; charset=UTF-8"
    assert (body["range"], body["interval_seconds"], len(body["points"])) == ("1h", 60, 60)
    assert list(body["points"][0]) == ["time", "completed", "failed", "queued", "running"]
    marked = [p for p in body["points"] if p["completed"] or p["failed"]]
    assert marked == [{"time": format_ms(minute - 120_000), "completed": 1, "failed": 0,
                       "queued": None, "running": None}]
    assert (body["points"][-1]["queued"], body["points"][-1]["running"]) == (1, 0)
    assert body["started"] == body["points"][0]["time"]


@pytest.mark.gen_test
async def test_series_names_a_bad_range(api):
    status, body, headers = await api.get("/jobs/series/?range=2h")
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert body.strip() == "range must be one of 1h, 24h, 7d, not '2h'"


@pytest.mark.gen_test
async def test_series_reads_the_open_minutes_from_the_kept_counts(api, make, store):
    """With the minutes before recorded, a series reads no aggregation over the jobs: the open
    minutes' finished jobs come from the kept counts, which it reads for the queue anyway."""
    jt = await make.job_type("series")
    await store.samples.take()
    await make.completed(jt)
    await make.failed(jt)
    AGGREGATES.clear()
    status, body, _ = await api.get("/jobs/series/?range=1h")
    assert status == 200 and "jobs" not in AGGREGATES.on
    assert (sum(p["completed"] or 0 for p in body["points"]),
            sum(p["failed"] or 0 for p in body["points"])) == (1, 1)
