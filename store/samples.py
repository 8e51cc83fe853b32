"""The overview's time charts' figures, kept per minute so a chart reads at most KEEP_MS of
minutes (11,520 small documents), however many jobs there are.

- **Queue depth and running jobs.** The jobs only say how many are QUEUED or RUNNING now;
  rebuilding the past from their queued/started/ended times would read every job of the range
  (and a requeued job's earlier times are overwritten). So once a minute the kept counts
  (store/counts.py, no scan) are written as `{_id: minute start in ms, queued, running}` to
  `job_samples`. A minute the server was down has no sample: the chart shows a gap.
- **Finished jobs.** Once a minute has closed (FINISHED_GRACE_MS after its end, for writes
  stamped just before it), its COMPLETED and FAILED jobs are counted from the jobs'
  (status, last_status_change) index and written as `{_id: minute, completed, failed}` to
  `job_finished` (zeros too: every minute from the first recorded on is there). Each sample
  counts the minutes since the last recorded one, so after a pause it catches up (at most
  KEEP_MS back; the first sample of a store reads that much once). A job requeued and finished
  again later counts in both minutes, as it finished in both. The minutes not recorded yet (the
  current one or two) are counted from the jobs at read time.

Several processes may sample: the first to write a minute wins (its `_id` is taken); documents
older than KEEP_MS are removed.
"""

import asyncio
import contextlib
import logging

from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from core.model import JobStatus
from core.times import now_ms
from store.counts import JobCounts
from store.db import Database
from store.reads import aggregate_all, find_page

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
KEEP_MS = 8 * 24 * 3600 * 1000
FINISHED_GRACE_MS = 5000
FINISHED = {JobStatus.COMPLETED: "completed", JobStatus.FAILED: "failed"}
SAMPLE_FIELDS = {"_id": 1, "queued": 1, "running": 1}
FINISHED_FIELDS = {"_id": 1, "completed": 1, "failed": 1}


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


class JobSamples:
    def __init__(self, db: Database, counts: JobCounts):
        self.jobs = db["jobs"]
        self.samples = db["job_samples"]
        self.finished = db["job_finished"]
        self.counts = counts
        self._task: asyncio.Task | None = None

    async def take(self, at: int | None = None) -> dict:
        """Record the QUEUED and RUNNING counts of now under the minute of `at` (now unless
        given; an existing sample of that minute is kept), and the finished jobs of the minutes
        closed by then. The queue sample written or kept."""
        at = now_ms() if at is None else at
        counts = await self.counts.by_status()
        sample = {"_id": minute_of(at), "queued": counts.get(JobStatus.QUEUED, 0),
                  "running": counts.get(JobStatus.RUNNING, 0)}
        try:
            await self.samples.insert_one(dict(sample))
        except DuplicateKeyError:
            sample = await self.samples.find_one({"_id": sample["_id"]}, SAMPLE_FIELDS) or sample
        await self._record_finished(minute_of(at - FINISHED_GRACE_MS))
        for collection in (self.samples, self.finished):
            await collection.delete_many({"_id": {"$lt": at - KEEP_MS}})
        return sample

    async def _record_finished(self, closed: int) -> None:
        """Write the finished counts of the minutes before `closed` not recorded yet."""
        newest = await find_page(self.finished, {}, projection={"_id": 1},
                                 sort=[("_id", -1)], limit=1)
        start = max(newest[0]["_id"] + MINUTE_MS if newest else 0, closed - KEEP_MS)
        if start >= closed:
            return
        counted = await self.finished_per_minute(start, closed)
        docs = [{"_id": minute, **{name: counted[status].get(minute, 0)
                                   for status, name in FINISHED.items()}}
                for minute in range(start, closed, MINUTE_MS)]
        # Another process may have written some of these minutes meanwhile: theirs stay.
        with contextlib.suppress(BulkWriteError):
            await self.finished.insert_many(docs, ordered=False)

    async def finished_per_minute(self, start: int, end: int | None = None
                                  ) -> dict[str, dict[int, int]]:
        """{status: {minute start: jobs}} of the jobs now COMPLETED or FAILED whose status
        changed in [start, end) (no end: until now), read from the (status,
        last_status_change) index. nx-27017 evaluates expressions in `$project` but not in a
        `$group` key, so the minute is projected first; one pass per status."""
        span = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
        counted: dict[str, dict[int, int]] = {}
        for status in FINISHED:
            rows = await aggregate_all(self.jobs, [
                {"$match": {"status": {"$eq": status}, "last_status_change": span}},
                {"$project": {"minute": {"$subtract": [
                    "$last_status_change", {"$mod": ["$last_status_change", MINUTE_MS]}]}}},
                {"$group": {"_id": "$minute", "n": {"$sum": 1}}},
            ])
            counted[status] = {int(row["_id"]): row["n"] for row in rows}
        return counted

    async def between(self, start: int, end: int) -> tuple[list[dict], dict[str, dict[int, int]]]:
        """The queue samples of the minutes in [start, end), oldest first, and the finished
        jobs per minute ({status: {minute: n}}): recorded ones, then the minutes after the
        newest recorded one counted from the jobs."""
        limit = max(1, -(-(end - start) // MINUTE_MS))
        samples = await find_page(self.samples, {"_id": {"$gte": start, "$lt": end}},
                                  projection=SAMPLE_FIELDS, sort=[("_id", 1)], limit=limit)
        recorded = await find_page(self.finished, {"_id": {"$gte": start, "$lt": end}},
                                   projection=FINISHED_FIELDS, sort=[("_id", 1)], limit=limit)
        tail = recorded[-1]["_id"] + MINUTE_MS if recorded else start
        finished = await self.finished_per_minute(tail, end)
        for doc in recorded:
            for status, name in FINISHED.items():
                if doc[name]:
                    finished[status][doc["_id"]] = doc[name]
        return samples, finished

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
            await asyncio.sleep((MINUTE_MS - now_ms() % MINUTE_MS + FINISHED_GRACE_MS) / 1000)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
