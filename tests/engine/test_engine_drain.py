"""Draining on shutdown (drain_timeout) with a real server and real jobs: SIGTERM starts no more
jobs but keeps serving while the running ones finish; past drain_timeout, or at a second
SIGTERM, what still runs fails as `scheduler-lost` (retried), as it does at once without it."""

import asyncio
import signal
import subprocess
import time

import psutil
import pytest

from tests.live_client import Subscriber
from tests.test_faults import Server, job_details, job_type, submit, until_jobs

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone


@pytest.fixture
def servers(monkeypatch):
    """`Server`s to stop after the test; they stop jobs within a second."""
    monkeypatch.setenv("JOBDECK_CANCEL_GRACE", "1")
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


async def until_status(server: Server, status: str) -> dict:
    """Poll /health until its `status` is `status` (the server must keep running)."""
    while True:
        try:
            body = await server.until_health(200)
        except AttributeError:  # no answer at all: the server is gone
            body = {}
        assert server.proc.poll() is None, f"the server ended:\n{server.log()}"
        if body.get("status") == status:
            return body
        await asyncio.sleep(0.02)


async def exit_code(server: Server, timeout: float = 60) -> int:
    try:
        return await asyncio.to_thread(server.proc.wait, timeout)
    except subprocess.TimeoutExpired:
        process = psutil.Process(server.proc.pid)
        raise AssertionError(
            f"the server did not stop within {timeout} s: {process.status()}, "
            f"{process.num_threads()} threads, children "
            f"{[(c.pid, c.name(), c.status()) for c in process.children(recursive=True)]}\n"
            f"{server.log()}") from None


async def error_names(server: Server, job_id: int) -> list[tuple[str, str | None]]:
    """The job's executions, newest first: (status, error name)."""
    _, errors, _ = await server.api.get("/errors/?page_size=1000")
    names = {error["id"]: error["name"] for error in errors["results"]}
    return [(exe["status"], exe["error"] and names[exe["error"]["id"]])
            for exe in (await job_details(server.api, job_id))["job_exes"]]


@pytest.mark.gen_test(timeout=120)
async def test_sigterm_drains_running_jobs_while_it_keeps_serving(tmp_path, servers,
                                                                  monkeypatch):
    monkeypatch.setenv("JOBDECK_DRAIN_TIMEOUT", "60")
    server = await Server(tmp_path).start()
    servers.append(server)
    api = server.api
    gated = await job_type(api, "gated", "while [ ! -e release ]; do sleep 0.05; done",
                           max_tries=1)

    async def release(job_id: int) -> None:
        """Touch `release` in the job's own folder, where its sandbox lets it look."""
        [exe] = (await job_details(api, job_id))["job_exes"]
        (server.data_dir / "executions" / str(exe["id"]) / "release").touch()
    quick = await job_type(api, "quick", "exit 0")
    subscriber = await Subscriber.connect(server.url)
    running = [await submit(api, gated) for _ in range(2)]
    for job_id in running:
        await subscriber.until_row(job_id, "RUNNING")

    server.proc.send_signal(signal.SIGTERM)
    health = await until_status(server, "draining")
    assert health["store"]["reachable"] is True
    # Still serving: the API takes a job and the live feed reports it, but it does not start,
    # not even once a running job has ended and freed its room.
    waiting = await submit(api, quick)
    await subscriber.until_row(waiting, "QUEUED")
    status, page, headers = await api.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html"), page
    await release(running[0])
    await subscriber.until_row(running[0], "COMPLETED")
    await asyncio.sleep(1)  # some 20 scheduling passes
    assert (await job_details(api, waiting))["status"] == "QUEUED"
    assert (await until_status(server, "draining"))["status"] == "draining"
    assert not subscriber.closed.is_set()

    await release(running[1])  # the last one ends: the server stops
    assert await exit_code(server) == 0, server.log()
    log = server.log()
    assert "draining: no new jobs start; waiting up to 60 s (drain_timeout) for 2 running" in log
    assert "drained: every running execution has ended" in log
    assert "scheduler-lost" not in log
    subscriber.close()

    # Each drained job ran once, to the end; the next server runs the one that waited.
    after = await Server(tmp_path, port=server.port).start()
    servers.append(after)
    for job_id in running:
        assert await error_names(after, job_id) == [("COMPLETED", None)]
    await until_jobs(api, [waiting], "COMPLETED")


@pytest.mark.gen_test(timeout=120)
async def test_past_drain_timeout_what_still_runs_fails_as_scheduler_lost(tmp_path, servers,
                                                                         monkeypatch, gate):
    monkeypatch.setenv("JOBDECK_DRAIN_TIMEOUT", "2")
    server = await Server(tmp_path).start()
    servers.append(server)
    api = server.api
    # The gate stays closed for the first try and opens for the retry.
    endless = await job_type(api, "endless", f"while [ ! -e {gate} ]; do sleep 0.05; done",
                             max_tries=2)
    job_id = await submit(api, endless)
    await until_jobs(api, [job_id], "RUNNING")
    first_try = [exe["id"] for exe in (await job_details(api, job_id))["job_exes"]]

    server.proc.send_signal(signal.SIGTERM)
    signaled = time.monotonic()
    await until_status(server, "draining")
    assert await exit_code(server) == 0, server.log()
    assert 2 <= time.monotonic() - signaled < 20
    log = server.log()
    assert "drain_timeout (2 s) is over with 1 executions still running" in log
    assert "engine stopped 1 running executions (scheduler-lost" in log

    gate.touch(but=first_try)
    after = await Server(tmp_path, port=server.port).start()
    servers.append(after)
    await until_jobs(api, [job_id], "COMPLETED")
    assert await error_names(after, job_id) == [("COMPLETED", None),
                                                ("FAILED", "scheduler-lost")]


@pytest.mark.parametrize("drain_timeout, signals", [("0", 1), ("120", 2)])
@pytest.mark.gen_test(timeout=120)
async def test_without_draining_or_at_a_second_sigterm_it_stops_at_once(
        tmp_path, servers, monkeypatch, drain_timeout, signals):
    monkeypatch.setenv("JOBDECK_DRAIN_TIMEOUT", drain_timeout)
    server = await Server(tmp_path).start()
    servers.append(server)
    api = server.api
    endless = await job_type(api, "endless", "sleep 300", max_tries=1)
    job_id = await submit(api, endless)
    await until_jobs(api, [job_id], "RUNNING")

    server.proc.send_signal(signal.SIGTERM)
    if signals == 2:
        await until_status(server, "draining")
        server.proc.send_signal(signal.SIGTERM)
    signaled = time.monotonic()
    assert await exit_code(server) == 0, server.log()
    assert time.monotonic() - signaled < 15  # the job's SIGTERM, cancel_grace 1 s, the store
    log = server.log()
    assert ("second signal: stopping now, without waiting for 1 running executions" in log) \
        == (signals == 2)
    assert ("draining: no new jobs start" in log) == (signals == 2)
    assert "engine stopped 1 running executions (scheduler-lost" in log

    after = await Server(tmp_path, port=server.port).start()
    servers.append(after)
    assert await error_names(after, job_id) == [("FAILED", "scheduler-lost")]

