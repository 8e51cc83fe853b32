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

The stream is never trusted to say it died. nx-27017 ties a cursor to the connection that opened
it and drops it silently when that connection closes (a cancelled operation, a store restart): the
next getMore answers "no more" instead of an error, and the driver's `try_next()` then returns None
forever. It also accepts a resume token older than the change log it keeps and silently skips the
gap. So the stream runs on a connection of its own that no other operation can close; a stream
that is no longer `alive`, a getMore left unanswered for GETMORE_LIMIT seconds and a store error
restart it; a resume made by the driver behind our back is followed by the same re-read a restart
makes (the resumed stream is kept); and a liveness check that does not ask the stream compares
the newest `last_status_change` in the store with the newest one handed out, and restarts the
stream when the store has stayed ahead for longer than `stale_after` seconds. Events are
gathered into a batch for at most STREAM_GATHER seconds, so a stream that always has more (a fold
marking many jobs, written slowly by a loaded store) neither holds a status change back nor keeps
that check from running.

A restart opens a new stream (never resuming from a token, which nx-27017 may honour with a gap)
and then re-reads the jobs changed since the last change handed out (minus the look-back), so
changes made while it was blind still reach subscribers; `resync()` does the same re-read on
demand. Changes superseded while the feed was blind arrive as the job's current state.

Changes this process writes are handed out at once, without waiting for either source: the feed
listens on the job store (`JobStore.add_change_listener`), which hands it the jobs each status
write stored right after the write. The source brings them again, and other processes' changes;
what was handed out already is dropped (`_fresh`), so nothing comes twice or out of order per job.
The source alone advances the watermark the liveness check and the re-reads go by, so a stalled
stream is still noticed while this process's own changes keep flowing.

Either way the feed hands out job documents (without `data` and `results`), each a status change
not handed out before, in `last_status_change` order per batch, in the order they were handed out.
"""

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import OperationFailure, PyMongoError

from core.settings import DEFAULTS
from core.times import now_ms
from store.jobs import ROW_PROJECTION, JobFilter, job_row
from store.reads import find_page

log = logging.getLogger("jobdeck.changes")

# The fields a /jobs/updates/ row is built from; an event image missing one is re-read instead.
ROW_FIELDS = ("id", "job_type_id", "job_type_rev_id", "job_type_rev_num", "event", "error_id",
              "status", "priority", "num_exes", "timeout", "max_tries", "cpus_required",
              "mem_required", "disk_in_required", "disk_out_required", "created", "queued",
              "started", "ended", "last_status_change", "last_modified")
STREAM_BATCH = 1000
# How long events are gathered into one batch: a stream that never comes back empty (a fold
# marking 1,000 jobs, written slowly by a loaded store) must not hold a status change back.
STREAM_GATHER = 0.05
IDLE_POLL = 0.01          # nx-27017 answers an empty getMore at once instead of waiting
MAX_AWAIT_MS = 200        # how long a real MongoDB holds an empty getMore
# Seconds a getMore on the stream may go unanswered before the stream is restarted. The clients
# have no socket timeout (store/db.py), so without it a getMore the store never answers would
# stop the feed for good: the liveness check runs between getMores. Far above MAX_AWAIT_MS and
# the half second a loaded store takes at the 99th percentile (bench/load_bench.py).
GETMORE_LIMIT = 5.0
TAIL_INTERVAL = 0.05
TAIL_LOOKBACK_MS = 2000
TAIL_LIMIT = 5000
RETRY_DELAY = 1.0
REMEMBERED_JOBS = 200_000  # jobs whose last handed-out change is kept to drop non-status updates

OnJobs = Callable[[list[dict]], Awaitable[None]]


class StreamLost(Exception):
    """The change stream stopped without an error the driver raised (see the module text)."""


def change_key(job: dict) -> tuple[int, int]:
    return job["id"], job["last_status_change"]


class StreamOpenings(monitoring.CommandListener):
    """Counts the change streams opened on the feed's own client: one the feed did not open
    itself is the driver resuming on its own, which on nx-27017 may have skipped history."""

    def __init__(self):
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "aggregate" and any(
                "$changeStream" in stage for stage in event.command.get("pipeline", ())):
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


class JobChangeFeed:
    """Calls `on_jobs(jobs)` with each batch of new status changes until stopped."""

    def __init__(self, store, on_jobs: OnJobs, use_change_stream: bool = True,
                 stale_after: float = DEFAULTS.live_stale_after):
        self.store = store
        self.jobs = store.db["jobs"]
        self.job_store = store.jobs
        self.on_jobs = on_jobs
        self.use_change_stream = use_change_stream
        self.stale_after = stale_after
        self.mode: str | None = None
        self.restarts = 0
        self.max_lag = 0.0
        self._openings = StreamOpenings()
        self._stream_client: AsyncMongoClient | None = None
        self._stream: AsyncChangeStream | None = None
        self._opened = 0
        self._task: asyncio.Task | None = None
        self._outbox: deque[list[dict]] = deque()  # fresh batches waiting for on_jobs, in order
        self._sender: asyncio.Task | None = None
        self._last_change: OrderedDict[int, int] = OrderedDict()
        # The newest last_status_change seen in a handed-out batch (or the start): re-reads begin
        # there, and the liveness check compares the store's newest against it.
        self._watermark = 0
        self._checked_at = 0.0
        # (newest last_status_change in the store, monotonic time first seen) while behind.
        self._behind: tuple[int, float] | None = None

    @property
    def lag(self) -> float:
        """Seconds since the liveness check first saw, in the store, a change newer than any
        handed out that is still not handed out (0 when caught up)."""
        if self._behind is None:
            return 0.0
        return time.monotonic() - self._behind[1]

    async def start(self) -> None:
        """Open the source before returning, so changes committed from now on are all seen."""
        self.job_store.add_change_listener(self._on_local_change)
        if self.use_change_stream:
            try:
                self._watermark = now_ms()
                self._stream_client = self.store.db.dedicated_client(
                    event_listeners=[self._openings])
                self._stream = await self._open_stream()
                self.mode = "change-stream"
                self._task = asyncio.create_task(self._follow_stream())
                return
            except OperationFailure as exc:
                log.info("no change streams on this store (%s); tailing last_status_change",
                         exc)
                await self._close_stream_client()
        self.mode = "tail"
        watermark = await self._newest_change()
        self._task = asyncio.create_task(self._tail(watermark))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.job_store.remove_change_listener(self._on_local_change)
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        self._outbox.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop_stream()
        await self._close_stream_client()

    async def _close_stream_client(self) -> None:
        if self._stream_client is not None:
            await self._stream_client.close()
            self._stream_client = None

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

    def _on_local_change(self, jobs: list[dict]) -> None:
        """The job store's listener: this process's status writes, handed out at once."""
        self._send(self._fresh(jobs))

    async def _hand_out(self, jobs: list[dict]) -> None:
        """Hand out what the source brought; it alone moves the watermark."""
        if jobs:
            self._watermark = max(self._watermark,
                                  max(job["last_status_change"] for job in jobs))
            if self._behind is not None and self._watermark >= self._behind[0]:
                self.max_lag = max(self.max_lag, self.lag)
                self._behind = None
        self._send(self._fresh(jobs))

    def _send(self, fresh: list[dict]) -> None:
        """Queue a batch for `on_jobs`: one sender calls it batch after batch, so batches reach
        it in the order `_fresh` passed them, from whichever path."""
        if not fresh:
            return
        self._outbox.append(fresh)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        while self._outbox:
            batch = self._outbox.popleft()
            try:
                await self.on_jobs(batch)
            except Exception:
                log.exception("a live update batch could not be delivered")

    # -- change stream -----------------------------------------------------------------------

    async def _open_stream(self):
        assert self._stream_client is not None, "the stream's client opens before the stream"
        collection = self._stream_client[self.jobs.database.name]["jobs"]
        stream = await collection.watch(full_document="updateLookup",
                                        max_await_time_ms=MAX_AWAIT_MS, batch_size=STREAM_BATCH)
        self._opened = self._openings.count
        return stream

    async def _follow_stream(self) -> None:
        """Follow the stream; restart it whenever it fails, ends or falls behind the store."""
        failing_since = None
        while True:
            try:
                if self._stream is None:
                    await self._reopen()
                    if failing_since is not None:
                        log.info("job change stream restarted after %.1f s",
                                    time.monotonic() - failing_since)
                        failing_since = None
                events = await self._next_events()
                if events:
                    await self._hand_out(await self._images(events))
                if self._openings.count != self._opened:
                    # The driver resumed the stream by itself: re-read what a resume may skip.
                    self._opened = self._openings.count
                    self.restarts += 1
                    log.warning("the driver resumed the job change stream; re-reading changes")
                    await self._catch_up()
                await self._check_liveness()
            except (PyMongoError, StreamLost) as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    self.restarts += 1
                    log.warning("job change stream lost (%s); restarting it", exc)
                await self._drop_stream()
                await asyncio.sleep(RETRY_DELAY if isinstance(exc, PyMongoError) else 0)

    async def _drop_stream(self) -> None:
        """Close the stream, giving up on a store that does not answer that either."""
        if self._stream is not None:
            with contextlib.suppress(PyMongoError, TimeoutError):
                async with asyncio.timeout(GETMORE_LIMIT):
                    await self._stream.close()
            self._stream = None

    async def _reopen(self) -> None:
        """Open a new stream, then re-read what changed since the watermark: whatever the old
        stream missed. Changes committed after the opening are in the new stream."""
        self._stream = await self._open_stream()
        await self._catch_up()

    async def _check_liveness(self) -> None:
        """Raise StreamLost when the store has held a change newer than any handed out for
        longer than `stale_after`, whatever the stream says. At most one read per quarter
        bound, and none while already behind (handing out the change ends that).

        The read asks only for changes after the watermark, an index range that is empty when
        the feed is caught up: the newest change of the whole collection costs SecantusDB a walk
        over every job (about 0.3 s at 1,000 jobs), and two servers asking twice a second kept
        it too busy to answer anything else promptly."""
        now = time.monotonic()
        if now - self._checked_at < self.stale_after / 4:
            return
        self._checked_at = now
        if self._behind is None:
            newest = await self._newest_change(after=self._watermark)
            if newest > self._watermark:
                self._behind = (newest, now)
            return
        self.max_lag = max(self.max_lag, self.lag)
        if self.lag > self.stale_after:
            self._behind = None
            raise StreamLost(f"the store holds changes {self.lag:.1f} s older than any the "
                             "stream delivered")

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
            jobs = await self.job_store.updates_after(changed_since, after, TAIL_LIMIT)
            for job in jobs:
                job.pop("_id", None)
            await self._hand_out(jobs)
            if len(jobs) < TAIL_LIMIT:
                return
            after = (jobs[-1]["last_status_change"], jobs[-1]["id"])

    async def _next_event(self):
        """The next event, None if there is none yet; StreamLost if the stream has ended or its
        getMore went unanswered for GETMORE_LIMIT seconds."""
        if self._stream is None:
            raise StreamLost("no job change stream is open")
        try:
            async with asyncio.timeout(GETMORE_LIMIT):
                event = await self._stream.try_next()
        except TimeoutError as exc:
            raise StreamLost(f"the store left a getMore on the job change stream unanswered for "
                             f"{GETMORE_LIMIT:g} s") from exc
        if event is None and (self._stream is None or not self._stream.alive):
            raise StreamLost("the store ended the job change stream")
        return event

    async def _next_events(self) -> list[dict]:
        """The events available now (waiting briefly for the first one), gathered for at most
        STREAM_GATHER seconds from the first: the batch is handed out, and the liveness checked,
        even while every getMore finds something new."""
        began = time.monotonic()
        event = await self._next_event()
        if event is None:
            idle = IDLE_POLL - (time.monotonic() - began)
            if idle > 0:
                await asyncio.sleep(idle)
            return []
        events = [event]
        gathered = time.monotonic() + STREAM_GATHER
        while len(events) < STREAM_BATCH and time.monotonic() < gathered:
            event = await self._next_event()
            if event is None:
                break
            events.append(event)
        return events

    async def _images(self, events: list[dict]) -> list[dict]:
        """The job as of each status-changing event, only for jobs in this database.

        An event whose image is a change already handed out (this process's own, handed out
        when it was written) is not re-read: it only moves the watermark, and under load most
        events are such."""
        wanted = []
        known = []
        for event in events:
            if event.get("operationType") not in ("insert", "update", "replace"):
                continue
            described = event.get("updateDescription")
            if described and "last_status_change" not in (described.get("updatedFields") or {}):
                continue
            image = event.get("fullDocument")
            if self._handed_out(image, event["documentKey"]["_id"]):
                known.append(job_row(image))
            else:
                wanted.append(event)
        if not wanted:
            return known
        ids = {event["documentKey"]["_id"] for event in wanted}
        ids |= {int(key) for key in ids if isinstance(key, str) and key.isdigit()}
        # Keyed by str(_id): nx-27017 reports an integer `_id` in documentKey as text.
        found = await find_page(self.jobs, {"_id": {"$in": list(ids)}}, projection=ROW_PROJECTION,
                                limit=len(ids))
        current = {str(doc.pop("_id")): doc for doc in found}
        images = []
        for event in wanted:
            doc = current.get(str(event["documentKey"]["_id"]))
            if doc is None:
                continue
            image = event.get("fullDocument")
            if _usable_image(image, doc["id"]):
                doc = job_row(image)
            images.append(doc)
        return known + images

    def _handed_out(self, image: object, key: object) -> TypeGuard[dict[str, Any]]:
        """Whether `image` (an event's full document, `key` its `_id`) is a usable image of a
        job change that was handed out already."""
        if not (isinstance(image, dict) and _usable_image(image, image.get("id"))
                and str(key) == str(image["id"])):
            return False
        last = self._last_change.get(image["id"])
        return last is not None and image["last_status_change"] <= last

    # -- tailing -----------------------------------------------------------------------------

    async def _newest_change(self, after: int | None = None) -> int:
        """The newest `last_status_change` in the store (0 if none, or none after `after`)."""
        query = {} if after is None else {"last_status_change": {"$gt": after}}
        newest = await self.jobs.find_one(query, {"last_status_change": 1},
                                          sort=[("last_status_change", -1), ("id", -1)])
        return newest["last_status_change"] if newest else 0

    async def _tail(self, watermark: int) -> None:
        seen: set[tuple[int, int]] = set()
        first = True
        while True:
            try:
                since = watermark - TAIL_LOOKBACK_MS
                jobs = await find_page(self.jobs, {"last_status_change": {"$gte": since}},
                                       projection=ROW_PROJECTION,
                                       sort=[("last_status_change", 1), ("id", 1)],
                                       limit=TAIL_LIMIT)
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


def _usable_image(image: object, job_id: object) -> TypeGuard[dict[str, Any]]:
    return (isinstance(image, dict) and image.get("id") == job_id
            and all(name in image for name in ROW_FIELDS)
            and isinstance(image["event"], dict))

