"""The live hub: turns the store's change feed into batched messages for every subscriber, each
with its own filter and its own bounded queue. server.serve() makes one per server, hands it to
the app (`application.settings["hub"]`) and stops it when the server stops."""

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from core.settings import DEFAULTS
from presentation.serializers import Serializer, page_body
from store.changes import JobChangeFeed

log = logging.getLogger("jobdeck.live")

BATCH_WINDOW = 0.05  # seconds from the first change of a batch to its delivery (at most 100 ms)
SENT_MEMORY = 30.0   # seconds a subscriber screens live changes against what catch-up sent
STORE_RETRY = 1.0    # seconds before a batch the store could not serialize is tried again


@dataclass(frozen=True)
class LiveFilter:
    """The /jobs/updates/ filters, matched against serialized rows (so job type names and
    categories are those of the job type as it is now, as the REST endpoint resolves them)."""

    statuses: frozenset = frozenset()
    job_ids: frozenset = frozenset()
    job_type_ids: frozenset = frozenset()
    job_type_names: frozenset = frozenset()
    job_type_categories: frozenset = frozenset()

    @classmethod
    def from_job_filter(cls, flt) -> "LiveFilter":
        return cls(frozenset(flt.statuses), frozenset(flt.job_ids), frozenset(flt.job_type_ids),
                   frozenset(flt.job_type_names), frozenset(flt.job_type_categories))

    def matches(self, row: dict) -> bool:
        job_type = row["job_type"]
        return ((not self.statuses or row["status"] in self.statuses)
                and (not self.job_ids or row["id"] in self.job_ids)
                and (not self.job_type_ids or job_type["id"] in self.job_type_ids)
                and (not self.job_type_names or job_type["name"] in self.job_type_names)
                and (not self.job_type_categories
                     or job_type["category"] in self.job_type_categories))


def page(rows: list[dict]) -> str:
    """A /jobs/updates/ body holding exactly `rows`."""
    return json.dumps(page_body(len(rows), None, None, rows))


def row_key(row: dict) -> tuple[int, str]:
    return row["id"], row["last_status_change"]


class Overflow(Exception):
    pass


@dataclass(eq=False)
class Subscriber:
    """One connection's place in the hub.

    While `buffering` (its catch-up query runs) matching rows are kept aside; `go_live` then
    sends those the catch-up did not, and from there every batch is one message. `send(text)`
    hands a message to the socket and returns a future that completes once it is written (None
    if the socket is closed); one message is in flight at a time and the others wait in `queue`,
    so a subscriber that stops reading fills its queue and `on_overflow(reason)` is called.
    """

    live_filter: LiveFilter
    base_url: str
    send: Callable
    on_overflow: Callable[[str], None]
    max_queue: int
    buffering: bool = True
    last_change: str | None = None
    buffered: list = field(default_factory=list)
    sent: dict | None = None
    queue: deque = field(default_factory=deque)
    inflight: object = None
    closed: bool = False
    on_stop: Callable[[], None] | None = None

    def offer(self, rows: list[dict], text: str | None = None) -> None:
        if self.closed:
            return
        if self.buffering:
            self.buffered.extend(rows)
            if len(self.buffered) > self.max_queue * 1000:
                raise Overflow("too many changes arrived during catch-up")
            return
        if self.sent:
            fresh = [row for row in rows if row["last_status_change"] > self.sent.get(row["id"], "")]
            if len(fresh) < len(rows):
                rows, text = fresh, None
            for row in rows:
                self.sent.pop(row["id"], None)
            if not rows:
                return
        if len(self.queue) >= self.max_queue:
            raise Overflow(f"more than {self.max_queue} messages waiting")
        self.queue.append((text if text is not None else page(rows),
                           rows[-1]["last_status_change"]))
        self._pump()

    def go_live(self, sent: dict[int, str]) -> None:
        """Send what arrived during catch-up and is newer than what it sent for that job.

        `sent` (the last change catch-up sent per job) also screens live batches for a while:
        a change the catch-up query already saw may still be on its way through the feed.
        """
        rows = sorted(self.buffered, key=lambda r: (r["last_status_change"], r["id"]))
        self.buffered = []
        self.buffering = False
        self.sent = sent
        if rows:
            self.offer(rows)
        if sent:
            asyncio.get_running_loop().call_later(SENT_MEMORY, self.forget_sent)

    def forget_sent(self) -> None:
        self.sent = None

    def _pump(self) -> None:
        if self.inflight is not None or not self.queue or self.closed:
            return
        text, last_change = self.queue.popleft()
        future = self.send(text)
        if future is None:
            self.close()
            return
        self.inflight = future
        future.add_done_callback(lambda done: self._written(done, last_change))

    def _written(self, future, last_change: str) -> None:
        self.inflight = None
        if future.cancelled() or future.exception() is not None:
            self.close()
            return
        self.last_change = last_change
        self._pump()

    def close(self) -> None:
        """Stop sending; a write blocked on a stalled socket ends when the socket closes."""
        self.closed = True
        self.queue.clear()


class LiveHub:
    """Starts the store's change feed on the first subscriber and fans each batch out; its
    owner calls stop()."""

    def __init__(self, store, stale_after: float = DEFAULTS.live_stale_after):
        self.store = store
        self.subscribers: set[Subscriber] = set()
        self.feed = JobChangeFeed(store, self._on_jobs, stale_after=stale_after)
        self._started = False
        self._starting: asyncio.Lock | None = None
        self._pending: list[dict] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task | None = None
        self.batches = 0

    async def ensure_started(self) -> None:
        if self._started:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self._started:
                await self.feed.start()
                self._started = True
                log.info("live updates: following job changes by %s", self.feed.mode)

    async def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        for subscriber in list(self.subscribers):
            self.unsubscribe(subscriber)
            if subscriber.on_stop is not None:
                subscriber.on_stop()
        await self.feed.stop()
        self._started = False

    async def subscribe(self, subscriber: Subscriber) -> None:
        """Register first, then start the feed: from here on every change reaches `subscriber`."""
        self.subscribers.add(subscriber)
        await self.ensure_started()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        subscriber.close()

    async def _on_jobs(self, jobs: list[dict]) -> None:
        self._pending.extend(jobs)
        if self._flush_handle is None and self._flushing is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(BATCH_WINDOW, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        jobs: list[dict] = []
        try:
            while self._pending:
                jobs, self._pending = self._pending, []
                await self._deliver(jobs)
        except PyMongoError as exc:
            # The store is down (or restarting): keep the batch rather than lose its updates.
            log.warning("live update batch waits for the job store (%s)", exc)
            self._pending = jobs + self._pending
            self._flush_handle = asyncio.get_running_loop().call_later(STORE_RETRY,
                                                                       self._start_flush)
        except Exception:
            log.exception("live update batch failed")
        finally:
            self._flushing = None

    async def _deliver(self, jobs: list[dict]) -> None:
        if not self.subscribers:
            return
        jobs.sort(key=lambda j: (j["last_status_change"], j["id"]))
        self.batches += 1
        rows_by_url: dict[str, list[dict]] = {}
        texts: dict[tuple, str] = {}
        for subscriber in list(self.subscribers):
            rows = rows_by_url.get(subscriber.base_url)
            if rows is None:
                rows = await Serializer(self.store, subscriber.base_url).job_rows(
                    jobs, input_files=True)
                rows_by_url[subscriber.base_url] = rows
            if subscriber not in self.subscribers:
                continue
            chosen = [row for row in rows if subscriber.live_filter.matches(row)]
            if not chosen:
                continue
            key = (subscriber.base_url, subscriber.live_filter)
            if not subscriber.buffering and key not in texts:
                texts[key] = page(chosen)
            try:
                subscriber.offer(chosen, texts.get(key))
            except Overflow as exc:
                self.unsubscribe(subscriber)
                subscriber.on_overflow(str(exc))
