"""A feed of job status changes, so every server process on a store sees every change.

Two sources, chosen when the feed starts:

- a MongoDB change stream on `jobs` (nx-27017 and replica sets offer one). nx-27017's events carry
  a post-image of the job as it was at that change (only its `_id` is garbled), which keeps
  QUEUED → RUNNING → COMPLETED apart even when they happen within milliseconds; a real MongoDB's
  `updateLookup` image is the document at read time instead, and non-status updates are skipped
  there through `updateDescription`. nx-27017 also streams writes to a `jobs` collection of any
  database, so every event is checked against this database by re-reading its `_id` (one query
  per batch).
- otherwise, tailing `last_status_change`: jobs changed since the newest one seen, re-read with a
  look-back (status changes stamped by another process may commit a little out of order) and
  de-duplicated on (`id`, `last_status_change`). Changes that follow each other within one poll
  collapse to the last one there.

When the stream fails (the store died or restarted) it is reopened, resuming from its last token
where the store still knows it, and the jobs changed since the last change handed out (minus the
look-back) are re-read, so changes made while it was down still reach subscribers; `resync()` does
the same re-read on demand (after the embedded store was restarted under it).

Either way the feed hands out job documents (without `data` and `results`), each a status change
not handed out before, in `last_status_change` order per batch.
"""

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from pymongo.errors import OperationFailure, PyMongoError

from core.times import now_ms
from store.jobs import JobFilter, JobStore

log = logging.getLogger("jobdeck.changes")

ROW_PROJECTION = {"data": 0, "results": 0}
# The fields a /jobs/updates/ row is built from; an event image missing one is re-read instead.
ROW_FIELDS = ("id", "job_type_id", "job_type_rev_id", "job_type_rev_num", "event", "error_id",
              "status", "priority", "num_exes", "timeout", "max_tries", "cpus_required",
              "mem_required", "disk_in_required", "disk_out_required", "created", "queued",
              "started", "ended", "last_status_change", "last_modified")
STREAM_BATCH = 1000
IDLE_POLL = 0.01          # nx-27017 answers an empty getMore at once instead of waiting
MAX_AWAIT_MS = 200        # how long a real MongoDB holds an empty getMore
TAIL_INTERVAL = 0.05
TAIL_LOOKBACK_MS = 2000
TAIL_LIMIT = 5000
RETRY_DELAY = 1.0
REMEMBERED_JOBS = 200_000  # jobs whose last handed-out change is kept to drop non-status updates

OnJobs = Callable[[list[dict]], Awaitable[None]]


def change_key(job: dict) -> tuple[int, int]:
    return job["id"], job["last_status_change"]


class JobChangeFeed:
    """Calls `on_jobs(jobs)` with each batch of new status changes until stopped."""

    def __init__(self, store, on_jobs: OnJobs, use_change_stream: bool = True):
        self.jobs = store.db["jobs"]
        self.job_store = store.jobs
        self.on_jobs = on_jobs
        self.use_change_stream = use_change_stream
        self.mode: str | None = None
        self._stream = None
        self._token = None
        self._task: asyncio.Task | None = None
        self._last_change: OrderedDict[int, int] = OrderedDict()
        # The newest last_status_change handed out (or the start): re-reads begin there.
        self._watermark = 0

    async def start(self) -> None:
        """Open the source before returning, so changes committed from now on are all seen."""
        if self.use_change_stream:
            try:
                self._watermark = now_ms()
                self._stream = await self._open_stream()
                self.mode = "change-stream"
                self._task = asyncio.create_task(self._follow_stream())
                return
            except OperationFailure as exc:
                log.info("no change streams on this store (%s); tailing last_status_change",
                         exc)
        self.mode = "tail"
        watermark = await self._newest_change()
        self._task = asyncio.create_task(self._tail(watermark))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._stream is not None:
            with contextlib.suppress(PyMongoError):
                await self._stream.close()
            self._stream = None

    # -- handing out -------------------------------------------------------------------------

    def _fresh(self, jobs: list[dict]) -> list[dict]:
        """Drop changes already handed out (same `id` and `last_status_change`, or older)."""
        fresh = []
        for job in sorted(jobs, key=lambda j: (j["last_status_change"], j["id"])):
            last = self._last_change.get(job["id"])
            if last is not None and job["last_status_change"] <= last:
                continue
            self._last_change[job["id"]] = job["last_status_change"]
            self._last_change.move_to_end(job["id"])
            fresh.append(job)
        while len(self._last_change) > REMEMBERED_JOBS:
            self._last_change.popitem(last=False)
        return fresh

    async def _hand_out(self, jobs: list[dict]) -> None:
        fresh = self._fresh(jobs)
        if fresh:
            self._watermark = max(self._watermark, fresh[-1]["last_status_change"])
            try:
                await self.on_jobs(fresh)
            except Exception:
                log.exception("a live update batch could not be delivered")

    # -- change stream -----------------------------------------------------------------------

    async def _open_stream(self, resume_after=None):
        return await self.jobs.watch(full_document="updateLookup", resume_after=resume_after,
                                     max_await_time_ms=MAX_AWAIT_MS, batch_size=STREAM_BATCH)

    async def _follow_stream(self) -> None:
        """Follow the stream; on a store error drop it and retry until the store answers."""
        while True:
            try:
                if self._stream is None:
                    await self._reopen()
                events = await self._next_events()
                if events:
                    await self._hand_out(await self._images(events))
            except PyMongoError as exc:
                if self._stream is not None:
                    log.warning("job change stream failed (%s); reopening", exc)
                    self._token = self._stream.resume_token or self._token
                    with contextlib.suppress(PyMongoError):
                        await self._stream.close()
                    self._stream = None
                await asyncio.sleep(RETRY_DELAY)

    async def _reopen(self) -> None:
        """Open the stream again (resumed when the store still knows the token), then re-read
        what changed since the watermark: whatever the stream missed meanwhile."""
        try:
            stream = await self._open_stream(resume_after=self._token)
        except OperationFailure as exc:
            log.info("the job change stream cannot resume (%s); opening a new one", exc)
            stream = await self._open_stream()
        self._stream = stream
        await self._catch_up()
        log.info("job change stream reopened")

    async def resync(self) -> None:
        """Re-read the jobs changed since the last change handed out (a no-op unless following
        a change stream: the tail re-reads by itself)."""
        if self._task is not None and self.mode == "change-stream":
            await self._catch_up()

    async def _catch_up(self) -> None:
        changed_since = JobFilter(started=self._watermark - TAIL_LOOKBACK_MS,
                                  time_field="last_status_change")
        after = None
        while True:
            jobs = await job_updates_after(self.job_store, changed_since, after, TAIL_LIMIT)
            for job in jobs:
                job.pop("_id", None)
            await self._hand_out(jobs)
            if len(jobs) < TAIL_LIMIT:
                return
            after = (jobs[-1]["last_status_change"], jobs[-1]["id"])

    async def _next_events(self) -> list[dict]:
        """Every event available now (waiting briefly for the first one)."""
        began = time.monotonic()
        event = await self._stream.try_next()
        if event is None:
            idle = IDLE_POLL - (time.monotonic() - began)
            if idle > 0:
                await asyncio.sleep(idle)
            return []
        events = [event]
        while len(events) < STREAM_BATCH:
            event = await self._stream.try_next()
            if event is None:
                break
            events.append(event)
        return events

    async def _images(self, events: list[dict]) -> list[dict]:
        """The job as of each status-changing event, only for jobs in this database."""
        wanted = []
        for event in events:
            if event.get("operationType") not in ("insert", "update", "replace"):
                continue
            described = event.get("updateDescription")
            if described and "last_status_change" not in (described.get("updatedFields") or {}):
                continue
            wanted.append(event)
        if not wanted:
            return []
        ids = {event["documentKey"]["_id"] for event in wanted}
        ids |= {int(key) for key in ids if isinstance(key, str) and key.isdigit()}
        # Keyed by str(_id): nx-27017 reports an integer `_id` in documentKey as text.
        current = {str(doc.pop("_id")): doc for doc in
                   await self.jobs.find({"_id": {"$in": list(ids)}}, ROW_PROJECTION).to_list()}
        images = []
        for event in wanted:
            doc = current.get(str(event["documentKey"]["_id"]))
            if doc is None:
                continue
            image = event.get("fullDocument")
            if _usable_image(image, doc["id"]):
                doc = {k: v for k, v in image.items() if k not in ("_id", "data", "results")}
            images.append(doc)
        return images

    # -- tailing -----------------------------------------------------------------------------

    async def _newest_change(self) -> int:
        newest = await self.jobs.find_one({}, {"last_status_change": 1},
                                          sort=[("last_status_change", -1), ("id", -1)])
        return newest["last_status_change"] if newest else 0

    async def _tail(self, watermark: int) -> None:
        seen: set[tuple[int, int]] = set()
        first = True
        while True:
            try:
                since = watermark - TAIL_LOOKBACK_MS
                jobs = await (self.jobs.find({"last_status_change": {"$gte": since}},
                                             ROW_PROJECTION)
                              .sort([("last_status_change", 1), ("id", 1)])
                              .limit(TAIL_LIMIT).to_list())
            except PyMongoError as exc:
                log.warning("tailing job changes failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for job in jobs:
                job.pop("_id", None)
            new = [job for job in jobs if change_key(job) not in seen]
            seen.update(change_key(job) for job in new)
            if jobs:
                watermark = max(watermark, jobs[-1]["last_status_change"])
            seen = {key for key in seen if key[1] >= watermark - TAIL_LOOKBACK_MS}
            if first:
                self._fresh(new)  # what changed before the feed started is history
                first = False
            else:
                await self._hand_out(new)
            await asyncio.sleep(TAIL_INTERVAL)


def _usable_image(image, job_id: int) -> bool:
    return (isinstance(image, dict) and image.get("id") == job_id
            and all(name in image for name in ROW_FIELDS)
            and isinstance(image["event"], dict))


async def job_updates_after(jobs: JobStore, flt: JobFilter, after: tuple[int, int] | None,
                            limit: int) -> list[dict]:
    """The next `limit` jobs matching `flt` in (`last_status_change`, `id`) order after the key
    `after`: keyset paging, so jobs changing meanwhile never shift a page and hide another."""
    query = await jobs.build_query(flt)
    if query is None:
        return []
    if after is not None:
        changed, job_id = after
        query = {"$and": [query, {"$or": [
            {"last_status_change": {"$gt": changed}},
            {"last_status_change": changed, "id": {"$gt": job_id}}]}]}
    cursor = (jobs.jobs.find(query, ROW_PROJECTION)
              .sort([("last_status_change", 1), ("id", 1)]).limit(limit))
    return await cursor.to_list()
