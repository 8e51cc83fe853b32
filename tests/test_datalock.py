"""One server per data folder (datalock.py): a second server on the same folder exits 2 naming
the first, which runs on untouched; servers on one --mongo-url store still share it."""

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request

import psutil
import pytest

from core.datalock import LOCK_FILE, DataDirInUse, DataDirLock
from tests.test_faults import Server, job_type, submit, until_jobs
from tests.test_server import ROOT, STARTUP_LIMIT, free_port, start_server, wait_for_line
from tests.tokens import OPERATOR_TOKEN


@pytest.fixture
def servers():
    """`Server`s to stop after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path):
    first = DataDirLock(tmp_path).acquire()
    with pytest.raises(DataDirInUse) as starting:
        DataDirLock(tmp_path).acquire()
    assert (starting.value.pid, starting.value.port) == (os.getpid(), None)
    assert f"(pid {os.getpid()}, still starting)" in str(starting.value)
    first.record(8123)
    assert (tmp_path / LOCK_FILE).read_text() == f"pid {os.getpid()}\nport 8123\n"
    with pytest.raises(DataDirInUse) as running:
        DataDirLock(tmp_path).acquire()
    assert str(running.value) == (
        f"another Jobdeck server (pid {os.getpid()}, port 8123) is using the data folder "
        f"{tmp_path.resolve()}; stop it first, or give this one another --data-dir (several "
        "servers can share one store with --mongo-url)")
    first.release()
    first.release()  # idempotent
    again = DataDirLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).read_text() == f"pid {os.getpid()}\n"
    again.release()


@pytest.mark.gen_test(timeout=180)
async def test_a_second_server_on_the_same_data_folder_exits_2_and_the_first_runs_on(
        tmp_path, servers):
    first = await Server(tmp_path).start()
    servers.append(first)
    api = first.api
    store_pid = first.store_pid
    quick = await job_type(api, "quick", "exit 0")
    before = [await submit(api, quick) for _ in range(3)]

    # The second half: exit 2 with one line naming the running server, and nothing else.
    second_port = free_port()
    second = await asyncio.to_thread(
        subprocess.run, [sys.executable, "server.py", "--port", str(second_port), "--data-dir",
                         str(first.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=STARTUP_LIMIT, check=False,
        env={**os.environ, "JOBDECK_TOKENS": f"operator:{OPERATOR_TOKEN}"})
    assert second.returncode == 2, second.stderr
    [line] = second.stderr.splitlines()
    assert line.endswith(
        f" ERROR another Jobdeck server (pid {first.proc.pid}, port {first.port}) is using the "
        f"data folder {first.data_dir.resolve()}; stop it first, or give this one another "
        "--data-dir (several servers can share one store with --mongo-url)"), line
    assert not listening(second_port)
    assert (first.data_dir / LOCK_FILE).read_text() == f"pid {first.proc.pid}\nport {first.port}\n"

    # The first half: the same store process, healthy, never restarted, still running jobs.
    await asyncio.sleep(1)  # five supervisor checks
    assert first.store_pid == store_pid and psutil.pid_exists(store_pid)
    health = await first.until_health(200)
    assert health["status"] == "ok"
    after = [await submit(api, quick) for _ in range(3)]
    await until_jobs(api, before + after, "COMPLETED")
    log = first.log()
    assert "exited with code" not in log and "already running" not in log
    assert (first.data_dir / LOCK_FILE).read_text() == f"pid {first.proc.pid}\nport {first.port}\n"
    first.stop()
    assert first.proc.returncode == 0, first.log()

    # Stopped, it leaves the folder free for the next server.
    third = await Server(tmp_path).start()
    servers.append(third)
    assert (third.data_dir / LOCK_FILE).read_text() == f"pid {third.proc.pid}\nport {third.port}\n"
    await until_jobs(third.api, before + after, "COMPLETED")


def test_servers_sharing_one_store_through_mongo_url_take_no_lock(tmp_path, store, mongo_url):
    data_dir = tmp_path / "data"
    ports = [free_port(), free_port()]
    procs = [start_server("--mongo-url", mongo_url, "--db-name", store.db.db.name, "--port",
                          str(port), "--data-dir", str(data_dir), "--no-auth")
             for port in ports]
    try:
        for proc, port in zip(procs, ports, strict=True):
            line, lines = wait_for_line(proc, "Jobdeck ready at http://")
            assert line is not None, "".join(lines)
            # Once it answers, its signal handlers are in place (set just after the ready line).
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200
        assert all(proc.poll() is None for proc in procs)
        assert not (data_dir / LOCK_FILE).exists()
        for proc in procs:
            proc.terminate()
            assert proc.wait(STARTUP_LIMIT) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
