"""Nodes: the machines that run jobs (Scale's Node fields). Every node handed out has its flags
as true/false (store/documents.py).

A node is keyed by its unique `slave_id`, not its `hostname`: an engine's own node has its
hostname as `slave_id`, a cluster (Slurm) node `slurm:<its Slurm name>` (cluster_key), so the
engine's node and a Slurm node of the same name are two records, paused and counted apart."""

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from core.times import now_ms
from store.db import Database
from store.documents import NODE_FLAGS, with_flags
from store.reads import IncompleteRead, StoreWriteFailed, find_all, find_page

CLUSTER_KEY_PREFIX = "slurm:"
INDEX_NOT_FOUND = 27  # MongoDB's error code for dropping an index that is not there


def is_cluster_node(node: dict) -> bool:
    """Whether `node` is a cluster node (it has a Slurm state). Checked here, not in a query:
    nx-27017 matches `{"slurm_state": {"$ne": null}}` on documents without the field, as an
    engine's node is, so such a read silently took every engine node for a Slurm node."""
    return node.get("slurm_state") is not None


def cluster_key(name: str) -> str:
    """The `slave_id` of the cluster node `name` (a hostname never holds a colon, so it never
    equals an engine node's)."""
    return CLUSTER_KEY_PREFIX + name


class NodeStore:
    def __init__(self, db: Database):
        self.db = db
        self.nodes = db["nodes"]

    async def migrate(self) -> None:
        """Bring a store from before nodes were keyed by `slave_id` up to date, once at start-up
        before any node is written (a no-op on an up-to-date store): drop its unique index on
        `hostname`, which kept the engine's node and a Slurm node of the same name in one record,
        and give each cluster node its cluster key. A record the engine and a Slurm node shared
        keeps its id and becomes the Slurm node's (its pause is Slurm's drain); the engine
        registers a new one."""
        indexes = [index async for index in await self.nodes.list_indexes()]
        if not any(index["name"] == "_id_" for index in indexes):
            raise IncompleteRead("the store listed the nodes' indexes without their _id index")
        for index in indexes:
            if dict(index["key"]) == {"hostname": 1}:
                try:
                    await self.nodes.drop_index(index["name"])
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:  # else another process dropped it first
                        raise
        for node in await find_all(self.nodes, {}):
            key = cluster_key(node["hostname"])
            if not is_cluster_node(node) or node.get("slave_id") == key:
                continue
            if await self.nodes.find_one_and_update(
                    {"_id": node["_id"]}, {"$set": {"slave_id": key, "port": None}}) is None:
                raise StoreWriteFailed("nodes", node["id"])

    async def register(self, hostname: str, port: int | None, cpus: float, mem: float) -> dict:
        """Create or refresh the engine's node for `hostname` (its `slave_id`), keeping its id
        and pause state.

        A refresh that returns None while the node exists (its insert is refused as a
        duplicate) is a write nx-27017 failed silently: StoreWriteFailed."""
        now = now_ms()
        fields = {"port": port, "is_active": True, "archived": None, "last_offer": now,
                  "last_modified": now, "cpus": float(cpus), "mem": float(mem)}
        node = await self.nodes.find_one_and_update(
            {"slave_id": hostname}, {"$set": fields}, return_document=ReturnDocument.AFTER)
        if node is not None:
            return with_flags(node, NODE_FLAGS)
        doc = {"id": await self.db.next_id("nodes"), "hostname": hostname, "slave_id": hostname,
               "pause_reason": None, "is_paused": False, "is_paused_errors": False,
               "created": now, **fields}
        try:
            await self.nodes.insert_one(doc)
        except DuplicateKeyError:
            # Another process registered it first, or the refresh above failed.
            node = await self.nodes.find_one_and_update(
                {"slave_id": hostname}, {"$set": fields}, return_document=ReturnDocument.AFTER)
            if node is None:
                raise StoreWriteFailed("nodes", hostname) from None
            return with_flags(node, NODE_FLAGS)
        return doc

    async def sync_cluster(self, nodes: list[dict], complete: bool = True) -> int:
        """Record a cluster's nodes as its scheduler reports them: each dict has `hostname`,
        `cpus`, `mem`, `slurm_state`, `is_paused` and `pause_reason` (the cluster's own drain
        state and reason), and is recorded under its cluster key, whatever engine node has its
        name. A node is created the first time, written only when one of those changed; with
        `complete`, cluster nodes no longer reported become inactive. How many nodes were
        written."""
        known = {n["hostname"]: n for n in await find_all(
            self.nodes, {} if complete
            else {"slave_id": {"$in": [cluster_key(n["hostname"]) for n in nodes]}})
            if is_cluster_node(n)}
        written = 0
        for node in nodes:
            fields = {"cpus": float(node["cpus"]), "mem": float(node["mem"]),
                      "slurm_state": node["slurm_state"], "is_paused": bool(node["is_paused"]),
                      "pause_reason": node["pause_reason"], "is_active": True,
                      "archived": None}
            old = known.pop(node["hostname"], None)
            if old is not None and all(old.get(k) == v for k, v in fields.items()):
                continue
            await self._write(node["hostname"], fields)
            written += 1
        for hostname, old in known.items() if complete else ():
            if old.get("is_active"):
                await self._write(hostname, {"is_active": False})
                written += 1
        return written

    async def _write(self, name: str, fields: dict) -> None:
        """Set `fields` on the cluster node `name`, creating it (with a new id) when it is new."""
        now = now_ms()
        key = cluster_key(name)
        fields = {**fields, "last_offer": now, "last_modified": now}
        node = await self.nodes.find_one_and_update({"slave_id": key}, {"$set": fields})
        if node is not None:
            return
        doc = {"id": await self.db.next_id("nodes"), "hostname": name, "slave_id": key,
               "port": None, "is_paused_errors": False, "created": now, "pause_reason": None,
               "is_paused": False, **fields}
        try:
            await self.nodes.insert_one(doc)
        except DuplicateKeyError:
            if await self.nodes.find_one_and_update({"slave_id": key}, {"$set": fields}) is None:
                raise StoreWriteFailed("nodes", key) from None

    async def cluster(self) -> list[dict]:
        """The active nodes of the cluster a backend places jobs on (those with a slurm_state)."""
        return [with_flags(node, NODE_FLAGS) for node in await find_all(
            self.nodes, {"is_active": {"$eq": True}}) if is_cluster_node(node)]

    async def get(self, node_id: int) -> dict | None:
        return with_flags(await self.nodes.find_one({"id": node_id}), NODE_FLAGS)

    async def cluster_node_id(self, name: str) -> int | None:
        """The id of the cluster node named `name` (never the engine's node of that name), if
        recorded."""
        node = await self.nodes.find_one({"slave_id": cluster_key(name)}, {"id": 1})
        return None if node is None else node["id"]

    async def by_ids(self, ids) -> dict[int, dict]:
        """{id: node} for the known ones among `ids` (None ignored)."""
        found = await self.db.by_ids("nodes", ids)
        for node in found.values():
            with_flags(node, NODE_FLAGS)
        return found

    async def all(self) -> list[dict]:
        """Every node, by id."""
        return [with_flags(node, NODE_FLAGS) for node in await find_all(self.nodes, {})]

    async def list_nodes(self, page: int, page_size: int) -> tuple[int, list[dict]]:
        count = await self.db.count("nodes", {})
        nodes = await find_page(self.nodes, {}, sort=[("id", 1)], skip=(page - 1) * page_size,
                                limit=page_size)
        return count, [with_flags(node, NODE_FLAGS) for node in nodes]

    async def touch(self, node_id: int) -> None:
        """Record that the node's engine is alive (Scale's last_offer)."""
        now = now_ms()
        await self.nodes.update_one({"id": node_id},
                                    {"$set": {"last_offer": now, "last_modified": now}})

    async def set_paused(self, node_id: int, is_paused: bool,
                         pause_reason: str | None) -> dict | None:
        """Pause or resume a node (Scale's PATCH /nodes/{id}/): a paused node starts no new
        executions; running ones go on. Resuming clears the reason. None for an unknown node;
        StoreWriteFailed for a known one the store did not write (nx-27017 says None)."""
        now = now_ms()
        node = await self.nodes.find_one_and_update(
            {"id": node_id},
            {"$set": {"is_paused": is_paused, "pause_reason": pause_reason if is_paused else None,
                      "last_modified": now}},
            return_document=ReturnDocument.AFTER)
        if node is None and await self.nodes.find_one({"id": node_id}, {"_id": 1}) is not None:
            raise StoreWriteFailed("nodes", node_id)
        return with_flags(node, NODE_FLAGS)
