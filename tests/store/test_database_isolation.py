"""One logical database cannot touch another's data on the embedded store (issue 16, item 5).

nx-27017's `--db FILE` mode, which store/embedded.py used to run, kept every database name on one
set of tables: an insert into `other.jobs` showed up in `jobdeck.jobs`, a change stream on
`jobdeck.jobs` delivered `other`'s writes, and `drop_database("other")` emptied `jobdeck` (and
left jobdeck's change stream silently dead). In its `--data-dir` mode each database is its own
file. Each test starts its own real store; the upgrade tests write with the old command line
first and then start the store the way the server does.
"""

import json
import os
import signal
import time
import urllib.request

import pymongo
import pytest

from store import Store
from store.embedded import EmbeddedMongo
from tests.isolation import SharedDatabasesError, assert_databases_isolated
from tests.test_server import STARTUP_LIMIT, free_port, start_server, wait_for_line

KINDS = ["nx", "secantus"]
WAIT = 10.0  # seconds; a guard against a hang, not a performance assertion


class SingleFileNx(EmbeddedMongo):
    """nx as store/embedded.py ran it before: every database name in DATA_DIR/jobdeck.db."""

    def _command(self, port: int) -> list[str]:
        argv = super()._command(port)
        if "--data-dir" in argv:
            at = argv.index("--data-dir")
            argv[at:at + 2] = ["--db", str(self.data_dir / "jobdeck.db")]
        return argv


@pytest.fixture
def started():
    """Start an embedded store for the test, return a sync client on it; stop it afterwards."""
    made = []

    def start(store: EmbeddedMongo) -> pymongo.MongoClient:
        made.append(store)
        client = pymongo.MongoClient(store.start(), serverSelectionTimeoutMS=5000)
        made.append(client)
        return client

    yield start
    for thing in reversed(made):
        (thing.close if isinstance(thing, pymongo.MongoClient) else thing.stop)()


def _kill(store: EmbeddedMongo) -> None:
    """kill -9 the store, so its last writes are still in SQLite's write-ahead log."""
    os.kill(store.pid, signal.SIGKILL)
    store._proc.wait()
    store.stop()


def _next_event(stream, until) -> list[dict]:
    """Every event up to and including the first one for which ``until(event)`` holds."""
    events = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and stream.alive:
        event = stream.try_next()
        if event is None:
            time.sleep(0.02)
            continue
        events.append(event)
        if until(event):
            return events
    raise AssertionError(f"no awaited event within {WAIT}s (alive={stream.alive}); got {events}")


@pytest.mark.parametrize("kind", KINDS)
def test_another_database_cannot_see_change_or_drop_jobdecks_jobs(tmp_path, started, kind):
    client = started(EmbeddedMongo(tmp_path, kind))
    jobdeck, other = client.jobdeck, client.other
    jobdeck.jobs.insert_many([{"_id": 1, "who": "jobdeck"}, {"_id": 2, "who": "jobdeck"}])

    # Other _ids than jobdeck's: on shared tables the same _id would already fail as a duplicate.
    other.jobs.insert_many([{"_id": 102, "who": "other"}, {"_id": 103, "who": "other"}])
    other.jobs.update_many({}, {"$set": {"status": "CANCELED"}})
    other.counters.insert_one({"_id": "jobs", "seq": 99})

    assert list(jobdeck.jobs.find({}, sort=[("_id", 1)])) == [
        {"_id": 1, "who": "jobdeck"}, {"_id": 2, "who": "jobdeck"}]
    assert jobdeck.counters.find_one({"_id": "jobs"}) is None
    assert other.jobs.count_documents({"who": "other"}) == 2

    client.drop_database("other")
    assert jobdeck.jobs.count_documents({}) == 2
    if kind == "nx":  # before anything reads `other` again, which makes nx create it anew
        assert "other" not in client.list_database_names()
        assert not EmbeddedMongo(tmp_path).db_file("other").exists()
    assert other.jobs.count_documents({}) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_change_stream_has_only_its_own_databases_changes_and_survives_a_drop(
        tmp_path, started, kind):
    """store/changes.py reads post-images (`fullDocument`) from a stream on its database's
    jobs; another database's writes must not reach it, nor its drop end it."""
    client = started(EmbeddedMongo(tmp_path, kind))
    jobdeck, other = client.jobdeck, client.other
    jobdeck.jobs.insert_one({"_id": 1, "who": "jobdeck"})
    other.jobs.insert_one({"_id": 101, "who": "other"})
    with jobdeck.jobs.watch(full_document="updateLookup") as stream:
        other.jobs.insert_one({"_id": 102, "who": "other"})
        jobdeck.jobs.update_one({"_id": 1}, {"$set": {"status": "RUNNING"}})
        other.jobs.update_one({"_id": 101}, {"$set": {"status": "FAILED"}})
        jobdeck.jobs.insert_one({"_id": 3, "who": "jobdeck"})

        events = _next_event(stream, lambda e: e.get("fullDocument", {}).get("_id") == 3)
        seen = [(e["operationType"], e["fullDocument"]) for e in events]
        assert seen == [("update", {"_id": 1, "who": "jobdeck", "status": "RUNNING"}),
                        ("insert", {"_id": 3, "who": "jobdeck"})]

        client.drop_database("other")
        jobdeck.jobs.insert_one({"_id": 4, "who": "jobdeck"})
        events = _next_event(stream, lambda e: e.get("fullDocument", {}).get("_id") == 4)
        assert [e["fullDocument"]["who"] for e in events] == ["jobdeck"]
        assert stream.alive


def test_dropping_a_test_database_removes_its_files_only(tmp_path, started):
    """What the store tests' fixtures do at teardown, on one shared store: the dropped
    database's file (and its WAL) goes, so ~600 tests leave no files behind, and the store's
    own log and pid files beside the *.db files do not disturb nx's listing of databases."""
    embedded = EmbeddedMongo(tmp_path)
    client = started(embedded)
    client.jobdeck.jobs.insert_one({"_id": 1})
    client.test_0123456789ab.jobs.insert_many([{"_id": i} for i in range(100, 150)])
    assert embedded.log_path.exists() and (tmp_path / "nx-27017.pid").exists()
    test_files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("test_"))

    client.drop_database("test_0123456789ab")

    assert client.jobdeck.jobs.count_documents({}) == 1
    assert "test_0123456789ab.db" in test_files
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("test_"))
    assert leftovers == []
    assert set(client.list_database_names()) == {"admin", "jobdeck"}


def test_fixtures_refuse_a_store_whose_databases_share_tables_without_harming_it(
        tmp_path, started):
    """The guard of the shared-store fixtures (tests/isolation.py): on the old single-file nx it
    raises instead of letting tests drop databases there, and leaves the store's data alone."""
    old = SingleFileNx(tmp_path)
    client = started(old)
    client.jobdeck.jobs.insert_many([{"_id": i} for i in range(1, 4)])
    with pytest.raises(SharedDatabasesError, match="--db FILE"):
        assert_databases_isolated(old.url)
    assert client.jobdeck.jobs.count_documents({}) == 3
    assert [c for c in client.jobdeck.list_collection_names() if "probe" in c] == []

    old.stop()
    new = EmbeddedMongo(tmp_path)
    client = started(new)
    assert_databases_isolated(new.url)
    assert client.jobdeck.jobs.count_documents({}) == 3
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["admin.db", "jobdeck.db"]


def test_data_of_the_single_file_store_is_kept(tmp_path, started):
    """An install upgraded in place: jobdeck.db written by the old mode, last writes still in
    its WAL (the store was killed), is the database `jobdeck` of the new mode, indexes and all."""
    old = SingleFileNx(tmp_path)
    client = started(old)
    client.jobdeck.jobs.create_index([("status", 1), ("priority", 1)])
    client.jobdeck.jobs.insert_many([{"_id": i, "status": "QUEUED", "priority": i}
                                     for i in range(1, 11)])
    client.jobdeck.counters.insert_one({"_id": "jobs", "seq": 10})
    _kill(old)
    assert sorted(p.name for p in tmp_path.glob("*.db*")) == [
        "jobdeck.db", "jobdeck.db-shm", "jobdeck.db-wal"]
    assert (tmp_path / "jobdeck.db-wal").stat().st_size > 0

    new = EmbeddedMongo(tmp_path)
    client = started(new)
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["admin.db", "jobdeck.db"]
    assert client.jobdeck.jobs.count_documents({}) == 10
    assert client.jobdeck.counters.find_one({"_id": "jobs"})["seq"] == 10
    assert "idx_jobs_status_priority" in client.jobdeck.jobs.index_information()
    assert [d["_id"] for d in client.jobdeck.jobs.find({"status": "QUEUED", "priority": 3})] == [3]
    with client.jobdeck.jobs.watch(full_document="updateLookup") as stream:
        client.jobdeck.jobs.update_one({"_id": 5}, {"$set": {"status": "RUNNING"}})
        events = _next_event(stream, lambda e: e["operationType"] == "update")
        assert events[-1]["fullDocument"] == {"_id": 5, "status": "RUNNING", "priority": 5}


def test_single_file_data_becomes_the_configured_database_once(tmp_path, started):
    """With another database name the old mode still wrote jobdeck.db; that file becomes
    `<name>.db`, once: later starts move nothing."""
    old = SingleFileNx(tmp_path)
    client = started(old)
    client.prod.jobs.insert_many([{"_id": i} for i in range(1, 6)])
    _kill(old)

    new = EmbeddedMongo(tmp_path, db_name="prod")
    client = started(new)
    assert client.prod.jobs.count_documents({}) == 5
    assert not (tmp_path / "jobdeck.db").exists() and not (tmp_path / "jobdeck.db-wal").exists()
    client.jobdeck.jobs.insert_one({"_id": "a database of its own"})
    new.stop()

    client = started(EmbeddedMongo(tmp_path, db_name="prod"))
    assert client.prod.jobs.count_documents({}) == 5
    assert client.jobdeck.jobs.count_documents({}) == 1


@pytest.mark.parametrize("name", ["my db", "_jobdeck", "x" * 65, "jobdeck.prod", ""])
def test_a_database_name_nx_cannot_file_is_refused_up_front(tmp_path, name):
    with pytest.raises(ValueError, match="cannot be used with the embedded nx-27017 store"):
        EmbeddedMongo(tmp_path, db_name=name)
    EmbeddedMongo(tmp_path, "secantus", db_name=name)  # SecantusDB files names its own way


def test_server_started_the_default_way_keeps_existing_data(tmp_path, started, io_loop):
    """server.py with only --data-dir, on a data dir the old single-file store wrote."""
    data_dir = tmp_path / "data"
    old = SingleFileNx(data_dir)
    started(old)

    async def write():
        store = await Store(old.url, "jobdeck").open()
        try:
            interface = {"version": "1.0", "command": "run.sh", "command_arguments": "",
                         "input_data": [], "output_data": []}
            await store.job_types.create("kept-across-upgrade", "1.0", interface, {})
        finally:
            await store.close()

    io_loop.run_sync(write)
    old.stop()

    port = free_port()
    proc = start_server("--port", str(port), "--data-dir", str(data_dir), "--no-auth",
                        "--engine", "false")
    try:
        line, lines = wait_for_line(proc, "Jobdeck ready at http://")
        assert line is not None, "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/job-types/",
                                    timeout=STARTUP_LIMIT) as response:
            names = [t["name"] for t in json.loads(response.read())["results"]]
        assert names == ["kept-across-upgrade"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STARTUP_LIMIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (data_dir / "jobdeck.db").is_file()
