"""Queue depth and running jobs over time, kept as one sample a minute.

The jobs only say how many are QUEUED or RUNNING now, and rebuilding the past from their
queued/started/ended times would read every job of the range (a requeued job is queued more than
once, and its earlier times are overwritten). So once a minute the kept counts (store/counts.py,
no scan) are written as `{_id: minute start in ms, queued, running}` to `job_samples`: the
first process to write a minute wins (its `_id` is taken), samples older than KEEP_MS are
removed, and a chart reads one `_id` range of at most KEEP_MS / SAMPLE_MS small documents,
however many jobs there are. A minute the server was down has no sample: the chart shows a gap.
"""

import asyncio
import contextlib
import logging

from pymongo.errors import DuplicateKeyError, PyMongoError

from core.model import JobStatus
from core.times import now_ms
from store.counts import JobCounts
from store.db import Database
from store.reads import find_page

log = logging.getLogger(__name__)

SAMPLE_MS = 60_000
KEEP_MS = 8 * 24 * 3600 * 1000
PROJECTION = {"_id": 1, "queued": 1, "running": 1}


class JobSamples:
    def __init__(self, db: Database, counts: JobCounts):
        self.samples = db["job_samples"]
        self.counts = counts
        self._task: asyncio.Task | None = None

    async def take(self, at: int | None = None) -> dict:
        """Record the QUEUED and RUNNING counts of now under the minute of `at` (now unless
        given); an existing sample of that minute is kept. The sample written or kept."""
        at = now_ms() if at is None else at
        counts = await self.counts.by_status()
        sample = {"_id": at - at % SAMPLE_MS, "queued": counts.get(JobStatus.QUEUED, 0),
                  "running": counts.get(JobStatus.RUNNING, 0)}
        try:
            await self.samples.insert_one(dict(sample))
        except DuplicateKeyError:
            kept = await self.samples.find_one({"_id": sample["_id"]}, PROJECTION)
            sample = kept or sample
        await self.samples.delete_many({"_id": {"$lt": at - KEEP_MS}})
        return sample

    async def between(self, start: int, end: int) -> list[dict]:
        """The samples of minutes in [start, end), oldest first."""
        limit = max(1, -(-(end - start) // SAMPLE_MS))
        return await find_page(self.samples, {"_id": {"$gte": start, "$lt": end}},
                               projection=PROJECTION, sort=[("_id", 1)], limit=limit)

    def keep(self) -> None:
        """Sample once a minute in the background (once per event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="jobdeck-job-samples")

    async def _loop(self) -> None:
        while True:
            try:
                await self.take()
            except PyMongoError as exc:
                log.debug("job samples: a sample failed (%s); the next minute tries again", exc)
            await asyncio.sleep((SAMPLE_MS - now_ms() % SAMPLE_MS) / 1000 + 1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
