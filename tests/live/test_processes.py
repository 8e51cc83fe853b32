"""Two server processes on one embedded store: a change made through one reaches a subscriber of
the other."""

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from core.interface import validate_interface
from core.times import format_ms, now_ms
from store import Store
from tests.live_client import Subscriber
from tests.tokens import OPERATOR_HEADERS, TOKENS

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_server(mongo_url: str, db_name: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "server.py", "--mongo-url", mongo_url, "--db-name", db_name,
             "--port", str(port), "--engine", "false", "--data-dir", str(log_path.parent / "data"),
             "--tokens", ",".join(TOKENS)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


async def until_ready(process: subprocess.Popen, url: str, log_path: Path) -> None:
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log_path.read_text()}")
        try:
            await AsyncHTTPClient().fetch(url + "/jobs/", headers=OPERATOR_HEADERS)
            return
        except (ConnectionError, HTTPClientError, OSError):
            await asyncio.sleep(0.1)


def stop_server(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout=20)


async def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    response = await AsyncHTTPClient().fetch(
        url, method=method, body=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json", **OPERATOR_HEADERS})
    return json.loads(response.body)


@pytest.mark.gen_test(timeout=90)
async def test_change_through_one_process_reaches_a_subscriber_of_the_other(mongo_url,
                                                                           tmp_path):
    db_name = f"test_live_{uuid.uuid4().hex[:12]}"
    store = await Store(mongo_url, db_name).open()
    processes = []
    try:
        for name in ("a", "b"):
            processes.append(spawn_server(mongo_url, db_name, tmp_path / f"{name}.log"))
        (a, a_url), (b, b_url) = processes
        await until_ready(a, a_url, tmp_path / "a.log")
        await until_ready(b, b_url, tmp_path / "b.log")
        job_type = await store.job_types.create(
            "remote", "1.0", validate_interface({"command": "run", "command_arguments": ""}),
            {"category": "remote"})
        since = format_ms(now_ms())
        on_a = await Subscriber.connect(a_url, f"started={since}")
        on_b = await Subscriber.connect(b_url, f"started={since}")

        job = await call(b_url + "/queue/new-job/", "POST", {"job_type_id": job_type["id"]})
        await on_a.until_row(job["id"], "QUEUED")
        await store.jobs.start_execution((await store.jobs.get_job(job["id"]))["latest_exe_id"],
                                         None)
        await on_a.until_row(job["id"], "RUNNING")
        await call(b_url + f"/jobs/{job['id']}/", "PATCH", {"status": "CANCELED"})
        canceled = await on_a.until_row(job["id"], "CANCELED")
        other = await call(a_url + "/queue/new-job/", "POST", {"job_type_id": job_type["id"]})
        await on_b.until_row(other["id"], "QUEUED")
        await on_b.until_row(job["id"], "CANCELED")

        rest = await call(a_url + f"/jobs/updates/?job_id={job['id']}")
        assert canceled == rest["results"][0]
        assert [(r["id"], r["status"]) for r in on_a.rows if r["id"] == job["id"]] == [
            (job["id"], "QUEUED"), (job["id"], "RUNNING"), (job["id"], "CANCELED")]
        assert canceled["last_status_change"] > since
        on_b.close()
        # A stopping server tells its subscribers where to resume.
        assert stop_server(a) == 0
        await on_a.closed.wait()
        assert on_a.connection.close_code == 1001
        assert on_a.connection.close_reason.startswith(
            "The server is stopping; reconnect with started=")
    finally:
        codes = [stop_server(process) for process, _ in processes]
        await store.db.client.drop_database(db_name)
        await store.close()
    assert codes == [0, 0]
