"""Real child-process tests for the embedded store launcher."""

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pymongo
import pytest

from store import nx_socket
from store.embedded import PID_FILE, SOCKET_PATH_MAX, EmbeddedMongo, EmbeddedStoreError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stores():
    """Build EmbeddedMongo instances and make sure none outlives its test."""
    made = []

    def make(data_dir, kind="nx"):
        store = EmbeddedMongo(data_dir, kind)
        made.append(store)
        return store

    yield make
    for store in made:
        store.stop()


def _wait_gone(pid, timeout=10.0):
    """Whether ``pid`` is gone (or a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_nx_roundtrip_stop_and_durable_restart(tmp_path, stores):
    store = stores(tmp_path)
    url = store.start()
    socket_path = tmp_path / "nx-27017.sock"
    assert url == f"mongodb://{quote(str(socket_path), safe='')}/?directConnection=true"
    assert stat.S_ISSOCK(socket_path.stat().st_mode)
    assert store.url == url and store.is_alive()
    pid = store.pid
    assert (tmp_path / PID_FILE).read_text().strip() == str(pid)

    with pymongo.MongoClient(url, serverSelectionTimeoutMS=2000) as client:
        assert client.admin.command("ping")["ok"] == 1
        client.jobdeck.jobs.insert_one({"_id": "job-1", "state": "queued"})
        assert client.jobdeck.jobs.find_one({"_id": "job-1"})["state"] == "queued"

    store.stop()
    assert not store.is_alive()
    assert store.pid is None and store.url is None
    assert not psutil.pid_exists(pid)
    assert not (tmp_path / PID_FILE).exists()
    assert not socket_path.exists()
    assert (tmp_path / "jobdeck.db").is_file()
    store.stop()  # idempotent

    url = store.start()
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=2000) as client:
        assert client.jobdeck.jobs.find_one({"_id": "job-1"})["state"] == "queued"


def test_start_is_idempotent_while_alive(tmp_path, stores):
    store = stores(tmp_path)
    url = store.start()
    pid = store.pid
    assert store.start() == url
    assert store.pid == pid


def test_secantus_start_ping_stop(tmp_path, stores):
    store = stores(tmp_path, "secantus")
    url = store.start()
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=2000) as client:
        assert client.admin.command("ping")["ok"] == 1
        client.jobdeck.jobs.insert_one({"_id": "job-1"})
        assert client.jobdeck.jobs.count_documents({}) == 1
    pid = store.pid
    store.stop()
    assert not psutil.pid_exists(pid)
    assert (tmp_path / "secantus").is_dir()


def test_stale_store_from_killed_run_is_terminated(tmp_path, stores):
    # Stands in for a store whose parent was SIGKILLed: its command line
    # carries the store's module name, which is what the check trusts.
    stale = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "nx_27017"]
    )
    try:
        (tmp_path / PID_FILE).write_text(f"{stale.pid}\n")
        stores(tmp_path).start()
        assert stale.wait(timeout=5) is not None
    finally:
        stale.kill()
        stale.wait()


def test_a_real_store_left_by_a_killed_run_is_replaced(tmp_path, stores):
    """A server killed without stopping its store: the next one's store stops that one (found by
    its pid file and command line) and serves the socket itself, rather than the new server
    talking to the old store until it goes."""
    old = stores(tmp_path)
    url = old.start()
    old_pid = old.pid
    new = stores(tmp_path)
    assert new.start() == url
    assert old._proc.wait(timeout=5) is not None
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        assert client.admin.command("serverStatus")["pid"] == new.pid != old_pid


def test_pid_file_naming_unrelated_process_is_ignored(tmp_path, stores):
    # A reused pid must not get an innocent process killed.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / PID_FILE).write_text(f"{bystander.pid}\n")
        store = stores(tmp_path)
        store.start()
        assert bystander.poll() is None
        assert (tmp_path / PID_FILE).read_text().strip() == str(store.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_store_dies_with_its_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from store.embedded import EmbeddedMongo
        store = EmbeddedMongo({str(tmp_path)!r})
        store.start()
        print(store.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
    assert _wait_gone(child), "store outlived its SIGKILLed parent"


def test_child_exiting_at_startup_raises_with_log_tail(tmp_path, stores):
    (tmp_path / "secantus").write_text("not a directory")
    with pytest.raises(EmbeddedStoreError, match="FileExistsError"):
        stores(tmp_path, "secantus").start()


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        EmbeddedMongo(tmp_path, "mongod")


def test_restart_after_a_kill_serves_the_same_socket_unless_another_process_does(
        tmp_path, stores):
    """The supervisor's restart: a killed store's socket file is replaced, so clients holding the
    URL reconnect; a socket another process serves is never taken over."""
    store = stores(tmp_path)
    url = store.start()
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        client.jobdeck.jobs.insert_one({"_id": 1})
        os.kill(store.pid, signal.SIGKILL)
        store._proc.wait()
        assert store.socket_path.exists()  # left by the killed store
        assert store.restart() == url
        assert client.jobdeck.jobs.count_documents({}) == 1

        os.kill(store.pid, signal.SIGKILL)
        store._proc.wait()
        store.socket_path.unlink()
        with socket.socket(socket.AF_UNIX) as squatter:
            squatter.bind(str(store.socket_path))
            squatter.listen()
            with pytest.raises(EmbeddedStoreError, match="(?s)exited at restart at socket .*"
                               f"OSError: \\[Errno 98\\] another process serves {store.socket_path}"):
                store.restart(ready_timeout=10)
        assert store.restart() == url
        assert client.jobdeck.jobs.count_documents({}) == 1


def test_a_data_folder_too_long_for_a_socket_is_refused_with_the_reason(tmp_path, stores):
    data = tmp_path / ("d" * (SOCKET_PATH_MAX - len(str(tmp_path)) - len("/nx-27017.sock")))
    assert len(str(data / "nx-27017.sock")) == SOCKET_PATH_MAX + 1
    with pytest.raises(EmbeddedStoreError) as refused:
        stores(data).start()
    assert str(refused.value) == (
        f"the data folder's path is too long for the store's Unix socket {data}/nx-27017.sock "
        f"(108 bytes; a socket's path is at most 107): use a data folder with a shorter path "
        "(--data-dir)")
    stores(data.with_name(data.name[1:])).start()  # one byte shorter: fits


def test_bind_replaces_a_stale_socket_file_and_refuses_a_served_one(tmp_path):
    path = str(tmp_path / "s.sock")
    first = nx_socket.bind(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(OSError, match=f"another process serves {path}") as taken:
        nx_socket.bind(path)
    assert taken.value.errno == errno.EADDRINUSE
    first.close()  # its file stays, and nothing accepts there any more
    with nx_socket.bind(path) as second, socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        assert second.accept()[0].close() is None
    (tmp_path / "f").write_text("not a socket")
    with pytest.raises(OSError, match="Address already in use"):
        nx_socket.bind(str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "not a socket"
