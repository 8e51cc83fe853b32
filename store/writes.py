"""Whether the store can write, and why not (a full disk, read-only data, I/O errors).

Reads go on when writes fail: nx-27017 on a full disk answers every query and refuses every
write (an insert or update with "database or disk is full"; a findAndModify with "nothing
matched", which the store turns into StoreWriteFailed). So a failed write is classified here,
from the error's text and, for the embedded store, from the free space in its data folder, and
remembered as the store's write problem until a write succeeds again:

- the first failure of an outage logs one warning (with the data folder's path and its free
  space); later ones of the same outage log nothing here, and their callers log at most debug;
- while the problem lasts, a probe (one upsert of one small document in the `health`
  collection) is tried at most every PROBE_INTERVAL seconds, by /health and by a watcher task;
  a full disk also needs MIN_FREE bytes free again, since SQLite's write-ahead log keeps some
  slack in which a small probe can succeed while real writes fail;
- when the probe succeeds the problem clears, an info line says so, what a refused write left
  behind is deleted (store/db.py `remove_leftover`), and the `on_recovered` callbacks run (the
  job engine fails, and so retries, the executions whose outcome it could not write).

While no problem is known nothing is written: /health only checks the data folder's free space
(one statvfs), and probes when that is below MIN_FREE.

A record made of several documents (a submitted job: its event, its execution, then the job; a
job type: its revision, then the type) is written with its last document as the commit point,
and `undo_partial` deletes the earlier ones when any write fails: nothing half-made stays. No
multi-document transaction: nx-27017 has them only per session on one SQLite file, and a
standalone MongoDB (`--mongo-url`) has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bson.errors import InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from core.times import now_ms
from store.reads import StoreWriteFailed

log = logging.getLogger("jobdeck.store")

# Seconds between probe writes while writes fail (at most), and between the watcher's checks.
PROBE_INTERVAL = 1.0
WATCH_INTERVAL = 2.0
# A full disk counts as full until this much is free in the data folder again.
MIN_FREE = 1024 * 1024
PROBE_COLLECTION = "health"
PROBE_ID = "write-probe"

# What the stores say (nx-27017 passes SQLite's messages on; MongoDB names the errno), lower case.
_NO_SPACE = ("disk is full", "no space left", "out of disk space", "outofdiskspace",
             "sqlite_full", "disk full")
_READ_ONLY = ("readonly", "read-only", "read only")
_IO_ERROR = ("disk i/o error", "input/output error", "sqlite_ioerr")


class Unstorable(ValueError):
    """A document the store cannot encode (text that is not Unicode): nothing of its record was
    written. A client's mistake (a 400), not the store's."""


async def undo_partial(db, exc: BaseException, written: list[tuple[str, dict]],
                       committed: Callable[[], Awaitable[bool]]) -> None:
    """After a record's writes failed with `exc`: delete the documents in `written` ((collection,
    key) of each written, or tried, so far), unless `committed()` says the commit point was
    written after all. That is only asked when `exc` leaves it unknown (a connection lost after
    the write was sent); if the store cannot answer it either, nothing is deleted (a warning
    says what may be left)."""
    unsure = isinstance(exc, ConnectionFailure | WTimeoutError | ExecutionTimeout
                        | asyncio.CancelledError) \
        and not isinstance(exc, ServerSelectionTimeoutError)
    if unsure:
        try:
            if await committed():
                return
        except PyMongoError as check:
            log.warning("a write failed (%s) and the store cannot say whether it was made "
                        "(%s): %s may be left without the record they belong to", exc, check,
                        ", ".join(f"{c} {k}" for c, k in written))
            return
    for collection, key in reversed(written):
        await db.remove_leftover(collection, key)


def unstorable(exc: BaseException) -> Unstorable | None:
    """`exc` as Unstorable when it says a document could not be encoded, else None."""
    if isinstance(exc, UnicodeEncodeError | InvalidDocument):
        return Unstorable(str(exc))
    return None


@dataclass(frozen=True)
class WriteProblem:
    """Why the store cannot write: `cause` for clients, `detail` (free space) for operators."""

    cause: str
    detail: str | None = None
    no_space: bool = False

    def __str__(self) -> str:
        return f"{self.cause} ({self.detail})" if self.detail else self.cause


def _amount(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # not reached


def _error_text(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    return f"{exc} {details or ''}".lower()


class WriteHealth:
    """The store's write problem, if any; `data_dir` is the embedded store's data folder (None
    for a store of its own, `--mongo-url`, whose disk is not ours to measure)."""

    def __init__(self, db, data_dir: Path | str | None = None):
        self.db = db
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.problem: WriteProblem | None = None
        self.since = 0.0
        self._probed = 0.0
        self._watcher: asyncio.Task | None = None
        self._callbacks: list = []
        self._tasks: set[asyncio.Task] = set()

    # -- what a failure means ------------------------------------------------------------------

    def free_bytes(self) -> int | None:
        if self.data_dir is None:
            return None
        try:
            return shutil.disk_usage(self.data_dir).free
        except OSError:
            return None

    def classify(self, exc: BaseException) -> WriteProblem | None:
        """Why `exc` says the store cannot write, or None if it says something else (the store
        unreachable, a duplicate key, a bad query)."""
        if not isinstance(exc, PyMongoError):
            return None
        text = _error_text(exc)
        free = self.free_bytes()
        detail = None if free is None else f"{_amount(free)} free in data_dir"
        no_space = any(s in text for s in _NO_SPACE)
        silent = isinstance(exc, StoreWriteFailed)
        if no_space or (silent and free is not None and free < MIN_FREE):
            return WriteProblem("no space left on the store's disk", detail, no_space=True)
        if any(s in text for s in _READ_ONLY):
            return WriteProblem("the store's data is read-only", detail)
        if any(s in text for s in _IO_ERROR):
            return WriteProblem("the store's disk reports I/O errors", detail)
        if silent:
            return WriteProblem("the store did not make a write it acknowledged", detail)
        return None

    # -- remembering ---------------------------------------------------------------------------

    def failed(self, exc: BaseException) -> WriteProblem | None:
        """Note a failed store call: its write problem (also remembered), or None when `exc` is
        not one. The first of an outage logs the one warning."""
        problem = self.classify(exc)
        if problem is None:
            return None
        if self.problem is None:
            self.since = time.monotonic()
            where = f" ({self.data_dir.resolve()})" if self.data_dir is not None else ""
            log.warning("the store cannot write: %s%s; writes answer 503 until it can, checked "
                        "every %g s (%s)", problem, where, WATCH_INTERVAL, exc)
            self._watch()
        self.problem = problem
        return problem

    def on_recovered(self, callback) -> None:
        """Await `callback()` each time writes work again after failing."""
        self._callbacks.append(callback)

    def forget(self, callback) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    async def check(self) -> WriteProblem | None:
        """The write problem now: while one is known (or the data folder is nearly full), a
        probe write at most every PROBE_INTERVAL seconds; nothing is written otherwise."""
        free = self.free_bytes()
        suspect = self.problem is not None or (free is not None and free < MIN_FREE)
        if suspect and time.monotonic() - self._probed >= PROBE_INTERVAL:
            await self._probe()
        return self.problem

    async def _probe(self) -> None:
        self._probed = time.monotonic()
        try:
            await self.db[PROBE_COLLECTION].update_one(
                {"_id": PROBE_ID}, {"$set": {"at": now_ms()}}, upsert=True)
        except PyMongoError as exc:
            self.failed(exc)  # the store unreachable says nothing about its writes
            return
        problem = self.problem
        if problem is None:
            return
        free = self.free_bytes()
        if problem.no_space and free is not None and free < MIN_FREE:
            return  # the log's slack took the probe; real writes still fail
        self.problem = None
        log.info("the store writes again, after %.0f s (%s)", time.monotonic() - self.since,
                 problem.cause)
        # In a task of their own: /health does not wait for them.
        task = asyncio.get_running_loop().create_task(self._recovered())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recovered(self) -> None:
        """What a refused write left behind goes first (store/db.py remove_leftover), then the
        on_recovered callbacks run."""
        for callback in [self.db.remove_leftovers, *self._callbacks]:
            try:
                await callback()
            except PyMongoError as exc:
                log.warning("after the store could write again: %s", exc)
            except Exception:
                log.exception("after the store could write again")

    def _watch(self) -> None:
        """Probe in the background until writes work, so recovery is noticed (and logged, and
        acted on) without anyone asking /health."""
        if self._watcher is not None and not self._watcher.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._watcher = loop.create_task(self._watching(), name="jobdeck-store-writes")

    async def _watching(self) -> None:
        while self.problem is not None:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.check()
            except Exception:
                log.exception("checking whether the store writes again")

    async def close(self) -> None:
        tasks = set(self._tasks)
        if self._watcher is not None:
            tasks.add(self._watcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watcher = None
