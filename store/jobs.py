"""Jobs and their executions, with one function per status transition.

Each transition is a conditional `find_one_and_update` on the job (the status it leaves is part of
the filter), so a status change is written once, atomically, with `last_status_change` and
`last_modified`, and two server processes can never both make it.
"""

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    OperationFailure,
    PyMongoError,
    WriteError,
)

from core.model import (
    CANCELABLE_JOB_STATUSES,
    MIN_CPUS,
    MIN_MEM,
    QUEUEABLE_JOB_STATUSES,
    REQUEUEABLE_JOB_STATUSES,
    UNFINISHED_EXE_STATUSES,
    ExeStatus,
    JobStatus,
)
from core.times import now_ms
from store.counts import MINUTE_MS, NOT_COUNTED, JobCounts, Kept, kept_since, uncounted
from store.db import Database, time_span
from store.documents import ExeDoc, JobDoc
from store.reads import StoreWriteFailed, aggregate_all, find_all, find_page, tie_broken
from store.writes import undo_partial, unstorable

AFTER = ReturnDocument.AFTER
log = logging.getLogger("jobdeck.store")

# API order names (Scale's `a__b` paths) mapped to stored fields; job type name and version are
# immutable in Scale, so jobs keep copies of them to sort on.
JOB_ORDER_FIELDS = {
    **{name: name for name in (
        "id", "status", "priority", "num_exes", "timeout", "max_tries", "cpus_required",
        "mem_required", "disk_in_required", "disk_out_required", "created", "queued", "started",
        "ended", "last_status_change", "last_modified")},
    "job_type": "job_type_id", "job_type__id": "job_type_id",
    "job_type__name": "job_type_name", "job_type__version": "job_type_version",
    "job_type_rev": "job_type_rev_id", "job_type_rev__id": "job_type_rev_id",
    "job_type_rev__revision_num": "job_type_rev_num",
    "event": "event.id", "event__id": "event.id", "event__occurred": "event.occurred",
    "error": "error_id", "error__id": "error_id",
}
EXE_ORDER_FIELDS = {name: name for name in (
    "id", "status", "timeout", "created", "queued", "started", "ended", "last_modified",
    "pre_started", "job_started", "post_started", "job_id", "node_id")}
# A job without its job data and results: what list rows and the change feed are built from.
ROW_PROJECTION = {"data": 0, "results": 0}


def job_row(job: Mapping[str, Any]) -> dict:
    """A job document as ROW_PROJECTION reads it (and without `_id`)."""
    return {k: v for k, v in job.items() if k not in ("_id", "data", "results")}


MAX_COUNT_SPLITS = 64
# Reads and conditional writes a `$in` condition gets before it gives up on a document that
# keeps changing under it.
CONDITION_RETRIES = 5

# The cancelable statuses but BLOCKED are exactly those that sort after COMPLETED: one range
# condition, which every store evaluates on the one document named (cancel_job_and_exe).
CANCEL_RANGE = {"$gt": JobStatus.COMPLETED}
if {s for s in JobStatus if s > JobStatus.COMPLETED} != \
        set(CANCELABLE_JOB_STATUSES) - {JobStatus.BLOCKED}:
    raise AssertionError("CANCEL_RANGE no longer matches CANCELABLE_JOB_STATUSES")


def match_any(values):
    """Plain equality for one value (nx-27017 uses its indexes only for equality), else `$in`.
    Written `$eq`: a bare value means "equals, or an array containing it" there, which no index
    serves."""
    values = sorted(set(values))
    return {"$eq": values[0]} if len(values) == 1 else {"$in": values}


# Seconds a completion may wait for others, and for the engine's next claims, to be written with
# them in one group (issue 13: the engine's own transitions may be delayed by at most 50 ms; a
# crash meanwhile leaves the execution RUNNING, which recovery fails as node-lost and retries).
COMMIT_WINDOW = 0.02


@dataclass
class _Record:
    """One submission waiting to be written (JobStore._submit): its new event (None when it
    joins an existing one), execution and job, and the future its caller awaits."""

    event: dict | None
    exe: ExeDoc
    job: JobDoc
    done: asyncio.Future


# A job's status changes are stamped strictly increasing: the live feed and its clients tell a change
# from one handed out before by (`id`, `last_status_change`) and drop one that is not newer. So
# every status write is conditioned on the job's last stamp being older than its own (stamp_guard);
# one that finds it as new or newer (a change in the same millisecond, another host's clock ahead)
# is written again with that stamp + 1 (restamped), and so are the times it set with it.
STAMPED_FIELDS = ("queued", "started", "ended", "last_status_change", "last_modified")


def stamp_guard(update: dict) -> dict:
    """The condition that keeps a status change's stamp newer than the job's last one."""
    stamp = update.get("$set", {}).get("last_status_change")
    return {} if stamp is None else {"last_status_change": {"$lt": stamp}}


def outdated(update: dict, current: Mapping[str, Any]) -> bool:
    """Whether `update`'s status change is stamped no later than `current`'s last one."""
    stamp = update.get("$set", {}).get("last_status_change")
    seen = current.get("last_status_change")
    return stamp is not None and seen is not None and seen >= stamp


def restamped(update: dict, current: Mapping[str, Any]) -> dict:
    """`update` stamped one millisecond after `current`'s last status change."""
    stamp, later = update["$set"]["last_status_change"], current["last_status_change"] + 1
    return {**update, "$set": {k: later if k in STAMPED_FIELDS and v == stamp else v
                               for k, v in update["$set"].items()}}


def run_on(node_id: int | None, scheduled: dict | None) -> list:
    """A RUNNING job's [node id, cpus, mem], as store/counts.py keeps node use from it."""
    scheduled = scheduled or {}
    return [node_id, scheduled.get("cpus_scheduled"), scheduled.get("mem_scheduled")]


@dataclass
class Transition:
    """One execution's status change and its job's, for JobStore.apply_transitions: the
    execution leaves `exe_from` with `exe_set`; then its job, if it still points at it, leaves
    `job_from` with `job_set`."""

    exe_id: int
    job_id: int
    exe_from: str
    exe_set: dict
    job_from: str
    job_set: dict


ChangeListener = Callable[[list[dict]], None]


class JobNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    pass


def cancel_refusal(job_id: int, status: str) -> str:
    """Why a job in `status` (not one of CANCELABLE_JOB_STATUSES) cannot be canceled, plainly."""
    if status == JobStatus.CANCELED:
        return f"Job {job_id} is already canceled."
    if status == JobStatus.COMPLETED:
        return f"Job {job_id} has already completed, so it cannot be canceled."
    return f"Job {job_id} is {status} and cannot be canceled."


def kept_filter(query: dict, also: str | None = None) -> tuple[set | None, set | None] | None:
    """The statuses and job type ids `query` asks for (None: any), or None when it has other
    conditions than on status, job type and the field `also`."""
    wanted: dict[str, set | None] = {"status": None, "job_type_id": None}
    for key, value in query.items():
        if key == also:
            continue
        if key not in wanted:
            return None
        if isinstance(value, dict) and set(value) == {"$eq"}:
            wanted[key] = {value["$eq"]}
        elif isinstance(value, dict) and set(value) == {"$in"}:
            wanted[key] = set(value["$in"])
        elif not isinstance(value, dict | list):
            wanted[key] = {value}
        else:
            return None
    return wanted["status"], wanted["job_type_id"]


def kept_total(counts: dict[int, dict[str, int]], statuses: set | None,
               type_ids: set | None) -> int:
    """The jobs of `counts` ({job type id: {status: jobs}}) in `statuses` of `type_ids` (None:
    any)."""
    return sum(n for type_id, row in counts.items()
               if type_ids is None or type_id in type_ids
               for status, n in row.items() if statuses is None or status in statuses)


def kept_count(query: dict, counts: dict[int, dict[str, int]]) -> int | None:
    """The count of `query` from the kept counts `counts` ({job type id: {status: jobs}}), or
    None when `query` has other conditions than status and job type."""
    wanted = kept_filter(query)
    return None if wanted is None else kept_total(counts, *wanted)


@dataclass
class JobFilter:
    """What /jobs/, /jobs/updates/ and /jobs/executions/ can filter on."""

    statuses: list[str] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    job_type_ids: list[int] = field(default_factory=list)
    job_type_names: list[str] = field(default_factory=list)
    job_type_categories: list[str] = field(default_factory=list)
    started: int | None = None
    ended: int | None = None
    time_field: str = "last_modified"


class JobStore:
    def __init__(self, db: Database, job_types, counts: JobCounts):
        self.db = db
        self.job_types = job_types
        self.counts = counts
        self.jobs = db["jobs"]
        self.exes = db["job_exes"]
        self._pending: list[_Record] = []  # submissions waiting for _write_batches
        self._writer: asyncio.Task | None = None  # the running _write_batches, if any
        # Completions and claims waiting for _commit_transitions, with the futures their callers
        # await; `_flush` cuts the commit window short (claims are written at once).
        self._ending: list[tuple[Transition, asyncio.Future]] = []
        self._flush = asyncio.Event()
        self._committer: asyncio.Task | None = None
        self._listeners: list[ChangeListener] = []

    # -- change listeners ----------------------------------------------------------------------

    def add_change_listener(self, callback: ChangeListener) -> None:
        """Call `callback(jobs)` right after every status write of this process succeeds, with
        the jobs as written (without `data` and `results`): the live feed hands this process's
        own changes out without waiting for the store's change stream (store/changes.py)."""
        self._listeners.append(callback)

    def remove_change_listener(self, callback: ChangeListener) -> None:
        self._listeners.remove(callback)

    def _written(self, *jobs: Mapping[str, Any] | None) -> None:
        """Hand the jobs a status write just stored (None: nothing was written) to the
        listeners; a listener's failure never fails the write."""
        if not self._listeners:
            return
        rows = [job_row(job) for job in jobs if job is not None]
        if not rows:
            return
        for listener in list(self._listeners):
            try:
                listener(rows)
            except Exception:
                log.exception("a job change listener failed")

    # nx-27017 cannot index a field named `id` (store/db.py), so a job, an execution or an event is
    # found by `_id` alone, which the store writes equal to `id` (start-up rewrites older documents
    # so: Database.key_by_id).

    # nx-27017 also mishandles `$in` next to `_id` in one filter: it may match and update ANOTHER
    # document (measured: 72 of 200 conditional cancels hit a neighbour). So a condition with
    # `$in` is checked on the document read by id, and the update is conditioned on the values
    # read, by equality only; a concurrent change makes that update miss, and it is retried.

    # nx-27017 also answers a findAndModify that failed (a full disk, any error) exactly like one
    # that matched nothing. So a conditional update that returns None is confirmed by reading
    # the document: one that is there and still meets the condition means the write failed, and
    # StoreWriteFailed (a 503) is raised instead of reporting a lost race. Only that path reads.

    @staticmethod
    def _meets(doc: dict, cond: dict) -> bool:
        return all(doc.get(k) in v["$in"] if isinstance(v, dict) else doc.get(k) == v
                   for k, v in cond.items())

    @classmethod
    async def _find_one(cls, collection, doc_id: int, cond: dict | None = None,
                        projection=None):
        cond = cond or {}
        fields = None if projection is None else {**projection, **dict.fromkeys(cond, 1)}
        doc = await collection.find_one({"_id": doc_id}, fields)
        return doc if doc is not None and cls._meets(doc, cond) else None

    @classmethod
    async def _update_one(cls, collection, doc_id: int, cond: dict, update: dict):
        """Atomic conditional update by id; the document after it, or None if none matched.
        A status change is kept newer than the job's last one (stamp_guard). Raises
        StoreWriteFailed when the store failed the write without saying so."""
        fields = {"_id": 1, "last_status_change": 1, **dict.fromkeys(cond, 1)}
        if any(isinstance(v, dict) for v in cond.values()):
            return await cls._update_read_first(collection, doc_id, cond, update, fields)
        for _ in range(CONDITION_RETRIES):
            doc = await collection.find_one_and_update(
                {"_id": doc_id, **cond, **stamp_guard(update)}, update, return_document=AFTER)
            if doc is not None:
                return doc
            current = await collection.find_one({"_id": doc_id}, fields)
            if current is None:
                return None
            if not (cls._meets(current, cond) and outdated(update, current)):
                return cls._missed(collection, doc_id, current, cond)
            update = restamped(update, current)
        return None

    @classmethod
    async def _update_read_first(cls, collection, doc_id: int, cond: dict, update: dict,
                                 fields: dict):
        """_update_one for a condition with `$in`: checked on the document read, then written
        on the values read, by equality (nx-27017's `$in` next to `_id`, above)."""
        current = await collection.find_one({"_id": doc_id}, fields)
        for _ in range(CONDITION_RETRIES):
            if current is None or not cls._meets(current, cond):
                return None
            seen = {k: current.get(k) for k in cond}
            if stamp_guard(update):
                seen["last_status_change"] = current.get("last_status_change")
                if outdated(update, current):
                    update = restamped(update, current)
            doc = await collection.find_one_and_update({"_id": doc_id, **seen}, update,
                                                       return_document=AFTER)
            if doc is not None:
                return doc
            current = await collection.find_one({"_id": doc_id}, fields)
            if current is not None:
                cls._missed(collection, doc_id, current, seen)
        return None

    @classmethod
    def _missed(cls, collection, doc_id: int, current: dict, cond: dict) -> None:
        """None for an update that missed `current` because it changed; StoreWriteFailed if
        `current` meets the update's condition, so the store failed the write."""
        if cls._meets(current, cond):
            raise StoreWriteFailed(collection.name, doc_id)

    # -- queries -----------------------------------------------------------------------------

    async def build_query(self, flt: JobFilter, counts: dict[int, dict] | None = None
                          ) -> dict | None:
        """The MongoDB filter for `flt`, or None when it can match nothing. With `counts` (the
        kept counts by job type and status), job type names and categories resolve from this
        process's job types (`JobTypeStore.ids_named`), mostly without a store read."""
        query: dict = {}
        if flt.statuses:
            query["status"] = match_any(flt.statuses)
        if flt.job_ids:
            query["_id"] = match_any(flt.job_ids)
        type_ids = set(flt.job_type_ids) if flt.job_type_ids else None
        if flt.job_type_names or flt.job_type_categories:
            named = (await self.job_types.ids_matching(flt.job_type_names, flt.job_type_categories)
                     if counts is None else
                     await self.job_types.ids_named(flt.job_type_names, flt.job_type_categories,
                                                    counts))
            type_ids = named if type_ids is None else type_ids & named
        if type_ids is not None:
            if not type_ids:
                return None
            query["job_type_id"] = match_any(type_ids)
        span = time_span(flt.started, flt.ended)
        if span:
            query[flt.time_field] = span
        return query

    async def list_jobs(self, flt: JobFilter, order: list[tuple[str, int]], page: int,
                        page_size: int, projection=None,
                        kept_total: bool = False) -> tuple[int, list[dict]]:
        """One page of jobs and the total count; `order` holds stored field names. With
        `kept_total`, a total by status and job type, or of the recent status changes, is
        read from the kept counts (store/counts.py: one read whatever the store's size, two
        now and then; counting costs one read that grows with the store), before the page, so
        job type names and categories resolve from them too."""
        no_time = not time_span(flt.started, flt.ended)
        since = flt.started if (flt.time_field == "last_status_change" and flt.ended is None
                                and (flt.started or 0) >= kept_since(now_ms())) else None
        kept = (await self.counts.read()
                if kept_total and not flt.job_ids and (no_time or since is not None) else None)
        counts = None if kept is None else kept.by_type()
        query = await self.build_query(flt, counts)
        if query is None:
            return 0, []
        if kept is not None and since is not None:
            return await self._recent_page(query, kept, since, order, page, page_size,
                                           projection)
        total = None if counts is None else kept_count(query, counts)
        count = await self.count_jobs(query) if total is None else total
        if count == 0 or (page - 1) * page_size >= count:
            return count, []
        return count, await find_page(self.jobs, query, projection=projection,
                                      sort=tie_broken(order),
                                      skip=(page - 1) * page_size, limit=page_size)

    async def _recent_page(self, query: dict, kept: Kept, since: int,
                           order: list[tuple[str, int]], page: int, page_size: int,
                           projection) -> tuple[int, list[dict]]:
        """A page of the jobs whose status changed since `since` (in the minutes the counts
        keep), and their count: the kept per-minute counts from the minute after `since`'s,
        plus the jobs of `since`'s minute from `since` on. Those are the first rows of page 1
        in `last_status_change` order when the page reaches past that minute; otherwise they
        are counted (one small read of at most a minute of jobs, never the whole range)."""
        jobs = await find_page(self.jobs, query, projection=projection, sort=tie_broken(order),
                               skip=(page - 1) * page_size, limit=page_size)
        wanted = kept_filter(query, also="last_status_change")
        assert wanted is not None, "list_jobs reads the kept counts for these filters only"
        minute_end = since - since % MINUTE_MS + MINUTE_MS
        count = kept_total(kept.changed_since(minute_end), *wanted)
        in_order = page == 1 and order[:1] == [("last_status_change", 1)]
        if in_order and (len(jobs) < page_size or jobs[-1]["last_status_change"] >= minute_end):
            return count + sum(job["last_status_change"] < minute_end for job in jobs), jobs
        first_minute = {**query, "last_status_change": {"$gte": since, "$lt": minute_end}}
        return count + await self.count_jobs(first_minute), jobs

    async def count_jobs(self, query: dict) -> int:
        """A sum of equality counts over the `$in` values of status and job type.

        The values are distinct, so the sum is exact; nx-27017 uses an index for equality but
        scans for `$in` (27 ms against 0.7 ms at 20,000 jobs).
        """
        splits: list[dict[str, Any]] = [{}]
        for key in ("status", "job_type_id"):
            values = query.get(key, {}).get("$in") if isinstance(query.get(key), dict) else None
            if values and len(splits) * len(values) <= MAX_COUNT_SPLITS:
                splits = [{**split, key: value} for split in splits for value in values]
        if len(splits) == 1:
            return await self.db.count("jobs", query)
        return sum([await self.db.count("jobs", {**query, **split}) for split in splits])

    async def get_job(self, job_id: int) -> dict | None:
        return await self._find_one(self.jobs, job_id)

    async def jobs_by_ids(self, ids, projection=None) -> dict[int, dict]:
        """{id: job} for the known ones among `ids` (None ignored)."""
        return await self.db.by_ids("jobs", ids, projection)

    async def updates_after(self, flt: JobFilter, after: tuple[int, int] | None,
                            limit: int) -> list[dict]:
        """The next `limit` jobs matching `flt` in (`last_status_change`, `id`) order after the
        key `after`, without data and results: keyset paging, so jobs changing meanwhile never
        shift a page and hide another."""
        query = await self.build_query(flt)
        if query is None:
            return []
        if after is not None:
            changed, job_id = after
            query = {"$and": [query, {"$or": [
                {"last_status_change": {"$gt": changed}},
                {"last_status_change": changed, "id": {"$gt": job_id}}]}]}
        return await find_page(self.jobs, query, projection=ROW_PROJECTION,
                               sort=[("last_status_change", 1), ("id", 1)], limit=limit)

    async def exes_for_job(self, job_id: int) -> list[dict]:
        """Executions, newest first."""
        return await find_all(self.exes, {"job_id": job_id}, descending=True)

    async def exes_by_ids(self, ids) -> dict[int, dict]:
        return await self.db.by_ids("job_exes", ids)

    async def get_exe(self, exe_id: int) -> dict | None:
        return await self._find_one(self.exes, exe_id)

    async def list_exes(self, statuses: Iterable[str] = (),
                        job_type_ids: Iterable[int] | None = None, node_ids: Iterable[int] = (),
                        started: int | None = None, ended: int | None = None,
                        order: Sequence[tuple[str, int]] = (("last_modified", 1),),
                        page: int = 1, page_size: int = 100) -> tuple[int, list[dict]]:
        query: dict = {}
        if statuses:
            query["status"] = {"$in": list(statuses)}
        if job_type_ids is not None:
            query["job_type_id"] = {"$in": sorted(job_type_ids)}
        if node_ids:
            query["node_id"] = {"$in": list(node_ids)}
        span = time_span(started, ended)
        if span:
            query["last_modified"] = span
        count = await self.db.count("job_exes", query)
        if count == 0 or (page - 1) * page_size >= count:
            return count, []
        return count, await find_page(self.exes, query, sort=tie_broken(order),
                                      skip=(page - 1) * page_size, limit=page_size)

    async def queue_status(self) -> list[dict]:
        """QUEUED jobs per job type: {job_type, count, longest_queued (the oldest `queued`),
        highest_priority (the lowest number)}, unpaused types first, then by priority, then
        longest queued. Types no longer in the store are left out. The counts are the kept
        ones (store/counts.py), the two others the head of an index per type: nothing scans."""
        queued = (await self.counts.read()).of_status(JobStatus.QUEUED)
        job_types = await self.job_types.by_ids(queued)
        queue = []
        for type_id, count in sorted(queued.items()):
            if type_id not in job_types:
                continue
            priority = await self._first_queued(type_id, "priority")
            if priority is None:  # all left the queue since the counts were read
                continue
            queue.append({"job_type": job_types[type_id], "count": count,
                          "longest_queued": await self._first_queued(type_id, "queued"),
                          "highest_priority": priority})
        queue.sort(key=lambda q: (q["job_type"]["is_paused"], q["highest_priority"],
                                  -1 if q["longest_queued"] is None else q["longest_queued"]))
        return queue

    async def _first_queued(self, type_id: int, field: str):
        """The lowest `field` among the type's QUEUED jobs, from the head of its index (`$eq`:
        see store/counts.py UNCOUNTED)."""
        first = await self.jobs.find_one(
            {"status": {"$eq": JobStatus.QUEUED}, "job_type_id": {"$eq": type_id}}, {field: 1},
            sort=[(field, 1)])
        return None if first is None else first.get(field)

    async def count_queued(self, job_type_ids) -> int:
        """QUEUED jobs of any of these job types."""
        return await self.count_jobs({"status": JobStatus.QUEUED,
                                      "job_type_id": {"$in": sorted(set(job_type_ids))}})

    # -- creation ----------------------------------------------------------------------------

    def new_job_doc(self, job_id: int, job_type: dict, data: dict, event: dict, now: int,
                    input_file_ids=(), disk_in_mb: float = 0.0) -> JobDoc:
        """A PENDING job with Scale's values copied from its job type."""
        disk_out = math.ceil(job_type["disk_out_mult_required"] * disk_in_mb
                             + job_type["disk_out_const_required"])
        return {
            "_id": job_id, "id": job_id, "job_type_id": job_type["id"],
            "job_type_name": job_type["name"],
            "job_type_version": job_type["version"], "job_type_rev_id": job_type["job_type_rev_id"],
            "job_type_rev_num": job_type["revision_num"],
            # The event's description too: it never changes, and job details show it.
            "event": {"id": event["id"], "type": event["type"], "rule_id": None,
                      "occurred": event["occurred"],
                      "description": event.get("description", {})},
            "error_id": None, "status": JobStatus.PENDING, "priority": job_type["priority"],
            "num_exes": 0, "timeout": job_type["timeout"], "max_tries": job_type["max_tries"],
            "cpus_required": max(float(job_type["cpus_required"]), MIN_CPUS),
            "mem_required": max(float(job_type["mem_required"]), MIN_MEM),
            "disk_in_required": float(disk_in_mb), "disk_out_required": float(disk_out),
            "created": now, "queued": None, "started": None, "ended": None,
            "last_status_change": now, "last_modified": now, "data": data, "results": None,
            "input_file_ids": sorted(set(input_file_ids)), "latest_exe_id": None,
            "tv": 1, "fold_gen": NOT_COUNTED,  # store/counts.py: counted by the next fold
        }

    def _new_event(self, event_id: int, event_type: str, description: dict) -> dict:
        return {"id": event_id, "type": event_type, "rule_id": None, "occurred": now_ms(),
                "description": description}

    async def create_event(self, event_type: str, description: dict) -> dict:
        event = self._new_event(await self.db.next_id("trigger_events"), event_type,
                                description)
        await self.db["trigger_events"].insert_one({"_id": event["id"], **event})
        return event

    async def submit_user_job(self, job_type: dict, data: dict, command_arguments: str,
                              input_file_ids=(),
                              disk_in_mb: float = 0.0) -> tuple[JobDoc, ExeDoc]:
        """A USER event and the job it submits (submit_job), as one record: when any write
        fails, the event goes too."""
        return await self._submit(job_type, data, None, command_arguments, input_file_ids,
                                  disk_in_mb)

    async def get_event(self, event_id: int) -> dict | None:
        return await self.db["trigger_events"].find_one({"_id": event_id})

    async def create_job(self, job_type: dict, data: dict, event: dict, input_file_ids=(),
                         disk_in_mb: float = 0.0) -> JobDoc:
        job = self.new_job_doc(await self.db.next_id("jobs"), job_type, data, event, now_ms(),
                               input_file_ids, disk_in_mb)
        await self.jobs.insert_one(job)
        self._written(job)
        return job

    async def submit_job(self, job_type: dict, data: dict, event: dict, command_arguments: str,
                         input_file_ids=(), disk_in_mb: float = 0.0) -> tuple[JobDoc, ExeDoc]:
        """Create a job already QUEUED with its first QUEUED execution."""
        return await self._submit(job_type, data, event, command_arguments, input_file_ids,
                                  disk_in_mb)

    async def _submit(self, job_type: dict, data: dict, event: dict | None,
                      command_arguments: str, input_file_ids,
                      disk_in_mb: float) -> tuple[JobDoc, ExeDoc]:
        """The event (a USER one when `event` is None), the execution, then the job: the job is
        the commit point, written last, so a job is never seen QUEUED without its execution.
        When any write fails, what was written of the record is deleted (store/writes.py
        undo_partial): no execution or event is left without its job. A document the store
        cannot encode raises Unstorable.

        Submissions made while earlier ones are being written are written together (group
        commit, _write_batches): one insert per collection for all of them, at most three
        commands per batch however many it holds; each caller is answered once its own job is
        in the store."""
        job_id = await self.db.next_id("jobs")
        new_event = None
        if event is None:
            new_event = event = self._new_event(await self.db.next_id("trigger_events"),
                                                "USER", {"user": "Anonymous"})
        when = now_ms()
        job = self.new_job_doc(job_id, job_type, data, event, when, input_file_ids, disk_in_mb)
        exe = self._new_exe(await self.db.next_id("job_exes"), job, when, command_arguments)
        job.update({"status": JobStatus.QUEUED, "queued": when, "num_exes": 1,
                    "latest_exe_id": exe["id"]})
        record = _Record(new_event, exe, job, asyncio.get_running_loop().create_future())
        self._pending.append(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_batches())
        return await record.done

    async def _write_batches(self) -> None:
        """Write what is pending, batch after batch, until nothing is: one batch at a time,
        and the next holds everything submitted while the last was being written."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write_batch(batch)
            except BaseException as exc:  # each caller gets it, never lost
                for record in batch:
                    if not record.done.done():
                        record.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _write_batch(self, batch: list["_Record"]) -> None:
        """Events and executions side by side, then the jobs of the records whose both were
        written; each record's failure undone as one submission's would be."""
        self._stamp(batch)
        failed: dict[int, BaseException] = {}
        events = [(i, r.event) for i, r in enumerate(batch) if r.event is not None]
        exes = [(i, {"_id": r.exe["id"], **r.exe}) for i, r in enumerate(batch)]
        first = [self._insert_many(self.db["trigger_events"],
                                   [(i, {"_id": e["id"], **e}) for i, e in events]),
                 self._insert_many(self.exes, exes)]
        for outcome in await asyncio.gather(*first, return_exceptions=True):
            if isinstance(outcome, BaseException):  # for all of them: undone below
                failed.update((i, outcome) for i in range(len(batch)))
            else:
                failed.update(outcome)
        if len(batch) > 1 and any(unstorable(exc) for exc in failed.values()):
            return await self._one_by_one(batch, failed)
        jobs = [(i, r.job) for i, r in enumerate(batch) if i not in failed]
        try:
            failed.update(await self._insert_many(self.jobs, jobs))
        except Exception as exc:  # noqa: BLE001 (undone below, each caller gets it)
            failed.update((i, exc) for i, _ in jobs)
        if len(batch) > 1 and any(unstorable(exc) for exc in failed.values()):
            return await self._one_by_one(batch, failed)
        self._written(*(job for i, job in jobs if i not in failed))
        for i, record in enumerate(batch):
            error = failed.get(i)
            if error is not None:
                error = await self._undo(record, error)
            if record.done.done():  # its caller gave up waiting
                continue
            if error is None:
                record.done.set_result((record.job, record.exe))
            else:
                record.done.set_exception(error)

    @staticmethod
    def _stamp(batch: list["_Record"]) -> None:
        """The records take the time of their batch's write: a submission that waited for the
        batch before it became QUEUED only now, and its `last_status_change` says so (live
        delivery is measured from it)."""
        when = now_ms()
        for record in batch:
            record.job.update({"created": when, "queued": when, "last_status_change": when,
                               "last_modified": when})
            record.exe.update({"created": when, "queued": when, "last_modified": when})

    async def _undo(self, record: "_Record", error: BaseException) -> BaseException:
        """Delete what was written of a record whose write failed with `error` (unless its job
        was written after all and only the answer was lost); the error its caller gets."""
        written = ([("trigger_events", {"_id": record.event["id"]})] if record.event else []) \
            + [("job_exes", {"_id": record.exe["id"]})]
        job_id = record.job["id"]
        await undo_partial(self.db, error, written, lambda: self._exists(self.jobs, job_id))
        return unstorable(error) or error

    async def _one_by_one(self, batch: list["_Record"], failed: dict) -> None:
        """A batch one of whose documents cannot be encoded (refused whole, before anything
        was sent): what was written of it goes, and each record is written alone, so only the
        bad one fails."""
        for record in batch:
            if record.event is not None:
                await self.db.remove_leftover("trigger_events", {"_id": record.event["id"]})
            await self.db.remove_leftover("job_exes", {"_id": record.exe["id"]})
        for record in batch:
            try:
                await self._write_batch([record])
            except BaseException as exc:  # noqa: BLE001 (the caller gets it)
                if not record.done.done():
                    record.done.set_exception(exc)

    @staticmethod
    async def _insert_many(collection, docs: Sequence[tuple[int, Mapping[str, Any]]]
                           ) -> dict[int, BaseException]:
        """Insert the (record index, document) pairs in one unordered insert (insert_one for
        one); {index: error} for the documents the store refused. Any other failure (the connection, a document
        pymongo cannot encode: nothing sent) is raised for all of them."""
        if not docs:
            return {}
        if len(docs) == 1:
            index, doc = docs[0]
            try:
                await collection.insert_one(doc)
            except OperationFailure as exc:  # a write the store refused (WriteError, full disk)
                return {index: exc}
            return {}
        try:
            await collection.insert_many([doc for _, doc in docs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors:
                raise
            return {docs[err["index"]][0]: WriteError(err.get("errmsg", ""), err.get("code"),
                                                     err) for err in errors}
        return {}

    @staticmethod
    async def _exists(collection, doc_id: int) -> bool:
        return await collection.find_one({"_id": doc_id}, {"_id": 1}) is not None

    # -- transitions -------------------------------------------------------------------------

    def _new_exe(self, exe_id: int, job: Mapping[str, Any], when: int,
                 command_arguments: str) -> ExeDoc:
        return {
            "id": exe_id, "job_id": job["id"], "job_type_id": job["job_type_id"],
            "status": ExeStatus.QUEUED, "command_arguments": command_arguments,
            "timeout": job["timeout"], "pre_started": None, "pre_completed": None,
            "pre_exit_code": None, "job_started": None, "job_completed": None,
            "job_exit_code": None, "post_started": None, "post_completed": None,
            "post_exit_code": None, "created": when, "queued": when, "started": None,
            "ended": None, "last_modified": when, "node_id": None, "error_id": None,
            "environment": {}, "cpus_scheduled": None, "mem_scheduled": None,
            "disk_in_scheduled": None, "disk_out_scheduled": None, "disk_total_scheduled": None,
            "results": None, "results_manifest": None,
        }

    async def _queue(self, job_filter: dict, extra: dict | None = None, when: int | None = None,
                     priority: int | None = None, command_arguments: str = "") -> dict | None:
        """Move one job matching `job_filter` to QUEUED with a fresh QUEUED execution.

        The execution is written first and the job points at it (`latest_exe_id`) in the same
        update that changes its status; an execution no job points at is never run.
        """
        when = now_ms() if when is None else when
        cond = {k: v for k, v in job_filter.items() if k != "id"}
        job = await self._find_one(self.jobs, job_filter["id"], cond,
                                   {"id": 1, "job_type_id": 1, "timeout": 1})
        if job is None:
            return None
        exe = self._new_exe(await self.db.next_id("job_exes"), job, when, command_arguments)
        changes = {"status": JobStatus.QUEUED, "error_id": None, "queued": when, "started": None,
                   "ended": None, "last_status_change": when, "last_modified": when,
                   "latest_exe_id": exe["id"], **(extra or {})}
        if priority is not None:
            changes["priority"] = priority
        try:
            await self.exes.insert_one({"_id": exe["id"], **exe})
            updated = await self._update_one(self.jobs, job["id"], cond, uncounted(
                {"$set": changes, "$inc": {"num_exes": 1}}))
        except BaseException as exc:
            # Unless the job points at it after all (a connection lost after the update was
            # sent), the execution goes: now, or once the store writes again.
            await undo_partial(self.db, exc, [("job_exes", {"_id": exe["id"]})],
                               lambda: self._points_at(job["id"], exe["id"]))
            raise
        if updated is None:
            await self.exes.delete_one({"_id": exe["id"]})
        self._written(updated)
        return updated

    async def _points_at(self, job_id: int, exe_id: int) -> bool:
        job = await self.jobs.find_one({"_id": job_id}, {"latest_exe_id": 1})
        return job is not None and job.get("latest_exe_id") == exe_id

    async def queue_job(self, job_id: int, priority: int | None = None,
                        command_arguments: str = "", when: int | None = None) -> dict | None:
        """PENDING, FAILED or CANCELED → QUEUED (Scale's queue_jobs)."""
        return await self._queue({"id": job_id, "status": {"$in": list(QUEUEABLE_JOB_STATUSES)}},
                                 when=when, priority=priority, command_arguments=command_arguments)

    async def start_execution(self, exe_id: int, node_id: int | None,
                              when: int | None = None,
                              scheduled: dict | None = None) -> tuple[dict, dict] | None:
        """Claim one QUEUED execution through the engine's path (start_executions) and read it
        back: (job, exe) as stored, or None when it was not QUEUED (or its job not)."""
        exe = await self._find_one(self.exes, exe_id, None, {"job_id": 1})
        if exe is None:
            return None
        [claimed] = await self.start_executions([(exe_id, exe["job_id"], scheduled or {})],
                                                node_id, when)
        if isinstance(claimed, PyMongoError):
            raise claimed
        if claimed is None:
            return None
        stored = await self.get_exe(exe_id)
        return None if stored is None else (claimed[0], stored)

    async def start_executions(self, claims: Sequence[tuple[int, int, dict]],
                               node_id: int | None, when: int | None = None
                               ) -> list[tuple[dict, dict] | PyMongoError | None]:
        """start_execution for many (exe id, job id, scheduled fields) claims at once, in one
        group (apply_transitions): (job, exe) for each claim made, None for one lost to another
        server or to a cancel, the error for one the store refused. A job canceled between the
        two writes has its execution CANCELED, as in start_execution. The claims are written at
        once, in one group with the completions waiting for their commit window
        (_commit_transitions).

        The execution is not read back: `exe` holds what the claim wrote, its id, job and
        timeout (an execution's timeout is its job's, which never changes)."""
        when = now_ms() if when is None else when
        transitions = [Transition(
            exe_id, job_id, ExeStatus.QUEUED,
            {"status": ExeStatus.RUNNING, "started": when, "last_modified": when,
             "node_id": node_id, **scheduled},
            JobStatus.QUEUED, {"status": JobStatus.RUNNING, "started": when,
                               "last_status_change": when, "last_modified": when,
                               "run_on": run_on(node_id, scheduled)})
            for exe_id, job_id, scheduled in claims]
        claimed: list[tuple[dict, dict] | PyMongoError | None] = []
        outcomes = await asyncio.gather(*(self._grouped(t, flush=True) for t in transitions),
                                        return_exceptions=True)
        for transition, outcome in zip(transitions, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, PyMongoError):
                raise outcome
            if isinstance(outcome, PyMongoError):
                claimed.append(outcome)
                continue
            job, exe = outcome
            if exe is not None and job is None:
                await self._finish_exe(transition.exe_id, ExeStatus.CANCELED, when)
            claimed.append(None if job is None else (job, {
                "id": transition.exe_id, "job_id": job["id"], "timeout": job.get("timeout"),
                **transition.exe_set}))
        return claimed

    async def apply_transitions(self, transitions: Sequence[Transition]
                                ) -> list[tuple[dict | None, dict | None] | PyMongoError]:
        """Write many status changes as one group: a `bulk_write` of the executions'
        conditional updates, then one of their jobs' (each on its status and `latest_exe_id`),
        then one read of the jobs written: three commands however many changes (and a read of
        the executions when the store made fewer of theirs than asked). Each change is still
        conditional, so two servers never both make one, and a job changes only after its
        execution did.

        For each transition, (job, exe): the job as written, or None when its change was not
        made (it had left `job_from`); exe when the execution's change was made ({} unless it
        was read: a group of one), both None when it was not. Or the error of a change the
        store refused, or dropped without saying so (StoreWriteFailed); after a job's error its
        execution's change stands, as after a failed second write of one transition (recovery
        finishes it)."""
        if not transitions:
            return []
        exes_done = await self._apply(
            self.exes, [(t.exe_id, {"status": t.exe_from}, {"$set": t.exe_set}, t.exe_set)
                        for t in transitions], read=False)
        moving = [(t, exe) for t, exe in zip(transitions, exes_done, strict=True)
                  if isinstance(exe, dict)]  # {} too: written, not read
        jobs_done = await self._apply(
            self.jobs, [(t.job_id, {"status": t.job_from, "latest_exe_id": t.exe_id},
                         uncounted({"$set": t.job_set}), t.job_set) for t, _ in moving],
            read=True)
        self._written(*(job for job in jobs_done if isinstance(job, dict)))
        written = {t.exe_id: job if isinstance(job, PyMongoError) else (job, exe)
                   for (t, exe), job in zip(moving, jobs_done, strict=True)}
        return [written.get(t.exe_id, exe if isinstance(exe, PyMongoError) else (None, None))
                for t, exe in zip(transitions, exes_done, strict=True)]

    @staticmethod
    async def _bulk_update(collection, updates: list[tuple[int, dict, dict, dict]]
                           ) -> tuple[int, dict[int, PyMongoError]]:
        """One unordered bulk_write of the updates: how many documents it changed (-1 when some
        were refused) and {index: error} for those the store refused."""
        try:
            result = await collection.bulk_write(
                [UpdateOne({"_id": doc_id, **cond, **stamp_guard(update)}, update)
                 for doc_id, cond, update, _ in updates],
                ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors:
                raise
            return -1, {err["index"]: WriteError(err.get("errmsg", ""), err.get("code"), err)
                        for err in errors}
        return result.modified_count, {}

    async def _apply(self, collection, updates: list[tuple[int, dict, dict, dict]],
                     read: bool) -> list[dict | PyMongoError | None]:
        """(id, condition, update, fields it sets) updates in one unordered bulk_write; each
        document as written ({} when not `read` and the store said it made every one), None for
        one whose condition no longer held, or the error of one the store refused or dropped.
        A document written without its `_id` takes the one-by-one path, and so does a lone
        update: one findAndModify answers with the document, one round trip instead of two."""
        if not updates:
            return []
        if len(updates) == 1:
            doc_id, cond, update, _ = updates[0]
            try:
                return [await self._update_one(collection, doc_id, cond, update)]
            except (OperationFailure, StoreWriteFailed) as exc:  # refused, or dropped
                return [exc]
        modified, refused = await self._bulk_update(collection, updates)
        if not read and modified == len(updates):
            return [{} for _ in updates]
        docs = await self.db.by_ids(collection.name, [doc_id for doc_id, *_ in updates])
        out: list[dict | PyMongoError | None] = []
        for index, (doc_id, cond, update, fields) in enumerate(updates):
            doc = docs.get(doc_id)
            try:
                if index in refused:
                    raise refused[index]
                if doc is not None and (doc.get("_id") != doc_id  # written without its `_id`
                                        or (self._meets(doc, cond) and outdated(update, doc))):
                    doc = await self._update_one(collection, doc_id, cond, update)
                elif doc is not None and any(doc.get(k) != v for k, v in fields.items()):
                    self._missed(collection, doc_id, doc, cond)  # raises if the store dropped it
                    doc = None
            except PyMongoError as exc:
                out.append(exc)
                continue
            out.append(doc)
        return out

    async def update_execution(self, exe_id: int, **fields) -> dict | None:
        """Record phase timestamps, exit codes and similar non-status fields of an execution.

        Status changes only go through the transition functions, which keep job and execution
        consistent; a status here would bypass them."""
        if "status" in fields:
            raise ValueError("an execution's status changes only through a transition function")
        fields["last_modified"] = now_ms()
        return await self._update_one(self.exes, exe_id, {}, {"$set": fields})

    async def place_running(self, job_id: int, exe_id: int, node_id: int) -> dict | None:
        """Move a job's node use (`run_on`) to the node its cluster placed execution `exe_id`
        on, while the job still runs it (placement is known only after the start was written).
        Uncounted, so the kept counts per node follow it exactly. The job, or None."""
        job = await self.jobs.find_one({"_id": job_id}, {"run_on": 1})
        if job is None or not job.get("run_on"):
            return None
        return await self._update_one(
            self.jobs, job_id, {"status": JobStatus.RUNNING, "latest_exe_id": exe_id},
            uncounted({"$set": {"run_on": [node_id, *job["run_on"][1:]]}}))

    async def _finish_exe(self, exe_id: int, status: ExeStatus, when: int, error_id=None,
                          extra: dict | None = None) -> dict | None:
        return await self._update_one(
            self.exes, exe_id, {"status": {"$in": list(UNFINISHED_EXE_STATUSES)}},
            {"$set": {"status": status, "ended": when, "last_modified": when,
                      "error_id": error_id, **(extra or {})}})

    async def complete_execution(self, exe_id: int, results: dict | None = None,
                                 when: int | None = None,
                                 exe_fields: dict | None = None,
                                 job_id: int | None = None) -> dict | None:
        """RUNNING execution → COMPLETED, and its job RUNNING → COMPLETED with `results`; the
        job as written, or None. `job_id`, the execution's job, saves reading it.

        `exe_fields` (phase times, exit codes) are written in the same update, one round trip
        fewer per job than recording them first. Completions made while earlier ones are being
        written are written together (group commit, _commit_transitions); the caller is
        answered once its own change is in the store."""
        when = now_ms() if when is None else when
        if job_id is None:
            exe = await self._find_one(self.exes, exe_id, None, {"job_id": 1})
            if exe is None:
                return None
            job_id = exe["job_id"]
        transition = Transition(
            exe_id, job_id, ExeStatus.RUNNING,
            {**(exe_fields or {}), "status": ExeStatus.COMPLETED, "ended": when,
             "last_modified": when, "results": results},
            JobStatus.RUNNING, {"status": JobStatus.COMPLETED, "results": results, "ended": when,
                                "last_status_change": when, "last_modified": when})
        return (await self._grouped(transition))[0]

    def ending(self) -> set[int]:
        """The executions whose completion waits for its group's commit, not yet sent: RUNNING
        in the store until then, although their processes have ended."""
        return {t.exe_id for t, _ in self._ending}

    async def _grouped(self, transition: Transition,
                       flush: bool = False) -> tuple[dict | None, dict | None]:
        """apply_transitions' outcome for `transition`, written in a group with the others
        waiting (_commit_transitions); `flush`: without waiting for the commit window."""
        done = asyncio.get_running_loop().create_future()
        self._ending.append((transition, done))
        if flush:
            self._flush.set()
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_transitions())
        return await done

    async def _commit_transitions(self) -> None:
        """Write the waiting transitions, group after group, until none wait. A group waits
        COMMIT_WINDOW for more completions, or until claims arrive; the next group holds
        everything that arrived while the last was being written."""
        while self._ending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMIT_WINDOW):
                    await self._flush.wait()
            self._flush.clear()
            group, self._ending = self._ending, []
            try:
                written = await self.apply_transitions([t for t, _ in group])
            except BaseException as exc:  # each caller gets it, never lost
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, done), outcome in zip(group, written, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, PyMongoError):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    async def fail_execution(self, exe_id: int, error: dict | None, when: int | None = None,
                             command_arguments: str = "",
                             exe_fields: dict | None = None) -> dict | None:
        """RUNNING execution → FAILED; its job → FAILED, or straight back to QUEUED.

        Scale's automatic retry: a SYSTEM error while `num_exes < max_tries` (or any error of a
        long-running job type) requeues in the same single status change. No error means
        Scale's `unknown`. `exe_fields` are written with the execution's status, as in
        complete_execution.
        """
        when = now_ms() if when is None else when
        if error is None:
            error = await self.db["errors"].find_one({"name": "unknown"})
        exe = await self._update_one(
            self.exes, exe_id, {"status": ExeStatus.RUNNING},
            {"$set": {**(exe_fields or {}), "status": ExeStatus.FAILED, "ended": when,
                      "last_modified": when, "error_id": error["id"]}})
        if exe is None:
            return None
        # QUEUED too: a claim cut off between its two writes (store or server killed) leaves the
        # execution RUNNING under a job still QUEUED; failing it must release that job as well.
        running = {"status": {"$in": [JobStatus.RUNNING, JobStatus.QUEUED]},
                   "latest_exe_id": exe_id}
        job = await self._find_one(self.jobs, exe["job_id"], running,
                                   {"id": 1, "num_exes": 1, "max_tries": 1, "job_type_id": 1})
        if job is None:
            return None
        job_type = await self.job_types.get(job["job_type_id"])
        retry = ((error["category"] == "SYSTEM" and job["num_exes"] < job["max_tries"])
                 or bool(job_type and job_type.get("is_long_running")))
        if retry:
            requeued = await self._queue({"id": job["id"], **running}, when=when,
                                         command_arguments=command_arguments
                                         or exe["command_arguments"])
            if requeued is not None:
                return requeued
        failed = await self._update_one(
            self.jobs, job["id"], running,
            uncounted({"$set": {"status": JobStatus.FAILED, "error_id": error["id"],
                                "ended": when, "last_status_change": when,
                                "last_modified": when}}))
        self._written(failed)
        return failed

    async def cancel_job(self, job_id: int, when: int | None = None) -> dict:
        """PENDING/BLOCKED/QUEUED/RUNNING/FAILED → CANCELED, with its unfinished execution."""
        return (await self.cancel_job_and_exe(job_id, when))[0]

    async def cancel_job_and_exe(self, job_id: int,
                                 when: int | None = None) -> tuple[dict, dict | None]:
        """cancel_job: the job as written, and its execution if this canceled one.

        First one findAndModify on the job for the statuses that sort after COMPLETED
        (CANCEL_RANGE: a plain range, which nx-27017 evaluates in SQL on the document `_id`
        names, unlike `$in`), answering the job as it was, so the execution to finish is known
        without reading either: a QUEUED or RUNNING job's latest execution is updated on that
        same status, by equality. Anything else (BLOCKED, a final status, no such `_id`, a write
        the store failed) takes the general path: read, then update on the status read."""
        when = now_ms() if when is None else when
        changes = {"status": JobStatus.CANCELED, "error_id": None, "ended": when,
                   "last_status_change": when, "last_modified": when}
        before = await self.jobs.find_one_and_update(
            {"_id": job_id, "status": CANCEL_RANGE, "last_status_change": {"$lt": when}},
            uncounted({"$set": changes}),
            return_document=ReturnDocument.BEFORE)
        if before is None:
            job = await self._update_one(
                self.jobs, job_id, {"status": {"$in": list(CANCELABLE_JOB_STATUSES)}},
                uncounted({"$set": changes}))
            if job is None:
                current = await self._find_one(self.jobs, job_id, None, {"status": 1})
                if current is None:
                    raise JobNotFound(f"job {job_id} does not exist")
                raise InvalidTransition(cancel_refusal(job_id, current["status"]))
            self._written(job)
            exe = None
            if job.get("latest_exe_id") is not None:
                exe = await self._finish_exe(job["latest_exe_id"], ExeStatus.CANCELED, when)
            return job, exe
        job = {**before, **changes}
        self._written(job)
        exe_id = job.get("latest_exe_id")
        exe = None
        if exe_id is not None and before["status"] in (JobStatus.QUEUED, JobStatus.RUNNING):
            exe = await self.exes.find_one_and_update(
                {"_id": exe_id, "status": before["status"]},
                {"$set": {"status": ExeStatus.CANCELED, "ended": when, "last_modified": when,
                          "error_id": None}}, return_document=AFTER)
        if exe is None and exe_id is not None and before["status"] != JobStatus.FAILED:
            # A claim cut off between its two writes, an execution without `_id`, a PENDING
            # job's: finished only if it is not already. A FAILED job's execution is finished
            # before the job is (fail_execution).
            exe = await self._finish_exe(exe_id, ExeStatus.CANCELED, when)
        return job, exe

    async def requeue_job(self, job_id: int, priority: int | None = None,
                          command_arguments: str = "", when: int | None = None) -> dict | None:
        """FAILED/CANCELED → QUEUED with one more try (Scale: max_tries = num_exes + 1).

        A job that never ran (num_exes 0) goes to BLOCKED, as in Scale.
        """
        when = now_ms() if when is None else when
        job = await self._find_one(self.jobs, job_id,
                                   {"status": {"$in": list(REQUEUEABLE_JOB_STATUSES)}},
                                   {"num_exes": 1, "status": 1})
        if job is None:
            return None
        if job["num_exes"] == 0:
            blocked = await self._update_one(
                self.jobs, job_id, {"status": job["status"], "num_exes": 0},
                uncounted({"$set": {"status": JobStatus.BLOCKED, "error_id": None,
                                    "ended": None, "last_status_change": when,
                                    "last_modified": when}}))
            self._written(blocked)
            return blocked
        return await self._queue(
            {"id": job_id, "status": job["status"], "num_exes": job["num_exes"]},
            extra={"max_tries": job["num_exes"] + 1}, when=when, priority=priority,
            command_arguments=command_arguments)

    # -- job engine queries --------------------------------------------------------------------

    async def queued_jobs(self, limit: int) -> list[dict]:
        """QUEUED jobs in scheduling order: lower priority number first, then oldest queued."""
        return await find_page(
            self.jobs, {"status": {"$eq": JobStatus.QUEUED}},
            projection={"id": 1, "job_type_id": 1, "latest_exe_id": 1, "priority": 1,
                        "queued": 1, "cpus_required": 1, "mem_required": 1,
                        "disk_in_required": 1, "disk_out_required": 1},
            sort=[("priority", 1), ("queued", 1), ("id", 1)], limit=limit)

    async def running_counts_by_type(self) -> dict[int, int]:
        """How many jobs of each job type are RUNNING (for max_scheduled)."""
        rows = await aggregate_all(self.jobs, [
            {"$match": {"status": {"$eq": JobStatus.RUNNING}}},
            {"$group": {"_id": "$job_type_id", "count": {"$sum": 1}}},
        ])
        return {row["_id"]: row["count"] for row in rows}

    async def finish_half_ended_jobs(self) -> int:
        """Jobs left RUNNING although their latest execution ended: complete_execution and
        fail_execution write the execution first, and a store that died between the two writes
        kept only the first. Each such job takes its execution's end (COMPLETED with its
        results, else FAILED with its error; no retry is made), on the same conditions as the
        second write. How many were finished."""
        running = await find_all(self.jobs, {"status": {"$eq": JobStatus.RUNNING}},
                                 projection={"id": 1, "latest_exe_id": 1})
        exes = await self.db.by_ids("job_exes", [job["latest_exe_id"] for job in running
                                                 if job.get("latest_exe_id") is not None])
        finished = 0
        for job in running:
            exe = exes.get(job["latest_exe_id"]) if job.get("latest_exe_id") is not None else None
            if exe is None or exe["status"] not in (ExeStatus.COMPLETED, ExeStatus.FAILED):
                continue
            now = now_ms()
            when = exe.get("ended") or now
            changes = ({"status": JobStatus.COMPLETED, "results": exe.get("results")}
                       if exe["status"] == ExeStatus.COMPLETED else
                       {"status": JobStatus.FAILED, "error_id": exe.get("error_id")})
            done = await self._update_one(
                self.jobs, job["id"], {"status": JobStatus.RUNNING, "latest_exe_id": exe["id"]},
                uncounted({"$set": {**changes, "ended": when, "last_status_change": now,
                                    "last_modified": now}}))
            self._written(done)
            finished += done is not None
        return finished

    async def running_exes_of_node(self, node_id: int) -> list[dict]:
        return await find_all(self.exes, {"status": ExeStatus.RUNNING, "node_id": node_id})

    async def node_usage(self, node_id: int) -> dict:
        """CPUs and memory (MiB) scheduled to the node's RUNNING executions."""
        rows = await aggregate_all(self.exes, [
            {"$match": {"status": ExeStatus.RUNNING, "node_id": node_id}},
            {"$group": {"_id": None, "cpus": {"$sum": "$cpus_scheduled"},
                        "mem": {"$sum": "$mem_scheduled"}, "count": {"$sum": 1}}},
        ])
        if not rows:
            return {"cpus": 0.0, "mem": 0.0, "count": 0}
        return {"cpus": float(rows[0]["cpus"] or 0), "mem": float(rows[0]["mem"] or 0),
                "count": rows[0]["count"]}

    async def exe_statuses(self, exe_ids) -> dict[int, str]:
        docs = await self.db.by_ids("job_exes", exe_ids, {"id": 1, "status": 1})
        return {exe_id: doc["status"] for exe_id, doc in docs.items()}
