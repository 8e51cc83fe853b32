"""The overview's time charts' figures, kept per minute in one document per hour
(`job_minutes`: `{_id: hour start in ms, q<m>, r<m>, c<m>, f<m>}` for minute m of the hour), so
a 7-day chart reads 169 small documents however many jobs there are (one document per minute
took 0.5 s to read for 7 days on nx-27017). Fields are top-level: nx-27017 may write a dotted
path as a literal field name.

- **Queue depth and running jobs** (`q<m>`, `r<m>`). The jobs only say how many are QUEUED or
  RUNNING now; rebuilding the past from their queued/started/ended times would read every job
  of the range (and a requeued job's earlier times are overwritten). So once a minute the kept
  counts (store/counts.py, no scan) are written. A minute the server was down has no sample:
  the chart shows a gap.
- **Finished jobs** (`c<m>`, `f<m>`). Once a minute has closed (FINISHED_GRACE_MS after its
  end, for writes stamped just before it), its COMPLETED and FAILED jobs are counted from the
  jobs' (status, last_status_change) index and written, zeros too; `job_minutes_state`
  `{_id: "finished", through}` says up to which minute they are. Each sample records the
  minutes since then, so after a pause it catches up (at most KEEP_MS back; the first sample of
  a store reads that much once). A job requeued and finished again later counts in both
  minutes, as it finished in both. The minutes after `through` (the open one or two) are
  read from the kept counts (store/counts.py: jobs by status and minute of their last status
  change) when the caller read them, else counted from the jobs at read time (also when
  `through` is older than the minutes the counts keep: a sampler that was down).

Several processes may sample: they write the same figures; `through` only moves forward.
Hours older than KEEP_MS are removed.
"""

import asyncio
import contextlib
import logging

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from core.model import JobStatus
from core.times import now_ms
from store.counts import JobCounts, Kept, kept_since
from store.db import Database
from store.reads import aggregate_all, find_page

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
KEEP_MS = 8 * 24 * HOUR_MS
FINISHED_GRACE_MS = 5000
# The catch-up counts a day per aggregation: 8 days of minutes (11,520 groups) exceed what one
# batch of a read holds (store/reads.py AGGREGATE_BATCH), and a busy store has jobs in each.
RECORD_SPAN_MS = 24 * HOUR_MS
# Each figure's field prefix in an hour's document.
FINISHED = {JobStatus.COMPLETED: "c", JobStatus.FAILED: "f"}
QUEUE = {"queued": "q", "running": "r"}


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def field(prefix: str, minute: int) -> str:
    """A minute's field in its hour's document: `q17` is the queue sample of minute 17."""
    return f"{prefix}{minute % HOUR_MS // MINUTE_MS}"


class JobSamples:
    def __init__(self, db: Database, counts: JobCounts):
        self.jobs = db["jobs"]
        self.hours = db["job_minutes"]
        self.state = db["job_minutes_state"]
        self.counts = counts
        self._task: asyncio.Task | None = None

    async def take(self, at: int | None = None) -> dict:
        """Record the QUEUED and RUNNING counts of now under the minute of `at` (now unless
        given), and the finished jobs of the minutes closed by then. The queue sample."""
        at = now_ms() if at is None else at
        counts = (await self.counts.read()).by_status()
        minute = minute_of(at)
        sample = {"_id": minute, "queued": counts.get(JobStatus.QUEUED, 0),
                  "running": counts.get(JobStatus.RUNNING, 0)}
        await self.hours.update_one(
            {"_id": hour_of(minute)},
            {"$set": {field(prefix, minute): sample[name] for name, prefix in QUEUE.items()}},
            upsert=True)
        await self._record_finished(minute_of(at - FINISHED_GRACE_MS))
        await self.hours.delete_many({"_id": {"$lt": hour_of(at - KEEP_MS)}})
        return sample

    async def _through(self) -> int | None:
        """The minute the recorded finished counts reach (exclusive), None before the first."""
        doc = await self.state.find_one({"_id": "finished"})
        return None if doc is None else doc["through"]

    async def _record_finished(self, closed: int) -> None:
        """Write the finished counts of the minutes before `closed` not recorded yet."""
        through = await self._through()
        start = max(through or 0, closed - KEEP_MS)
        if start >= closed:
            return
        counted: dict[str, dict[int, int]] = {status: {} for status in FINISHED}
        for part in range(start, closed, RECORD_SPAN_MS):
            minutes = await self.finished_per_minute(part, min(part + RECORD_SPAN_MS, closed))
            for status, per_minute in minutes.items():
                counted[status].update(per_minute)
        updates: dict[int, dict] = {}
        for minute in range(start, closed, MINUTE_MS):
            fields = updates.setdefault(hour_of(minute), {})
            for status, prefix in FINISHED.items():
                fields[field(prefix, minute)] = counted[status].get(minute, 0)
        await self.hours.bulk_write([UpdateOne({"_id": hour}, {"$set": fields}, upsert=True)
                                     for hour, fields in updates.items()], ordered=False)
        # Forward only: another process that recorded further keeps its `through`.
        with contextlib.suppress(DuplicateKeyError):
            await self.state.update_one({"_id": "finished", "through": {"$lt": closed}},
                                        {"$set": {"through": closed}}, upsert=True)

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

    async def between(self, start: int, end: int, kept: Kept | None = None
                      ) -> tuple[list[dict], dict[str, dict[int, int]]]:
        """The queue samples of the minutes in [start, end), oldest first, and the finished
        jobs per minute ({status: {minute: n}}, minutes without any left out): recorded ones,
        then the minutes after the recorded ones from `kept`, the kept counts read before this
        call, or else counted from the jobs."""
        first = hour_of(start)
        docs = await find_page(self.hours, {"_id": {"$gte": first, "$lt": end}},
                               sort=[("_id", 1)], limit=max(1, -(-(end - first) // HOUR_MS)))
        through = await self._through()
        tail = start if through is None else max(start, min(through, end))
        if kept is not None and tail >= kept_since(now_ms()):
            finished = kept.per_minute(FINISHED, tail, end)
        else:
            finished = await self.finished_per_minute(tail, end)
        samples = []
        for doc in docs:
            for minute in range(doc["_id"], doc["_id"] + HOUR_MS, MINUTE_MS):
                if not start <= minute < end:
                    continue
                if field("q", minute) in doc:
                    samples.append({"_id": minute, **{name: doc[field(prefix, minute)]
                                                      for name, prefix in QUEUE.items()}})
                if minute < tail:
                    for status, prefix in FINISHED.items():
                        if doc.get(field(prefix, minute)):
                            finished[status][minute] = doc[field(prefix, minute)]
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
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
