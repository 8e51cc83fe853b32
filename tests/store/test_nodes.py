"""Nodes keyed by `slave_id`: the engine's own node and a Slurm node of the same name are two
records (issue 12), and a store written when nodes were keyed by a unique `hostname` is migrated
at start-up."""

import asyncio

import pytest

from core.times import now_ms
from store import Store

FIELDS = ("id", "hostname", "slave_id", "port", "is_paused", "pause_reason", "slurm_state")


def slurm_node(name: str, state: str = "idle", reason: str | None = None) -> dict:
    """A node as engine/executor.py's cluster_node_fields hands it to sync_cluster."""
    return {"hostname": name, "cpus": 2.0, "mem": 1024.0, "slurm_state": state,
            "is_paused": reason is not None, "pause_reason": reason}


async def nodes_by_id(store) -> list[tuple]:
    return [tuple(node.get(k) for k in FIELDS) for node in await store.nodes.all()]


async def index_keys(store) -> dict[tuple, bool]:
    """{key: unique} of the nodes' indexes, but the one on `id` (nx-27017 skips it silently,
    tests/store/test_db.py::test_unique_id_index)."""
    found = {}
    async for index in await store.db["nodes"].list_indexes():
        key = tuple((k, int(d)) for k, d in index["key"].items())
        if key != (("id", 1),):
            found[key] = bool(index.get("unique"))
    return found


async def old_format(store) -> tuple[int, int, int]:
    """Make the test's store look like one from before the node key: a unique index on
    `hostname` instead of `slave_id`, and every node with its hostname as `slave_id`, written
    as that code wrote them. The engine ran on a machine named n1, so its node and Slurm's n1
    are one record (registered by the engine, then given n1's Slurm state). The ids of that
    shared record, of the drained Slurm node n2 and of an engine node "web"."""
    async for index in await store.db["nodes"].list_indexes():
        if dict(index["key"]) == {"slave_id": 1}:
            await store.db["nodes"].drop_index(index["name"])
    await store.db["nodes"].create_index("hostname", unique=True)
    now = now_ms()
    ids = [await store.db.next_id("nodes") for _ in range(3)]
    engine = {"is_paused_errors": False, "created": now, "is_active": True, "archived": None,
              "last_offer": now, "last_modified": now, "cpus": 4.0, "mem": 4096.0}
    await store.db["nodes"].insert_many([
        {**engine, "id": ids[0], "hostname": "n1", "slave_id": "n1", "port": 8000,
         "is_paused": False, "pause_reason": None, "cpus": 2.0, "mem": 1024.0,
         "slurm_state": "idle"},
        {**engine, "id": ids[1], "hostname": "n2", "slave_id": "n2", "port": None,
         "is_paused": True, "pause_reason": "disk swap", "cpus": 2.0, "mem": 1024.0,
         "slurm_state": "drained"},
        {**engine, "id": ids[2], "hostname": "web", "slave_id": "web", "port": 8000,
         "is_paused": True, "pause_reason": "deploy"}])
    return ids[0], ids[1], ids[2]


async def reopened(store) -> Store:
    """The test's database opened again, as a server starting on it does."""
    again = Store(store.db._url, store.db.db.name)
    await again.open()
    return again


@pytest.mark.gen_test
async def test_a_slurm_node_and_the_engines_node_of_one_name_are_two_records(store):
    engine = await store.nodes.register("n1", 8000, 4, 4096)
    assert await store.nodes.sync_cluster([slurm_node("n1"), slurm_node("n2")]) == 2
    n1, n2 = engine["id"] + 1, engine["id"] + 2
    assert await nodes_by_id(store) == [
        (engine["id"], "n1", "n1", 8000, False, None, None),
        (n1, "n1", "slurm:n1", None, False, None, "idle"),
        (n2, "n2", "slurm:n2", None, False, None, "idle")]
    assert await store.nodes.cluster_node_id("n1") == n1
    assert [node["id"] for node in await store.nodes.cluster()] == [n1, n2]
    # A complete sync leaves the engine's node active: it is no cluster node gone missing.
    assert [node["is_active"] for node in await store.nodes.all()] == [True, True, True]

    # A drain read back for n1 alone (PATCH /nodes/{id}/) writes Slurm's n1, not the engine's.
    assert await store.nodes.sync_cluster([slurm_node("n1", "drained", "disk swap")],
                                          complete=False) == 1
    await store.nodes.set_paused(engine["id"], True, "deploy")
    again = await store.nodes.register("n1", 8000, 4, 4096)
    assert (again["id"], again["is_paused"], again["pause_reason"]) == \
        (engine["id"], True, "deploy")
    assert await nodes_by_id(store) == [
        (engine["id"], "n1", "n1", 8000, True, "deploy", None),
        (n1, "n1", "slurm:n1", None, True, "disk swap", "drained"),
        (n2, "n2", "slurm:n2", None, False, None, "idle")]
    assert await index_keys(store) == {(("_id", 1),): False, (("slave_id", 1),): True}


@pytest.mark.gen_test
async def test_a_store_keyed_by_hostname_is_migrated_at_start_up(store):
    shared, n2, web = await old_format(store)
    assert await index_keys(store) == {(("_id", 1),): False, (("hostname", 1),): True}

    migrated = await reopened(store)
    try:
        assert await index_keys(migrated) == {(("_id", 1),): False, (("slave_id", 1),): True}
        # The shared record stays Slurm's n1 (its pause is Slurm's drain), under its new key.
        assert await nodes_by_id(migrated) == [
            (shared, "n1", "slurm:n1", None, False, None, "idle"),
            (n2, "n2", "slurm:n2", None, True, "disk swap", "drained"),
            (web, "web", "web", 8000, True, "deploy", None)]

        # The engine on n1 now gets a node of its own, paused apart from Slurm's n1.
        engine = await migrated.nodes.register("n1", 8000, 4, 4096)
        assert (engine["id"], engine["slave_id"], engine["is_paused"]) == (web + 1, "n1", False)
        assert (await migrated.nodes.register("web", 8001, 4, 4096))["id"] == web
        assert await migrated.nodes.cluster_node_id("n1") == shared
        await migrated.nodes.set_paused(engine["id"], True, "deploy")
        await migrated.nodes.sync_cluster([slurm_node("n1", "drained", "by admin"),
                                           slurm_node("n2")])
        after = await nodes_by_id(migrated)
        assert after == [
            (shared, "n1", "slurm:n1", None, True, "by admin", "drained"),
            (n2, "n2", "slurm:n2", None, False, None, "idle"),
            (web, "web", "web", 8001, True, "deploy", None),
            (engine["id"], "n1", "n1", 8000, True, "deploy", None)]
        written = await migrated.nodes.all()
    finally:
        await migrated.close()

    # Migrating is done once: opening the store again changes no node.
    again = await reopened(store)
    try:
        assert await again.nodes.all() == written
        assert await index_keys(again) == {(("_id", 1),): False, (("slave_id", 1),): True}
    finally:
        await again.close()



@pytest.mark.gen_test
async def test_two_processes_migrating_at_once_both_start(store):
    """Both list the old index and drop it: the second drop finds it gone (IndexNotFound on
    MongoDB and SecantusDB), which is not an error."""
    shared, n2, web = await old_format(store)
    starting = [Store(store.db._url, store.db.db.name) for _ in range(2)]
    try:
        await asyncio.gather(*(other.nodes.migrate() for other in starting))
    finally:
        for other in starting:
            await other.close()
    assert await index_keys(store) == {(("_id", 1),): False}
    assert [(n["id"], n["slave_id"]) for n in await store.nodes.all()] == \
        [(shared, "slurm:n1"), (n2, "slurm:n2"), (web, "web")]
