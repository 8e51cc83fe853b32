"""Restart recovery: a server killed with SIGKILL mid-job leaves nothing RUNNING for good."""

import asyncio
import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo.errors import AutoReconnect

from engine.sandbox import probe
from tests.api.test_records_security import Failing
from tests.engine.processes import all_gone, running_exe
from tests.waiting import wait_for, wait_job

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(mongo_url: str, db_name: str, tmp_path: Path,
                 sandbox: str = "bwrap") -> subprocess.Popen:
    """A real Jobdeck server (with its engine) on the test's database; output in server.log."""
    with open(tmp_path / "server.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "server.py", "--mongo-url", mongo_url, "--db-name", db_name,
             "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
             "--engine-poll-interval", "0.05", "--sandbox", sandbox],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def killed_server(*server_args):
    """A real server (start_server's arguments), killed with SIGKILL when the block ends."""
    server = start_server(*server_args)
    try:
        yield server
    finally:
        server.kill()  # SIGKILL; nothing if it has already exited
        server.wait()


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
@pytest.mark.parametrize("max_tries, final", [(2, "COMPLETED"), (1, "FAILED")])
@pytest.mark.gen_test(timeout=180)
async def test_server_killed_mid_job(api, make, store, mongo_url, start_engine, tmp_path, gate,
                                     max_tries, final, sandbox):
    """The first try waits on a gate that stays closed for it; a retry passes. A sandboxed job
    dies with its server (bwrap --die-with-parent); without a sandbox it outlives it until the
    restarted engine kills it."""
    if sandbox == "bwrap" and probe():
        pytest.skip(f"bubblewrap cannot sandbox jobs here ({probe()})")
    job_type = await make.command_type("long", "sh", f"-c 'while [ ! -e {gate} ]; do sleep 0.05; "
                                                     "done'", max_tries=max_tries)
    job = await make.submit(job_type)
    with killed_server(mongo_url, store.db.db.name, tmp_path, sandbox):
        running = await wait_job(store, job["id"], "RUNNING")
        _, orphans = await running_exe(store, job["id"], "sh")
    if sandbox == "bwrap":
        async def died():
            return all_gone(orphans)
        await wait_for(died, "the sandboxed job to die with its server")
    else:
        assert not all_gone(orphans)  # the job outlived its server
    first_exe = running["latest_exe_id"]
    assert (await store.jobs.get_exe(first_exe))["status"] == "RUNNING"

    gate.touch(but=[first_exe])
    engine = await start_engine(sandbox=sandbox)
    done = await wait_job(store, job["id"], final)
    lost = await store.jobs.get_exe(first_exe)
    node_lost = await store.errors.by_name("node-lost")
    assert (lost["status"], lost["error_id"], lost["node_id"]) == \
        ("FAILED", node_lost["id"], engine.node["id"])
    assert all_gone(orphans)
    assert done["num_exes"] == max_tries
    if final == "FAILED":
        assert done["error_id"] == node_lost["id"]
    else:
        assert (await store.jobs.get_exe(done["latest_exe_id"]))["status"] == "COMPLETED"
    assert await store.db.count("job_exes", {"status": "RUNNING"}) == 0


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("end", ["completed", "failed"])
async def test_a_job_whose_end_was_half_written_is_finished_at_recovery(api, make, store,
                                                                        monkeypatch, start_engine,
                                                                        end):
    """The store died between an ending's two writes (the execution's, then the job's): the
    job was left RUNNING forever. Recovery (at start, and when the store is back) finishes it
    from its execution."""
    job_type = await make.job_type()
    job = await make.start(await make.submit(job_type))
    exe_id = job["latest_exe_id"]
    Failing(monkeypatch, "find_one_and_update", "jobs", AutoReconnect("connection reset"))
    with pytest.raises(AutoReconnect):
        if end == "completed":
            await store.jobs.complete_execution(exe_id, {"output_data": []})
        else:
            await store.jobs.fail_execution(exe_id, await store.errors.by_name("unknown"))
    monkeypatch.undo()
    exe = await store.jobs.get_exe(exe_id)
    assert ((await store.jobs.get_job(job["id"]))["status"], exe["status"]) == \
        ("RUNNING", end.upper())

    await start_engine()
    finished = await wait_job(store, job["id"], end.upper())
    expected = ({"status": "COMPLETED", "results": {"output_data": []}} if end == "completed"
                else {"status": "FAILED", "error_id": exe["error_id"]})
    assert {key: finished.get(key) for key in expected} == expected
    assert finished["ended"] == exe["ended"]
    assert await store.jobs.finish_half_ended_jobs() == 0  # nothing left to finish


@pytest.mark.gen_test(timeout=240)
async def test_server_killed_while_writing_groups_of_transitions(api, make, store, mongo_url,
                                                                 start_engine, tmp_path):
    """The engine writes its claims and completions in groups (store.jobs.apply_transitions). A
    server killed with SIGKILL while jobs start and end leaves what it had not written: the
    restarted engine fails its RUNNING executions with node-lost and retries them, finishes a
    job whose execution's end was written without the job's, and every job ends COMPLETED with
    exactly one COMPLETED execution, its latest."""
    job_type = await make.command_type("short", "sh", "-c 'sleep 0.1'", max_tries=3,
                                       cpus_required=0.25)
    jobs = [await make.submit(job_type) for _ in range(40)]
    async def busy():
        return (await store.db.count("jobs", {"status": "COMPLETED"}) >= 5
                and await store.db.count("job_exes", {"status": "RUNNING"}) >= 1)
    with killed_server(mongo_url, store.db.db.name, tmp_path, "none"):
        await wait_for(busy, "jobs to be starting and ending")
    _, running = await store.jobs.list_exes(["RUNNING"], page_size=100)
    left_running = {exe["id"] for exe in running}
    assert left_running, "the server was killed with no execution under way"

    await start_engine(sandbox="none")
    node_lost = await store.errors.by_name("node-lost")
    for job in jobs:
        done = await wait_job(store, job["id"], "COMPLETED")
        exes = await store.jobs.exes_for_job(job["id"])
        completed = [exe for exe in exes if exe["status"] == "COMPLETED"]
        assert [exe["id"] for exe in completed] == [done["latest_exe_id"]]
        assert all((exe["status"], exe["error_id"]) == ("FAILED", node_lost["id"])
                   for exe in exes if exe["id"] != done["latest_exe_id"])
        assert done["num_exes"] == len(exes)
    for exe_id in left_running:
        exe = await store.jobs.get_exe(exe_id)
        assert (exe["status"], exe["error_id"]) == ("FAILED", node_lost["id"])
    assert await store.db.count("job_exes", {"status": {"$in": ["RUNNING", "QUEUED"]}}) == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_recovery_while_a_claim_is_being_written_leaves_that_execution_running(
        api, make, store, start_engine):
    """Recovery runs when the store is back after an outage, whatever the scheduler is doing.
    A claim is written (the execution RUNNING, this engine's) a moment before its runner
    exists; a recovery in that moment must not take it for one whose runner is gone and fail a
    healthy execution as node-lost."""
    job_type = await make.command_type("quick", "true", cpus_required=0.25)
    claimed, release = asyncio.Event(), asyncio.Event()
    start_executions = store.jobs.start_executions

    async def held(*args, **kwargs):
        written = await start_executions(*args, **kwargs)
        claimed.set()
        await release.wait()
        return written

    store.jobs.start_executions = held
    engine = await start_engine()
    job = await make.submit(job_type)
    await claimed.wait()
    assert (await store.jobs.get_job(job["id"]))["status"] == "RUNNING"
    assert await engine.recover() == 0
    release.set()
    done = await wait_job(store, job["id"], "COMPLETED", "FAILED")
    exes = await store.jobs.exes_for_job(job["id"])
    assert (done["status"], done["num_exes"], [e["status"] for e in exes]) == \
        ("COMPLETED", 1, ["COMPLETED"])


@pytest.mark.gen_test(timeout=60)
async def test_an_execution_whose_claim_fails_after_a_recovery_skipped_it_is_recovered(
        api, make, store, start_engine):
    """The other side of the test above: a recovery left an execution alone because its claim
    was being written, and then the claim failed (its execution RUNNING in the store, no
    runner). Nothing else would recover it (the store already writes again), so the engine
    recovers once the claims end: node-lost, and the job runs again."""
    job_type = await make.command_type("quick", "true", cpus_required=0.25)
    claimed, release = asyncio.Event(), asyncio.Event()
    start_executions = store.jobs.start_executions
    failed_once = False

    async def fails_after_writing(*args, **kwargs):
        nonlocal failed_once
        written = await start_executions(*args, **kwargs)
        if failed_once:
            return written
        failed_once = True
        claimed.set()
        await release.wait()
        return [AutoReconnect("the answer was lost") for _ in written]

    store.jobs.start_executions = fails_after_writing
    engine = await start_engine()
    job = await make.submit(job_type)
    await claimed.wait()
    assert await engine.recover() == 0  # held: its claim is in flight
    release.set()
    done = await wait_job(store, job["id"], "COMPLETED")
    exes = await store.jobs.exes_for_job(job["id"])
    node_lost = await store.errors.by_name("node-lost")
    assert (done["num_exes"], [(e["status"], e["error_id"]) for e in exes]) == \
        (2, [("COMPLETED", None), ("FAILED", node_lost["id"])])
