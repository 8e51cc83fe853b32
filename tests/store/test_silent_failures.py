"""nx-27017's silent failures (issue 16, items 2 and 4), against the real embedded stores.

- A cursor that dies with its connection makes a later `getMore` answer "no more documents":
  every store read must come back whole, or raise.
- A findAndModify that fails answers "nothing matched": every conditional write must raise
  rather than report a lost race.
"""

import asyncio
import contextlib
import os
import subprocess
from functools import partial
from pathlib import Path

import pymongo
import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import PyMongoError

from core.model import BUILTIN_ERRORS
from store import Store
from store.counts import MINUTE_MS
from store.db import ID_BLOCK
from store.embedded import EmbeddedMongo
from store.jobs import JobFilter
from store.reads import IncompleteRead, StoreWriteFailed, aggregate_all, find_all, find_page

W = 2_000_000_000_000  # the time a faulted transition writes


class Commands(monitoring.CommandListener):
    """Registered once for the process. While `names` is a list, records each command's name;
    while `killer` is a client, kills through it every cursor a find or aggregate leaves open,
    before the reader can continue it: what nx-27017 does when the cursor's connection closes."""

    def __init__(self):
        self.names: list[str] | None = None
        self.killer: pymongo.MongoClient | None = None

    def started(self, event) -> None:
        if self.names is not None:
            self.names.append(event.command_name)

    def succeeded(self, event) -> None:
        if self.killer is None or event.command_name not in ("find", "aggregate"):
            return
        cursor = event.reply.get("cursor", {})
        if cursor.get("id"):
            db, _, collection = cursor["ns"].partition(".")
            self.killer[db].command("killCursors", collection, cursors=[cursor["id"]])

    def failed(self, event) -> None:
        pass


COMMANDS = Commands()
monitoring.register(COMMANDS)


@contextlib.contextmanager
def recorded():
    """The names of the commands sent inside the block."""
    COMMANDS.names = names = []
    try:
        yield names
    finally:
        COMMANDS.names = None


@pytest.fixture
def dying_cursors(backend):
    killer = pymongo.MongoClient(backend[1])
    COMMANDS.killer = killer
    yield
    COMMANDS.killer = None
    killer.close()


def _ignore(self, event) -> None:
    pass


class ClosedConnections(monitoring.ConnectionPoolListener):
    """Counts the connections a client closed."""

    def __init__(self):
        self.count = 0

    def connection_closed(self, event) -> None:
        self.count += 1

    pool_created = pool_ready = pool_cleared = pool_closed = connection_created = _ignore
    connection_ready = connection_check_out_started = connection_check_out_failed = _ignore
    connection_checked_out = connection_checked_in = _ignore


async def close_by_cancelling(client, closed: ClosedConnections) -> None:
    """Cancel an operation in flight on the client's only connection, which pymongo then
    closes (what live/socket.py's cancelled catch-up did)."""
    before = closed.count
    for ticks in range(1, 50):
        task = asyncio.ensure_future(client.admin.command("ping"))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, PyMongoError):
            await task
        if closed.count > before:
            return
    raise AssertionError("no operation could be cancelled in flight")


# -- reads ---------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_nx_ends_a_read_silently_once_its_cursor_connection_closed(store, backend):
    """The fault itself, as found: a pymongo cursor read across a closed connection ends at its
    first batch on nx-27017, without an error. find_page, asked on the same client, is whole."""
    if backend[0] != "nx":
        pytest.skip("only nx-27017 drops a cursor when its connection closes")
    await store.db["docs"].insert_many([{"_id": i, "id": i} for i in range(1, 501)])
    closed = ClosedConnections()
    client = AsyncMongoClient(backend[1], maxPoolSize=1, event_listeners=[closed])
    try:
        docs = client[store.db.db.name]["docs"]
        cursor = docs.find({}).sort("id", 1)
        first = await cursor.next()
        await close_by_cancelling(client, closed)
        assert len([first, *await cursor.to_list()]) == 101
        page = await find_page(docs, {}, sort=[("id", 1)], limit=1000)
        assert [doc["id"] for doc in page] == list(range(1, 501))
    finally:
        await client.close()


async def large_store(store, make) -> None:
    """More than one default batch (101) of everything the store lists."""
    worker = await make.job_type("worker")
    event = await make.event()
    jobs = []
    for i in range(1, 1201):
        job = store.jobs.new_job_doc(i, worker, {}, event, i)
        status = ("QUEUED", "RUNNING", "COMPLETED")[i % 3]
        job.update(job_type_id=2 + (i // 3) % 150, status=status, queued=i,
                   last_status_change=i * MINUTE_MS)
        jobs.append(job)
    await store.db["jobs"].insert_many(jobs)
    await store.db["job_exes"].insert_many([
        {"_id": i, "id": i, "job_id": 1 if i <= 150 else i, "job_type_id": 2,
         "status": "RUNNING" if i % 2 else "COMPLETED", "node_id": 7, "last_modified": i}
        for i in range(1, 1201)])
    await store.db["job_types"].insert_many([
        {"id": i, "name": f"type-{i}", "version": "1.0", "category": "bulk", "last_modified": i}
        for i in range(2, 152)])
    await store.db["errors"].insert_many([
        {"id": 1000 + i, "name": f"err-{i}", "category": "DATA"} for i in range(150)])
    await store.db["workspaces"].insert_many([
        {"id": i, "name": f"ws-{i}"} for i in range(1, 151)])
    await store.db["files"].insert_many([
        {"_id": i, "id": i, "job_id": 1, "job_type_id": 2, "is_product": True, "last_modified": i,
         "file_name": f"f{i}"} for i in range(1, 151)])
    await store.db["nodes"].insert_many([
        {"id": i, "hostname": f"node-{i}", "slave_id": f"node-{i}"} for i in range(1, 151)])


@pytest.mark.gen_test(timeout=300)
async def test_every_store_read_is_whole_when_cursors_die(store, make, dying_cursors):
    """Each listing the store serves, over more than one default batch, with every cursor
    killed as soon as it is left open: each comes back whole (pages of up to 1000 rows)."""
    await large_store(store, make)
    stats, nodes, products = store.stats, store.nodes, store.products
    jobs, job_types, errors, files = store.jobs, store.job_types, store.errors, store.files
    every_job, err_names = JobFilter(), [f"err-{i}" for i in range(150)]
    n_errors = 150 + len(BUILTIN_ERRORS)
    reads = {  # name: (read, expected size: len, or (count, len) of a page)
        "list_jobs": (partial(jobs.list_jobs, every_job, [("id", 1)], 1, 1000), (1200, 1000)),
        "list_jobs p2": (partial(jobs.list_jobs, every_job, [("id", 1)], 2, 1000), (1200, 200)),
        "list_exes": (partial(jobs.list_exes, page_size=1000), (1200, 1000)),
        "exes_for_job": (partial(jobs.exes_for_job, 1), 150),
        "exes_by_ids": (partial(jobs.exes_by_ids, range(1, 1201)), 1200),
        "jobs_by_ids": (partial(jobs.jobs_by_ids, range(1, 1201), {"data": 0}), 1200),
        "updates_after": (partial(jobs.updates_after, every_job, None, 1200), 1200),
        "updates_after a key": (partial(jobs.updates_after, every_job, (100 * MINUTE_MS, 100),
                                        1200), 1100),
        "exe_statuses": (partial(jobs.exe_statuses, range(1, 1201)), 1200),
        "queued_jobs": (partial(jobs.queued_jobs, 1000), 400),
        "queue_status": (jobs.queue_status, 150),
        "running_counts_by_type": (jobs.running_counts_by_type, 150),
        "running_exes_of_node": (partial(jobs.running_exes_of_node, 7), 600),
        "job_types.by_ids": (partial(job_types.by_ids, range(1, 152)), 151),
        "ids_matching": (partial(job_types.ids_matching, categories=["bulk"]), 150),
        "list_job_types": (partial(job_types.list_job_types, page_size=1000), (151, 151)),
        "all_job_types": (job_types.all_job_types, 151),
        "errors.names": (errors.names, n_errors),
        "list_errors": (partial(errors.list_errors, 1, 1000), (n_errors, n_errors)),
        "errors.by_names": (partial(errors.by_names, err_names), 150),
        "errors.by_ids": (partial(errors.by_ids, range(1000, 1150)), 150),
        "list_workspaces": (files.list_workspaces, 150),
        "workspaces_by_ids": (partial(files.workspaces_by_ids, range(1, 151)), 150),
        "files_by_ids": (partial(files.files_by_ids, range(1, 151)), 150),
        "products_of_job": (partial(files.products_of_job, 1), 150),
        "list_products": (partial(products.list_products, page_size=1000), (150, 150)),
        "list_nodes": (partial(nodes.list_nodes, 1, 1000), (150, 150)),
        "nodes.all": (nodes.all, 150),
        "nodes.by_ids": (partial(nodes.by_ids, range(1, 151)), 150),
        "counts_by_type_and_status": (stats.counts_by_type_and_status, 150),
        "counts_by_status": (stats.counts_by_status, 3),
    }
    got = {}
    for name, (read, _) in reads.items():
        try:
            result = await read()
        except PyMongoError as exc:
            got[name] = repr(exc)
            continue
        if isinstance(result, tuple):
            got[name] = (result[0], len(result[1]))
        else:
            got[name] = len(result)
    assert got == {name: expected for name, (_, expected) in reads.items()}


@pytest.mark.gen_test(timeout=120)
async def test_a_store_read_is_one_command_per_page(store, make):
    """No getMore anywhere: a page is one find, a count one aggregate."""
    await store.db["docs"].insert_many([{"_id": i, "id": i} for i in range(1, 1201)])
    docs = store.db["docs"]
    with recorded() as names:
        page = await find_page(docs, {}, sort=[("id", 1)], skip=100, limit=1000)
    assert (names, [doc["id"] for doc in page]) == (["find"], list(range(101, 1101)))
    with recorded() as names:
        every = await find_all(docs, {"id": {"$gt": 10}}, descending=True, page_size=500)
    assert (names, [doc["id"] for doc in every]) == (["find"] * 3, list(range(1200, 10, -1)))
    worker = await make.job_type("worker")
    for _ in range(150):
        await make.pending(worker)
    with recorded() as names:
        count, jobs = await store.jobs.list_jobs(JobFilter(), [("id", 1)], 1, 1000)
    assert (names, count, len(jobs)) == (["aggregate", "find"], 150, 150)


@pytest.mark.gen_test(timeout=120)
async def test_a_page_over_one_batch_continues_with_a_fresh_find(store, dying_cursors):
    """200 documents of 100 KB do not fit in one 16 MiB batch: the rest comes from a second
    find after the first batch, never from getMore."""
    big = "x" * 100_000
    await store.db["big"].insert_many([{"_id": i, "id": i, "pad": big} for i in range(1, 201)])
    with recorded() as names:
        page = await find_page(store.db["big"], {}, projection={"pad": 0}, sort=[("id", 1)],
                               limit=200)
        page_with_pad = await find_page(store.db["big"], {}, sort=[("id", 1)], limit=200)
    assert [doc["id"] for doc in page] == [doc["id"] for doc in page_with_pad] == list(
        range(1, 201))
    assert "getMore" not in names and names.count("find") == 3


@pytest.mark.gen_test
async def test_an_aggregation_over_one_batch_raises(store):
    await store.db["docs"].insert_many([{"_id": i, "id": i} for i in range(1, 51)])
    with recorded() as names, pytest.raises(IncompleteRead, match="did not fit in one batch"):
        await aggregate_all(store.db["docs"], [{"$match": {}}], batch_size=10)
    assert "getMore" not in names
    assert len(await aggregate_all(store.db["docs"], [{"$match": {}}], batch_size=51)) == 50


# -- writes --------------------------------------------------------------------------------


async def refuse(store, collection: str, field: str, value) -> None:
    """Make every write of `value` to `field` fail: a unique index on it and a document that
    already holds it. nx-27017 then answers findAndModify `{ok: 1, value: null}`."""
    await store.db[collection].insert_one({"_id": 10**9, "id": 10**9, field: value})
    await store.db[collection].create_index(field, unique=True)


def assert_write_failed(backend, excinfo, what: str) -> None:
    """A 503 either way; on nx-27017, which says nothing, our own StoreWriteFailed for `what`."""
    if backend[0] == "nx":
        assert excinfo.type is StoreWriteFailed, excinfo.value
        assert str(excinfo.value) == (f"the store acknowledged the write to {what} but did not "
                                      "make it")


@pytest.mark.gen_test
@pytest.mark.parametrize("cond", [{"status": "QUEUED"}, {"status": {"$in": ["QUEUED"]}}, {}],
                         ids=["equality", "in", "none"])
async def test_update_one_raises_when_the_store_fails_the_write(store, make, backend, cond):
    job, _ = await make.queued(await make.job_type("worker"))
    with pytest.raises(PyMongoError) as excinfo:
        await store.jobs._update_one(store.jobs.jobs, job["id"], cond, {"$inc": {"status": 1}})
    assert_write_failed(backend, excinfo, f"jobs {job['id']}")
    assert await store.jobs._update_one(store.jobs.jobs, job["id"], {"status": "RUNNING"},
                                        {"$set": {"status": "X"}}) is None


@pytest.mark.gen_test
async def test_cancel_is_a_503_not_a_refusal_when_the_store_fails_the_write(store, make,
                                                                            backend):
    job, exe = await make.queued(await make.job_type("worker"))
    await refuse(store, "jobs", "last_status_change", W)
    with pytest.raises(PyMongoError) as excinfo:
        await store.jobs.cancel_job(job["id"], when=W)
    assert_write_failed(backend, excinfo, f"jobs {job['id']}")
    assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"
    assert (await store.jobs.get_exe(exe["id"]))["status"] == "QUEUED"


@pytest.mark.gen_test
@pytest.mark.parametrize("transition", ["start", "complete", "fail"])
async def test_a_transition_the_store_fails_raises(store, make, backend, transition):
    worker = await make.job_type("worker")
    if transition == "start":
        job, exe = await make.queued(worker)
        await refuse(store, "job_exes", "started", W)
        call, failed = store.jobs.start_execution(exe["id"], 1, when=W), f"job_exes {exe['id']}"
    elif transition == "complete":
        job, exe = await make.running(worker)
        await refuse(store, "jobs", "ended", W)  # the execution's write goes through
        call, failed = store.jobs.complete_execution(exe["id"], when=W), f"jobs {job['id']}"
    else:
        job, exe = await make.running(worker)
        await refuse(store, "job_exes", "ended", W)
        call, failed = store.jobs.fail_execution(exe["id"], None, when=W), f"job_exes {exe['id']}"
    with pytest.raises(PyMongoError) as excinfo:
        await call
    assert_write_failed(backend, excinfo, failed)
    assert (await store.jobs.get_job(job["id"]))["status"] == job["status"]


@pytest.mark.gen_test
async def test_queue_raises_and_removes_its_execution_when_the_job_write_fails(store, make,
                                                                               backend):
    job = await make.pending(await make.job_type("worker"))
    await refuse(store, "jobs", "queued", W)
    with pytest.raises(PyMongoError) as excinfo:
        await store.jobs.queue_job(job["id"], when=W)
    assert_write_failed(backend, excinfo, f"jobs {job['id']}")
    assert (await store.jobs.get_job(job["id"]))["status"] == "PENDING"
    assert await store.jobs.exes_for_job(job["id"]) == []


@pytest.mark.gen_test
async def test_next_ids_raises_when_the_store_fails_the_increment(store, backend):
    await store.db.next_id("jobs")
    await store.db["counters"].update_one({"_id": "jobs"}, {"$set": {"seq": "seven"}})
    with pytest.raises(PyMongoError) as excinfo:  # more than this process's block holds
        await store.db.next_ids("jobs", ID_BLOCK + 1)
    assert_write_failed(backend, excinfo, "counters jobs")
    await store.db.next_id("files")
    await store.db["counters"].update_one({"_id": "files"}, {"$set": {"seq": "seven"}})
    with pytest.raises(PyMongoError) as excinfo:
        await store.db.next_id("files")
    assert_write_failed(backend, excinfo, "counters files")


@pytest.mark.gen_test
async def test_node_writes_raise_when_the_store_fails_them(store, backend):
    nodes = store.nodes
    node = await nodes.register("alpha", 1, 4, 1024)
    await refuse(store, "nodes", "pause_reason", "busy")
    with pytest.raises(PyMongoError) as excinfo:
        await nodes.set_paused(node["id"], True, "busy")
    assert_write_failed(backend, excinfo, f"nodes {node['id']}")
    assert await nodes.set_paused(999, True, "other") is None
    await store.db["nodes"].create_index("port", unique=True)
    await store.db["nodes"].update_one({"_id": 10**9}, {"$set": {"port": 2}})
    with pytest.raises(PyMongoError) as excinfo:
        await nodes.register("alpha", 2, 4, 1024)
    assert_write_failed(backend, excinfo, "nodes alpha")
    assert (await nodes.get(node["id"]))["port"] == 1


@pytest.mark.gen_test
async def test_a_cluster_sync_leaves_the_engines_node_alone(store):
    """nx-27017 matches `$ne: null` on a missing field: a filter on `slurm_state` took the
    engine's node (which has none) for a Slurm node gone from the cluster, and made it
    inactive at every sync (store/nodes.py decides it in Python)."""
    engine = await store.nodes.register("web", 8000, 4, 4096)
    n1 = {"hostname": "n1", "cpus": 2.0, "mem": 1024.0, "slurm_state": "idle",
          "is_paused": False, "pause_reason": None}
    await store.nodes.sync_cluster([n1])
    assert await store.nodes.sync_cluster([n1]) == 0
    assert [(n["id"], n["is_active"]) for n in await store.nodes.all()] == \
        [(engine["id"], True), (engine["id"] + 1, True)]
    assert [n["hostname"] for n in await store.nodes.cluster()] == ["n1"]


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str = "16m"):
    """A tmpfs of `size` mounted at `mount` for the block; skips the test where that cannot be
    done (not root, or no mounting here)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      check=False, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)  # busy: detach it now


def fill_disk(mount: Path) -> Path:
    """Use up the free space of the filesystem at `mount` with one file (remove it to free it)."""
    filler = mount / "filler"
    with contextlib.suppress(OSError), open(filler, "ab") as out:
        while True:
            out.write(bytes(1 << 16))
            out.flush()
    return filler


@pytest.fixture
def full_disk(tmp_path):
    """A 16 MiB tmpfs for an nx-27017 store's data; `fill()` then uses up its free space."""
    with small_tmpfs(tmp_path / "small") as mount:
        embedded = EmbeddedMongo(mount / "data", kind="nx")
        try:
            yield embedded, partial(fill_disk, mount)
        finally:
            embedded.stop()


@pytest.mark.gen_test(timeout=120)
async def test_transitions_raise_when_the_disk_is_full(full_disk):
    """The issue's case: nx-27017 on a full disk answered most RUNNING → COMPLETED transitions
    with None, writing nothing. Each must now succeed or raise, and raise only unwritten.
    The results are large so that the writes outgrow the slack SQLite's log file kept."""
    embedded, fill = full_disk
    store = await Store(await asyncio.to_thread(embedded.start)).open()
    try:
        worker = await store.job_types.create("worker", "1.0", {"version": "1.0",
                                              "command": "run.sh", "input_data": [],
                                              "output_data": []}, {})
        event = await store.jobs.create_event("USER", {})
        running = []
        for _ in range(20):
            _, exe = await store.jobs.submit_job(worker, {}, event, "")
            running.append(await store.jobs.start_execution(exe["id"], 1))
        fill()
        outcomes = []
        for job, exe in running:
            try:
                done = await store.jobs.complete_execution(exe["id"], {"pad": "x" * 300_000})
                outcomes.append(done and done["status"])
            except StoreWriteFailed:
                outcomes.append((await store.jobs.get_job(job["id"]))["status"])
        assert None not in outcomes
        assert "RUNNING" in outcomes  # the disk was full, and said so
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_submission_the_full_disk_refuses_leaves_nothing_behind(full_disk):
    """Each submission is a trigger event, an execution and a job, written one by one: when the
    disk refuses one of them, the others it made are removed again."""
    embedded, fill = full_disk
    store = await Store(await asyncio.to_thread(embedded.start)).open()
    try:
        worker = await store.job_types.create("worker", "1.0", {"version": "1.0",
                                              "command": "run.sh", "input_data": [],
                                              "output_data": []}, {})
        await store.jobs.submit_user_job(worker, {}, "")
        # Room inside the store's files (SQLite reuses freed pages and its log), where small
        # writes still fit once the disk is full, so that the large job is the refused write.
        scratch = store.db["scratch"]
        await scratch.insert_many([{"_id": i, "pad": "s" * 1_000_000} for i in range(3)])
        await scratch.delete_many({})
        filler = fill()
        outcomes = []
        for _ in range(10):
            try:
                await store.jobs.submit_user_job(worker, {"pad": "x" * 1_000_000}, "")
                outcomes.append("written")
            except PyMongoError as exc:
                outcomes.append(type(exc).__name__)
        assert set(outcomes) - {"written"}, outcomes  # the disk was full, and said so

        async def counts():
            return [await store.db.count(name, {}) for name in ("jobs", "job_exes",
                                                                "trigger_events")]

        written = 1 + outcomes.count("written")
        assert (await counts())[0] == written
        # What the refused submissions wrote is gone, at the latest once the disk has room again
        # (the full disk may refuse the deletes too).
        filler.unlink()
        assert await store.db.remove_leftovers() == 0
        assert await counts() == [written] * 3
    finally:
        await store.close()
