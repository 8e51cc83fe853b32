"""Job types and their revisions (a new revision each time the interface changes)."""

import math
import time
from collections.abc import Awaitable, Callable

from core.model import JOB_TYPE_DEFAULTS, JobStatus
from core.times import now_ms
from store.cache import Cache
from store.db import Database, time_span
from store.documents import JOB_TYPE_FLAGS, with_flags
from store.reads import aggregate_all, find_all, find_page
from store.writes import undo_partial, unstorable

# The most executions a job type's run statistics read (the newest in the window).
RUN_STATS_LIMIT = 50_000


class JobTypeExists(ValueError):
    pass


class JobTypeStore:
    """Every job type it hands out has its flags as true/false (store/documents.py)."""

    ORDER_FIELDS = ("id", "name", "version", "title", "category", "priority", "created",
                    "last_modified", "is_paused")

    # How long another server process's change to a job type may go unseen by the answers
    # that embed it (this process's own changes are seen at once).
    CACHE_SECONDS = 2.0

    def __init__(self, db: Database):
        self.db = db
        self._cache = Cache(self.CACHE_SECONDS)
        self._revisions = Cache(None)  # a revision never changes
        # (name, category) by job type id, as this process read or made them (`ids_named`).
        self._named: dict[int, tuple[str, str | None]] = {}
        self._named_read = -math.inf  # when they were last read (monotonic)

    async def create(self, name: str, version: str, interface: dict, fields: dict) -> dict:
        """Insert the type and its revision 1; `fields` holds the editable fields given."""
        if await self.db["job_types"].find_one({"name": name, "version": version}, {"id": 1}):
            raise JobTypeExists(f'a job type "{name}" version "{version}" already exists')
        now = now_ms()
        type_id = await self.db.next_id("job_types")
        rev_id = await self.db.next_id("job_type_revs")
        doc = {**JOB_TYPE_DEFAULTS, **fields, "id": type_id, "name": name, "version": version,
               "interface": interface, "revision_num": 1, "job_type_rev_id": rev_id,
               "trigger_rule": None, "created": now, "archived": None,
               "paused": now if fields.get("is_paused") else None, "last_modified": now}
        await self._with_revision(
            {"id": rev_id, "job_type_id": type_id, "revision_num": 1, "interface": interface,
             "created": now},
            lambda: self.db["job_types"].insert_one(doc),
            lambda: self._exists({"id": type_id}))
        self._revisions.put(rev_id, {"id": rev_id, "job_type_id": type_id, "revision_num": 1,
                                     "interface": interface, "created": now})
        self._named[type_id] = (name, doc["category"])
        return doc

    async def update(self, job_type: dict, fields: dict, interface: dict | None) -> dict:
        """Apply editable fields; a changed interface makes a new revision."""
        now = now_ms()
        changes = dict(fields)
        revision = None
        self._cache.drop(job_type["id"])
        if interface is not None and interface != job_type["interface"]:
            rev_num = job_type["revision_num"] + 1
            rev_id = await self.db.next_id("job_type_revs")
            revision = {"id": rev_id, "job_type_id": job_type["id"], "revision_num": rev_num,
                        "interface": interface, "created": now}
            changes.update(interface=interface, revision_num=rev_num, job_type_rev_id=rev_id)
        if "is_paused" in changes and changes["is_paused"] != job_type["is_paused"]:
            changes["paused"] = now if changes["is_paused"] else None
        changes["last_modified"] = now
        await self._with_revision(
            revision,
            lambda: self.db["job_types"].update_one({"id": job_type["id"]}, {"$set": changes}),
            lambda: self._exists({"id": job_type["id"],
                                  "job_type_rev_id": changes.get("job_type_rev_id")}))
        self._cache.drop(job_type["id"])
        if "category" in changes:
            self._named[job_type["id"]] = (job_type["name"], changes["category"])
        return {**job_type, **changes}

    async def _with_revision(self, revision: dict | None, write: Callable[[], Awaitable],
                             committed: Callable[[], Awaitable[bool]]) -> None:
        """Insert `revision` (if any), then `write()` the job type pointing at it (the commit
        point). When either fails the revision goes (store/writes.py undo_partial); a document
        the store cannot encode raises Unstorable."""
        written = [] if revision is None else [("job_type_revs", {"id": revision["id"]})]
        try:
            if revision is not None:
                await self.db["job_type_revs"].insert_one(revision)
            await write()
        except BaseException as exc:
            await undo_partial(self.db, exc, written, committed)
            problem = unstorable(exc)
            if problem is not None:
                raise problem from exc
            raise

    async def _exists(self, query: dict) -> bool:
        return await self.db["job_types"].find_one(query, {"id": 1}) is not None

    async def get(self, type_id: int) -> dict | None:
        return with_flags(await self.db["job_types"].find_one({"id": type_id}), JOB_TYPE_FLAGS)

    async def by_ids(self, ids) -> dict[int, dict]:
        found = await self.db.by_ids("job_types", ids)
        for doc in found.values():
            with_flags(doc, JOB_TYPE_FLAGS)
        return found

    async def get_revision(self, rev_id: int) -> dict | None:
        """A revision, from this process's cache once read (revisions never change)."""
        cached = self._revisions.get(rev_id)
        if cached is not None:
            return cached
        doc = await self.db["job_type_revs"].find_one({"id": rev_id})
        return doc if doc is None else self._revisions.put(rev_id, doc)

    async def cached(self, type_id: int) -> dict | None:
        """`get` through this process's cache: another process's change to the job type shows
        after at most CACHE_SECONDS. For answers that embed a job type and for submissions,
        never for a decision another process's write must not race (those read the store)."""
        return (await self.cached_by_ids([type_id])).get(type_id)

    async def cached_by_ids(self, ids) -> dict[int, dict]:
        """`by_ids` through this process's cache (see `cached`)."""
        return await self._cache.many(ids, self.by_ids)

    async def ids_matching(self, names=(), categories=()) -> set[int]:
        """Resolve name/category filters to ids through the small job_types collection."""
        query = {}
        if names:
            query["name"] = {"$in": list(names)}
        if categories:
            query["category"] = {"$in": list(categories)}
        return {doc["id"] for doc in await find_all(self.db["job_types"], query,
                                                    projection={"id": 1})}

    async def ids_named(self, names, categories, with_jobs) -> set[int]:
        """The ids of the job types named `names` (any name if none) in `categories` (any if
        none), among those that have jobs: `with_jobs`, their ids, from the kept counts
        (store/counts.py). A name never changes and a job type is never deleted, so names need
        no store read while this process knows every id there; a type another process made is
        read then, with all the others. A category can be edited: another process's edit shows
        after at most CACHE_SECONDS, as in the answers that embed a job type. A type without
        jobs may be left out: a job filter matches nothing of it either way."""
        stale = bool(categories) and time.monotonic() - self._named_read > self.CACHE_SECONDS
        if stale or not set(with_jobs) <= self._named.keys():
            self._named_read = time.monotonic()
            types = await find_all(self.db["job_types"], {},
                                   projection={"id": 1, "name": 1, "category": 1})
            self._named.update({doc["id"]: (doc["name"], doc.get("category")) for doc in types})
        names, categories = set(names), set(categories)
        return {type_id for type_id, (name, category) in self._named.items()
                if (not names or name in names) and (not categories or category in categories)}

    async def list_job_types(self, names=(), categories=(), started=None, ended=None,
                             order=(("last_modified", 1), ("id", 1)), page=1, page_size=100):
        query = {}
        if names:
            query["name"] = {"$in": list(names)}
        if categories:
            query["category"] = {"$in": list(categories)}
        span = time_span(started, ended)
        if span:
            query["last_modified"] = span
        count = await self.db.count("job_types", query)
        docs = await find_page(self.db["job_types"], query, sort=list(order),
                               skip=(page - 1) * page_size, limit=page_size)
        return count, [with_flags(doc, JOB_TYPE_FLAGS) for doc in docs]

    async def all_job_types(self) -> list[dict]:
        return [with_flags(doc, JOB_TYPE_FLAGS)
                for doc in await find_all(self.db["job_types"], {})]

    async def run_stats(self, type_id: int, since: int, limit: int = RUN_STATS_LIMIT) -> dict:
        """The type's executions that finished since `since`: how many, how many failed, and
        their durations (ended - started, ms, sorted). Read through the (job_type_id,
        last_modified) index (a finished execution is not modified again), newest first, at
        most `limit` of them (`capped` says when the window held more)."""
        docs = await find_page(
            self.db["job_exes"], {"job_type_id": type_id, "last_modified": {"$gte": since}},
            projection={"status": 1, "started": 1, "ended": 1},
            sort=[("job_type_id", 1), ("last_modified", -1), ("id", -1)], limit=limit + 1)
        capped = len(docs) > limit
        finished = [d for d in docs[:limit] if d["status"] in (JobStatus.COMPLETED,
                                                               JobStatus.FAILED)
                    and d.get("ended") is not None and d["ended"] >= since]
        durations = sorted(d["ended"] - d["started"] for d in finished
                           if d.get("started") is not None)
        return {"runs": len(finished),
                "failed": sum(d["status"] == JobStatus.FAILED for d in finished),
                "durations": durations, "capped": capped}

    async def job_counts(self, type_id: int, since: int) -> list[dict]:
        """Scale's job_counts_Nh: jobs by (status, error category) whose status changed since.

        Grouped on one field per pass: nx-27017 does not evaluate a document `$group` key
        (`{"s": "$status", "e": "$error_id"}` groups everything as one literal)."""
        match = {"job_type_id": type_id, "last_status_change": {"$gte": since}}
        by_status = await self._grouped(match, "$status")
        failed = by_status.pop(JobStatus.FAILED, None)
        merged = {(status, None): row for status, row in by_status.items()}
        if failed is not None:
            by_error = await self._grouped({**match, "status": JobStatus.FAILED}, "$error_id")
            errors = await self.db.by_ids("errors", by_error)
            for error_id, row in by_error.items():
                error = errors.get(error_id)
                key = (JobStatus.FAILED, error["category"] if error else None)
                entry = merged.setdefault(key, {"count": 0, "most_recent": 0})
                entry["count"] += row["count"]
                entry["most_recent"] = max(entry["most_recent"], row["most_recent"])
        return sorted(({"status": status, "count": row["count"],
                        "most_recent": row["most_recent"], "category": category}
                       for (status, category), row in merged.items()),
                      key=lambda e: (e["status"], e["category"] or ""))

    async def _grouped(self, match: dict, key: str) -> dict:
        """{value of `key`: {count, most_recent}} over the jobs matching `match`."""
        rows = await aggregate_all(self.db["jobs"], [
            {"$match": match},
            {"$group": {"_id": key, "count": {"$sum": 1},
                        "most_recent": {"$max": "$last_status_change"}}},
        ])
        return {row["_id"]: {"count": row["count"], "most_recent": row["most_recent"]}
                for row in rows}
