"""Faults with real processes: the embedded store killed under a running server, the store
unreachable at start-up, and the server itself killed while jobs run and subscribers listen."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from pymongo.uri_parser import parse_uri
from tornado.httpclient import AsyncHTTPClient

from tests.engine.processes import Gate
from tests.fixtures import API
from tests.live_client import Subscriber
from tests.test_server import free_port
from tests.tokens import OPERATOR_TOKEN

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone

ROOT = Path(__file__).resolve().parent.parent
STORE_TIMEOUT_MS = 1000
STORE_DOWN = ("The job store is unavailable: it did not answer in time (it may be restarting); "
              "try again in a few seconds.\n")
READY_LINE = re.compile(r"embedded store \(nx-27017\) ready at (mongodb://\S+), data in ")


class Server:
    """server.py as a child process with its embedded store and engine; log in server.log."""

    def __init__(self, tmp_path: Path, port: int | None = None):
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / "server.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = API(AsyncHTTPClient(), self.url)
        self.proc: subprocess.Popen | None = None

    async def start(self) -> "Server":
        self.spawn()
        await self.until_health(200)
        return self

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "server.py", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), "--store-timeout-ms", str(STORE_TIMEOUT_MS),
                 "--engine-poll-interval", "0.05"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "JOBDECK_TOKENS": f"operator:{OPERATOR_TOKEN}"})

    async def until_health(self, code: int) -> dict:
        """Poll /health until it answers `code` (the test's timeout bounds the wait)."""
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                status, body, _ = await self.api.get("/health")
            except OSError:  # not listening yet
                status = None
            if status == code:
                return body
            await asyncio.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def until_logged(self, text: str) -> str:
        """Poll server.log until it holds `text` (the test's timeout bounds the wait); the log."""
        while text not in (log := self.log()):
            assert self.proc.poll() is None, log
            await asyncio.sleep(0.05)
        return log

    @property
    def store_pid(self) -> int:
        return int((self.data_dir / "embedded-store.pid").read_text())

    @property
    def store_url(self) -> str:
        """The URL of the embedded store this server started (from its log)."""
        return READY_LINE.findall(self.log())[-1]

    @property
    def store_socket(self) -> str:
        """The Unix socket its embedded store serves."""
        return parse_uri(self.store_url)["nodelist"][0][0]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # if a failed test left it paused
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def servers():
    """Start `Server`s through this list; each is stopped (or killed) after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def gone(pid: int) -> bool:
    """Ended (a zombie too: an orphan's reaper in a container may never come)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def kill_store_and_hold_its_socket(server: "Server") -> tuple[int, socket.socket]:
    """SIGKILL the server's embedded store and serve its Unix socket's path (listening, never
    answering), so the store stays down while the test looks: the supervisor's restarts refuse
    a socket another process serves, until the returned socket is closed. The server is paused
    (SIGSTOP) from before the kill until the socket is held, so its supervisor cannot restart the
    store first, however slowly this process runs (the test's timeout bounds the waits). Returns
    the killed store's pid and the socket."""
    old_pid, path = server.store_pid, server.store_socket
    server.proc.send_signal(signal.SIGSTOP)
    try:
        os.kill(old_pid, signal.SIGKILL)
        while not gone(old_pid):  # a zombie (its paused parent reaps it later): sockets closed
            await asyncio.sleep(0.01)
        os.unlink(path)  # the killed store's socket file
        blocker = socket.socket(socket.AF_UNIX)
        blocker.bind(path)
        blocker.listen()
        return old_pid, blocker
    finally:
        server.proc.send_signal(signal.SIGCONT)


async def job_type(api: API, name: str, script: str, max_tries: int = 3) -> dict:
    status, body, _ = await api.post("/job-types/", {
        "name": name, "version": "1.0", "max_tries": max_tries, "cpus_required": 0.1,
        "mem_required": 16, "interface": {"version": "1.0", "command": "sh",
                                          "command_arguments": f"-c '{script}'"}})
    assert status == 201, body
    return body


async def submit(api: API, job_type: dict) -> int:
    status, body, _ = await api.post("/queue/new-job/", {"job_type_id": job_type["id"]})
    assert status == 201, body
    return body["id"]


async def until_jobs(api: API, job_ids, *statuses: str) -> list[dict]:
    """Poll GET /jobs/ until every job in `job_ids` has one of `statuses`."""
    query = "&".join(f"job_id={job_id}" for job_id in job_ids)
    while True:
        status, body, _ = await api.get(f"/jobs/?{query}&page_size=1000")
        if status == 200 and body["count"] == len(job_ids) and all(
                row["status"] in statuses for row in body["results"]):
            return body["results"]
        await asyncio.sleep(0.05)


async def job_details(api: API, job_id: int) -> dict:
    status, body, _ = await api.get(f"/jobs/{job_id}/")
    assert status == 200, body
    return body


# A guard against a hang, not a time limit on recovery: it covers starting the server and its
# store, an outage of a few seconds and a dozen jobs, which took over 60 s on a loaded 2-CPU
# machine (every step there runs several times slower than on an idle one).
@pytest.mark.gen_test(timeout=180)
async def test_store_killed_answers_503_then_recovers_without_a_server_restart(
        tmp_path, servers):
    server = await Server(tmp_path).start()
    servers.append(server)
    api = server.api
    quick = await job_type(api, "quick", "exit 0")
    # Runs until the test releases it, so it is still running when the store is killed and ends
    # while the store is down: its outcome cannot be written. Its retry ends at once. The gate is
    # a file in each execution's own folder, which the job's sandbox lets it see.
    release = Gate(server.data_dir)
    held = await job_type(api, "held", f"while [ ! -e {release} ]; do sleep 0.05; done",
                          max_tries=2)
    try:
        await store_killed_while_a_job_runs(server, api, quick, held, release)
    finally:
        await release.close()


async def store_killed_while_a_job_runs(server, api, quick, held, release) -> None:
    subscriber = await Subscriber.connect(server.url)
    cut_off = await submit(api, held)
    await subscriber.until_row(cut_off, "RUNNING")
    cut_off_exe = (await job_details(api, cut_off))["job_exes"][0]["id"]
    acknowledged = [await submit(api, quick) for _ in range(5)]

    old_pid, blocker = await kill_store_and_hold_its_socket(server)
    try:
        health = await server.until_health(503)
        assert health["status"] == "unavailable" and health["store"]["reachable"] is False
        for method, path, body in (("GET", "/jobs/", None), ("GET", f"/jobs/{acknowledged[0]}/",
                                   None), ("POST", "/queue/new-job/",
                                           {"job_type_id": quick["id"]})):
            status, text, headers = await api.call(method, path, body)
            assert (status, text) == (503, STORE_DOWN)
            assert headers["Content-Type"].startswith("text/plain")
            assert headers["Retry-After"] == "2"
        # The held job ends now and its outcome cannot be written; the supervisor has tried to
        # restart the store on its socket and failed (the socket is held). Both before it frees.
        release.touch()
        await server.until_logged(f"execution {cut_off_exe}: the store is unreachable")
        await server.until_logged("could not restart the embedded store; retrying")
    finally:
        blocker.close()

    # The supervisor logs the restart once its own check of the new store succeeds, which may
    # come after /health (which pings through the server's client) answers 200 again.
    log = await server.until_logged("the embedded nx-27017 store is back")
    await server.until_health(200)
    assert server.proc.poll() is None  # recovered without a restart of its own
    assert server.store_pid != old_pid and gone(old_pid)
    assert "the embedded nx-27017 store" in log and "exited with code -9; restarting it" in log
    assert "could not restart the embedded store; retrying" in log

    # Every acknowledged job is there and runs to the end (executions whose outcome could not
    # be written are failed as node-lost and retried); new jobs run; the live feed follows.
    rows = await until_jobs(api, acknowledged, "COMPLETED")
    assert sorted(row["id"] for row in rows) == acknowledged
    await until_jobs(api, [cut_off], "COMPLETED")
    retried = await job_details(api, cut_off)
    assert retried["num_exes"] == 2
    node_lost = next(e for e in (await api.get("/errors/?page_size=1000"))[1]["results"]
                     if e["name"] == "node-lost")
    assert [(exe["status"], exe["error"] and exe["error"]["id"])
            for exe in retried["job_exes"]] == [("COMPLETED", None), ("FAILED", node_lost["id"])]
    after = [await submit(api, quick) for _ in range(3)]
    await until_jobs(api, after, "COMPLETED")
    for job_id in [cut_off, *acknowledged, *after]:
        await subscriber.until_row(job_id, "COMPLETED")
    subscriber.close()


def test_unreachable_store_at_startup_exits_2_with_the_reason(tmp_path):
    url = f"mongodb://127.0.0.1:{free_port()}"
    proc = subprocess.run([sys.executable, "server.py", "--mongo-url", url, "--store-timeout-ms",
                           "1500", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert (f"ERROR cannot reach the store at {url} within 1500 ms (store_timeout_ms); check "
            "that it runs, or leave out --mongo-url to use the embedded store") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unusable_store_url_exits_2_with_the_reason(tmp_path):
    proc = subprocess.run([sys.executable, "server.py", "--mongo-url", "mongodb://", "--port",
                           str(free_port()), "--data-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert ("ERROR mongo_url 'mongodb://' is not usable: Must provide at least one hostname or "
            "IP") in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.gen_test(timeout=90)
async def test_server_killed_while_jobs_run_loses_no_job_and_no_update(tmp_path, servers):
    first = await Server(tmp_path).start()
    servers.append(first)
    api = first.api
    # Waits on a gate (a file in each execution's own folder, which its sandbox lets it see)
    # that opens for its retry only.
    gate = Gate(first.data_dir)
    retried = await job_type(api, "retried", f"while [ ! -e {gate} ]; do sleep 0.05; done",
                             max_tries=2)
    single = await job_type(api, "single", "sleep 30", max_tries=1)
    quick = await job_type(api, "quick", "exit 0")
    subscriber = await Subscriber.connect(first.url)
    long_ids = [await submit(api, retried), await submit(api, single)]
    for job_id in long_ids:
        await subscriber.until_row(job_id, "RUNNING")
    acknowledged = long_ids + [await submit(api, quick) for _ in range(5)]
    first_tries = [(await job_details(api, job_id))["job_exes"][0]["id"] for job_id in long_ids]
    store_pid = first.store_pid
    first.kill()
    await asyncio.wait_for(subscriber.closed.wait(), 10)
    last_seen = max(row["last_status_change"] for row in subscriber.rows)

    gate.touch(but=first_tries)
    second = await Server(tmp_path, port=first.port).start()
    servers.append(second)
    assert gone(store_pid)  # the orphaned store stopped, the new one took over its data
    assert second.store_pid != store_pid
    resumed = await Subscriber.connect(second.url, f"started={last_seen}")

    await until_jobs(api, long_ids[:1], "COMPLETED")
    await until_jobs(api, long_ids[1:], "FAILED")
    await until_jobs(api, acknowledged, "COMPLETED", "FAILED")
    retried_details = await job_details(api, long_ids[0])
    single_details = await job_details(api, long_ids[1])
    assert retried_details["num_exes"] == 2 and single_details["num_exes"] == 1
    assert single_details["error"]["name"] == "node-lost"
    lost = [exe for exe in retried_details["job_exes"] + single_details["job_exes"]
            if exe["status"] == "FAILED"]
    node_lost = single_details["error"]["id"]
    assert [exe["error"]["id"] for exe in lost] == [node_lost, node_lost]

    status, updates, _ = await api.get(f"/jobs/updates/?started={last_seen}&page_size=1000")
    assert status == 200
    expected = {(row["id"], row["last_status_change"], row["status"])
                for row in updates["results"]}
    assert {job_id for job_id, _, _ in expected} >= set(long_ids)

    def has_all(sub):
        return expected <= {(r["id"], r["last_status_change"], r["status"]) for r in sub.rows}
    await resumed.until(has_all)
    resumed.close()
    await gate.close()
