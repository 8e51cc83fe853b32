"""The MongoDB connection, id counters, indexes and built-in records.

Written for the common subset of MongoDB that nx-27017, SecantusDB and a real MongoDB all get
right: integer `id` fields beside `_id` (sorted on, never `_id`; jobs and executions also get
`_id` = `id`, the one id nx-27017 can index, see ID_KEYED), integer millisecond times,
counts with `$match` + `$count`, no `$lookup`/`$facet`/`$setOnInsert`, no `$push` of subdocuments.
"""

import asyncio
import contextlib
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from core.model import BUILTIN_ERRORS
from core.settings import DEFAULTS
from core.times import now_ms
from store.reads import StoreWriteFailed, aggregate_all, find_all, find_page

COUNTED = ("jobs", "job_exes", "job_types", "job_type_revs", "trigger_events", "errors",
           "workspaces", "files", "nodes")

A, D = ASCENDING, DESCENDING

# Collections whose documents the store writes with `_id` equal to `id`, and finds by `_id` alone.
# nx-27017 cannot index a field named `id` (its one-field index gets the name of its own `_id`
# index and is skipped), so a lookup by `id` reads every document (175 ms at 100,000 jobs) while
# one by `_id` takes 0.5 ms. Start-up gives older documents their `_id` once (key_by_id). These
# are the collections that grow with the jobs; the others are made by hand and stay small.
ID_KEYED = ("jobs", "job_exes", "trigger_events", "files")

# The collection of one-time store migrations done: {"_id": name, "at": ms}.
MIGRATIONS = "migrations"
KEY_BY_ID = "key_by_id"
REKEY_PASSES = 3

# Collections whose ids a process takes from a block it reserved with one findAndModify
# (ID_BLOCK ids), instead of one findAndModify per id: the three a submission writes. Ids stay
# unique across processes (each block is reserved atomically); a block left unused when the
# process stops is a gap, and ids of two processes interleave, so ids are unique and increase
# within one process but are neither gap-free nor in creation order across processes. Their
# documents get `_id` = `id`, so even after a counters document was lost while a block was out
# (the counter is then rebuilt from the highest id present), the store refuses a repeated id.
BLOCK_ALLOCATED = ("jobs", "job_exes", "trigger_events")
ID_BLOCK = 100

# Equality fields first, then the sort field, then `id` as the tie-breaker (equality-sort-range).
INDEXES = {
    "jobs": [
        [("id", A)],
        [("last_modified", A), ("id", A)],
        [("last_status_change", A), ("id", A)],
        [("status", A), ("last_modified", A), ("id", A)],
        [("status", A), ("last_status_change", A), ("id", A)],
        [("job_type_id", A), ("last_modified", A), ("id", A)],
        [("job_type_id", A), ("last_status_change", A), ("id", A)],
        [("status", A), ("job_type_id", A), ("last_modified", A), ("id", A)],
        [("status", A), ("job_type_id", A), ("last_status_change", A), ("id", A)],
        [("status", A), ("priority", A), ("queued", A)],
        [("fold_gen", A)],  # store/counts.py: the jobs a fold has yet to count, or folded since
        [("status", A), ("job_type_id", A), ("queued", A)],  # queue status: longest queued
        [("status", A), ("job_type_id", A), ("priority", A)],  # queue status: top priority
    ],
    "job_exes": [
        [("id", A)],
        [("job_id", A)],  # one field: nx-27017 uses no compound index for a prefix lookup
        [("status", A), ("id", A)],
        [("last_modified", A), ("id", A)],
        [("job_type_id", A), ("last_modified", A), ("id", A)],
    ],
    "job_types": [[("id", A)], [("name", A), ("version", A)], [("category", A)]],
    "job_type_revs": [[("id", A)], [("job_type_id", A), ("revision_num", A)]],
    "trigger_events": [[("id", A)]],
    "errors": [[("id", A)], [("name", A)]],
    "workspaces": [[("id", A)], [("name", A)]],
    "files": [[("id", A)], [("job_id", A)], [("is_product", A), ("last_modified", A), ("id", A)]],
    "nodes": [[("id", A)], [("slave_id", A)]],  # store/nodes.py: why not hostname
}
UNIQUE = {("jobs", "id"), ("job_exes", "id"), ("job_types", "id"), ("job_type_revs", "id"),
          ("trigger_events", "id"), ("errors", "id"), ("errors", "name"), ("workspaces", "id"),
          ("workspaces", "name"), ("files", "id"), ("nodes", "id"), ("nodes", "slave_id")}


def time_span(started: int | None, ended: int | None) -> dict | None:
    """A `[started, ended)` range condition on a millisecond time field, or None for no bounds."""
    span = {}
    if started is not None:
        span["$gte"] = started
    if ended is not None:
        span["$lt"] = ended
    return span or None


class Database:
    """Owns the client; every store module reaches MongoDB through one of these."""

    def __init__(self, url: str, name: str = DEFAULTS.db_name,
                 timeout_ms: int = DEFAULTS.store_timeout_ms, listeners=()):
        # With the store down (its connections reset, its port closed) every call fails after
        # `timeout_ms` of server selection: a 503, never a hang. connectTimeoutMS is also the
        # heartbeat timeout: a long bulk insert on nx-27017 must not make the monitor cancel every
        # operation in flight. No socketTimeoutMS: with one set, nx-27017's change stream stops
        # delivering events. Writes are acknowledged only once journaled (j: true; nx-27017
        # commits each write to its SQLite WAL with synchronous=FULL), so a 201 survives a crash.
        self._url = url
        self._options: dict[str, Any] = {"serverSelectionTimeoutMS": timeout_ms,
                         "connectTimeoutMS": max(timeout_ms, 30000), "w": 1, "journal": True}
        if listeners:  # pymongo command monitoring (tests/test_store_budget.py counts with it)
            self._options["event_listeners"] = list(listeners)
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **self._options)
        self.db = self.client[name]
        self.leftovers: list[tuple[str, dict]] = []  # see remove_leftover
        # BLOCK_ALLOCATED: the ids this process reserved and has not handed out yet.
        self._blocks: dict[str, range] = {}
        self._block_locks: dict[str, asyncio.Lock] = {}

    def dedicated_client(self, **options) -> AsyncMongoClient[dict[str, Any]]:
        """A client with one connection of its own, for a cursor that must outlive what other
        operations do: nx-27017 drops a cursor silently when its connection closes, and a
        cancelled operation closes the pooled connection it ran on."""
        merged = {**self._options, **options, "maxPoolSize": 1}
        merged["event_listeners"] = [*self._options.get("event_listeners", ()),
                                     *options.get("event_listeners", ())]
        return AsyncMongoClient(self._url, **merged)

    def __getitem__(self, collection: str):
        return self.db[collection]

    async def remove_leftover(self, collection: str, key: dict) -> None:
        """Delete the one document matching `key` that a refused write left pointing nowhere (a
        submission's execution or event when its job could not be written). If the store refuses
        that too (a full disk), it is deleted once the store writes again: store/writes.py calls
        remove_leftovers. Kept in memory only: a restart in between leaves it."""
        try:
            await self.db[collection].delete_one(key)
        except PyMongoError:
            self.leftovers.append((collection, key))

    async def remove_leftovers(self) -> int:
        """Retry the deletes remove_leftover could not make; how many are still left."""
        left, self.leftovers = self.leftovers, []
        for collection, key in left:
            await self.remove_leftover(collection, key)
        return len(self.leftovers)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def prepare(self) -> None:
        """Create indexes, initialise counters, key ID_KEYED documents by id and seed Scale's
        built-in errors."""
        for collection in INDEXES:
            await self.create_indexes(collection)
        for name in COUNTED:
            await self._init_counter(name)
        await self.key_by_id()
        await self._seed_errors()

    async def key_by_id(self) -> None:
        """Give every document of ID_KEYED `_id` = `id`, once per store: documents of a store
        from before they were written so, or of a writer that left `_id` to the driver. Lookups
        there then go by `_id` alone; a fallback to `id` would read every job for each id that
        does not exist, a cheap way for any client to load the store. The mark it leaves spares
        later start-ups the counts (about 1 s per 100,000 documents on nx-27017)."""
        migrations = self.db[MIGRATIONS]
        if await migrations.find_one({"_id": KEY_BY_ID}) is not None:
            return
        await self._restore_stashed()
        for name in ID_KEYED:
            for _ in range(REKEY_PASSES):
                if await self._keyed_by_id(name):
                    break
                await self._rekey(name)
            else:
                raise StoreWriteFailed(name, "documents whose _id is not their id")
        with contextlib.suppress(DuplicateKeyError):
            await migrations.insert_one({"_id": KEY_BY_ID, "at": now_ms()})

    async def _keyed_by_id(self, name: str) -> bool:
        """Whether every document of `name` has a number `_id` (the store writes none other
        than its `id`). Counted, not listed: nx-27017 matches no document with
        `{"$type": "objectId"}` and has no `$not`."""
        return await self.count(name, {}) == await self.count(name, {"_id": {"$type": "number"}})

    async def _rekey(self, name: str) -> None:
        """Rewrite each document of `name` whose `_id` is not its `id` under `_id` = `id`. A
        unique index on `id` (MongoDB, SecantusDB) refuses the copy while the old one is there,
        so the old one goes first, with the copy stashed in MIGRATIONS until it is written: a
        crash in between leaves it for the next start-up (_restore_stashed)."""
        collection = self.db[name]
        old = [doc["_id"] async for doc in collection.find({}, {"_id": 1, "id": 1})
               if doc["_id"] != doc.get("id") and isinstance(doc.get("id"), int)]
        for old_id in old:
            doc = await collection.find_one({"_id": old_id})
            if doc is None:
                continue
            stash = {"_id": f"{KEY_BY_ID} {name} {doc['id']}", "collection": name,
                     "doc": {**doc, "_id": doc["id"]}}
            with contextlib.suppress(DuplicateKeyError):
                await self.db[MIGRATIONS].insert_one(stash)
            await collection.delete_one({"_id": old_id})
            await self._unstash(stash)

    async def _restore_stashed(self) -> None:
        """Write the documents a start-up stopped in the middle of rekeying left stashed."""
        for stash in await find_all(self.db[MIGRATIONS], {"collection": {"$in": ID_KEYED}},
                                    key="_id"):
            await self._unstash(stash)

    async def _unstash(self, stash: dict) -> None:
        """Write a stashed document (kept if another process wrote it first), then the stash
        goes."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[stash["collection"]].insert_one(stash["doc"])
        await self.db[MIGRATIONS].delete_one({"_id": stash["_id"]})

    async def create_indexes(self, collection: str) -> None:
        """Create `collection`'s INDEXES (existing ones are left as they are)."""
        for keys in INDEXES[collection]:
            unique = len(keys) == 1 and (collection, keys[0][0]) in UNIQUE
            await self.db[collection].create_index(keys, unique=unique)

    async def _init_counter(self, name: str) -> None:
        """Make the counter at least the highest id present, so ids never repeat after a crash."""
        newest = await self.db[name].find_one({}, {"id": 1}, sort=[("id", D)])
        highest = newest["id"] if newest else 0
        try:
            await self.db.counters.insert_one({"_id": name, "seq": highest})
        except DuplicateKeyError:
            await self.db.counters.update_one({"_id": name, "seq": {"$lt": highest}},
                                              {"$set": {"seq": highest}})

    async def next_id(self, name: str) -> int:
        return (await self.next_ids(name, 1))[0]

    async def next_ids(self, name: str, count: int) -> range:
        """Reserve `count` consecutive ids. In BLOCK_ALLOCATED collections they come from this
        process's block; a block too short for `count` is dropped (its ids are a gap) and a
        new one of `count` + ID_BLOCK is reserved in the same findAndModify."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if name not in BLOCK_ALLOCATED:
            return await self._reserve(name, count)
        lock = self._block_locks.setdefault(name, asyncio.Lock())
        async with lock:
            block = self._blocks.get(name, range(0))
            if len(block) < count:
                block = await self._reserve(name, count + ID_BLOCK)
            self._blocks[name] = block[count:]
            return block[:count]

    async def _reserve(self, name: str, count: int) -> range:
        """Reserve `count` consecutive ids from the store's counter. A counter that is missing
        (a collection outside COUNTED, or a counters document lost while running) is first
        rebuilt from the highest id present, never restarted at 1: nx-27017 cannot enforce a
        unique index on `id`.

        nx-27017 answers a failed findAndModify as "no such counter", so the increment is tried
        once more with the counter known to exist (seen, or made here): None again is a write
        the store failed, StoreWriteFailed."""
        doc = await self._increment(name, count)
        if doc is None:
            if await self.db.counters.find_one({"_id": name}, {"_id": 1}) is None:
                await self._init_counter(name)
            doc = await self._increment(name, count)
            if doc is None:
                raise StoreWriteFailed("counters", name)
        return range(doc["seq"] - count + 1, doc["seq"] + 1)

    async def _increment(self, name: str, count: int) -> dict | None:
        return await self.db.counters.find_one_and_update(
            {"_id": name}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER)

    async def _seed_errors(self) -> None:
        known = {doc["name"] for doc in await find_all(self.db.errors, {}, projection={"name": 1})}
        for name, title, description, category in BUILTIN_ERRORS:
            if name in known:
                continue
            now = now_ms()
            with contextlib.suppress(DuplicateKeyError):  # another server process seeded it
                await self.db.errors.insert_one({
                    "id": await self.next_id("errors"), "name": name, "title": title,
                    "description": description, "category": category, "is_builtin": True,
                    "created": now, "last_modified": now})

    async def count(self, collection: str, query: dict) -> int:
        """`$match` + `$count`: fast everywhere (nx-27017's count_documents scans the table)."""
        rows = await aggregate_all(self.db[collection], [{"$match": query}, {"$count": "n"}])
        return rows[0]["n"] if rows else 0

    async def by_ids(self, collection: str, ids, projection=None) -> dict[int, dict]:
        """{id: document}, by `_id` in ID_KEYED collections. Ids are unique, so it is one page of
        at most len(ids) documents."""
        ids = sorted({i for i in ids if i is not None})
        if not ids:
            return {}
        key = "_id" if collection in ID_KEYED else "id"
        docs = await find_page(self.db[collection], {key: {"$in": ids}}, projection=projection,
                               sort=[(key, 1)], limit=len(ids))
        return {doc["id"]: doc for doc in docs}
