"""Recovery from an engine that is gone but looks alive (issue 15, item 1): a server killed with
SIGKILL and left unreaped (a zombie), a server that hangs (SIGSTOP) and an engine on another
machine that stops heartbeating. Their RUNNING executions are failed as `node-lost` and retried,
and the jobs queued behind them run. Healthy engines never recover each other's executions."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.engine.processes import all_gone, running_exe
from tests.test_server import free_port
from tests.waiting import wait_for, wait_job

ROOT = Path(__file__).resolve().parents[2]
# A parent that starts the server and never wait()s for it: once killed, the server stays a
# zombie (as under an init or supervisor that reaps late) until this parent is gone.
NO_REAP = ("import os, sys, time\n"
           "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
           "open(sys.argv[1], 'w').write(str(pid))\n"
           "time.sleep(3600)\n")
LONG_JOBS, QUICK_JOBS = 2, 3


class OldServer:
    """A real server with its engine (2 CPUs) on the test's database, started directly or under
    a parent that never reaps it; `dead_after` is its engine_dead_after."""

    def __init__(self, store, mongo_url: str, tmp_path: Path, reaped: bool = True,
                 dead_after: float = 30.0):
        argv = [sys.executable, "server.py", "--mongo-url", mongo_url,
                "--db-name", store.db.db.name, "--port", str(free_port()),
                "--data-dir", str(tmp_path / "data"), "--engine-poll-interval", "0.05",
                "--engine-cpus", "2"]
        self.pid_file = tmp_path / "server.pid"
        env = {**os.environ, "JOBDECK_ENGINE_DEAD_AFTER": str(dead_after)}
        with open(tmp_path / "server.log", "wb") as log:
            if reaped:
                self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                             stderr=subprocess.STDOUT)
            else:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", NO_REAP, str(self.pid_file), *argv], cwd=ROOT,
                    env=env, stdout=log, stderr=subprocess.STDOUT)
        self.reaped = reaped

    async def pid(self) -> int:
        if self.reaped:
            return self.proc.pid

        async def written():
            return self.pid_file.exists() and self.pid_file.read_text().strip()
        return int(await wait_for(written, "the server to be started"))

    def close(self) -> None:
        """Stop the server (and its parent, which lets the zombie go to init)."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text()) if not self.reaped else None
            if pid:
                psutil.Process(pid).kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def fill_the_old_server(make, store, gate):
    """Two jobs that wait on `gate` (holding both CPUs), then three quick jobs queued behind
    them; (long jobs, their processes, quick jobs). The gate opens for their retries only."""
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    long_type = await make.command_type("long", "sh", f"-c '{script}'", max_tries=2)
    quick_type = await make.command_type("quick", "true")
    long_jobs = [await make.submit(long_type) for _ in range(LONG_JOBS)]
    pids, first_tries = [], []
    for job in long_jobs:
        exe, procs = await running_exe(store, job["id"], "sh")
        pids.extend(procs)
        first_tries.append(exe["id"])
    gate.touch(but=first_tries)
    quick_jobs = [await make.submit(quick_type) for _ in range(QUICK_JOBS)]
    await asyncio.sleep(0.5)  # the old server has no free CPU: they stay queued
    for job in quick_jobs:
        assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"
    return long_jobs, pids, quick_jobs


async def assert_recovered(store, long_jobs, pids, quick_jobs, deadline: float) -> float:
    """Every job completes within `deadline` seconds; the old executions end as node-lost with
    their processes killed. Returns when a queued job first started (time.monotonic())."""
    begun = time.monotonic()
    await wait_job(store, quick_jobs[0]["id"], "RUNNING", "COMPLETED")
    moving = time.monotonic()
    node_lost = await store.errors.by_name("node-lost")
    for job in long_jobs + quick_jobs:
        done = await wait_job(store, job["id"], "COMPLETED")
        assert done["num_exes"] == (2 if job in long_jobs else 1)
    for job in long_jobs:
        lost = min(await store.jobs.exes_for_job(job["id"]), key=lambda exe: exe["id"])
        assert (lost["status"], lost["error_id"]) == ("FAILED", node_lost["id"])
    assert all_gone(pids)
    assert await store.db.count("job_exes", {"status": "RUNNING"}) == 0
    assert time.monotonic() - begun < deadline
    return moving


@pytest.mark.gen_test(timeout=120)
async def test_server_killed_and_left_unreaped(api, make, store, mongo_url, start_engine,
                                               tmp_path, gate):
    """kill -9 with the corpse left unreaped: the restarted engine counts the zombie as dead,
    recovers its executions at once, and the queue drains."""
    server = OldServer(store, mongo_url, tmp_path, reaped=False)
    try:
        pid = await server.pid()
        long_jobs, pids, quick_jobs = await fill_the_old_server(make, store, gate)
        killed = time.monotonic()
        psutil.Process(pid).send_signal(signal.SIGKILL)

        async def zombie():
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        await wait_for(zombie, "the killed server to be a zombie")
        await start_engine(cpus=2)
        # Well within engine_dead_after (30 s by default): the zombie itself says it is dead.
        moving = await assert_recovered(store, long_jobs, pids, quick_jobs, deadline=20)
        print(f"zombie: the queue moved {moving - killed:.2f} s after kill -9")
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # never reaped meanwhile
    finally:
        server.close()


@pytest.mark.gen_test(timeout=120)
async def test_hung_server_is_recovered_after_engine_dead_after(api, make, store, mongo_url,
                                                                 start_engine, tmp_path, gate):
    """A server that hangs (SIGSTOP) keeps a live pid but stops heartbeating: after
    engine_dead_after its executions are recovered (its processes killed) and the queue drains;
    not before."""
    server = OldServer(store, mongo_url, tmp_path, dead_after=2.0)
    try:
        long_jobs, pids, quick_jobs = await fill_the_old_server(make, store, gate)
        server.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        await start_engine(cpus=2, dead_after=2.0)
        await asyncio.sleep(1.0)
        for job in long_jobs:  # its pid is alive: not recovered at start
            assert (await store.jobs.get_job(job["id"]))["num_exes"] == 1
        moving = await assert_recovered(store, long_jobs, pids, quick_jobs, deadline=30)
        print(f"hung: the queue moved {moving - stopped:.2f} s after SIGSTOP")
        assert moving - stopped >= 2.0
    finally:
        server.proc.send_signal(signal.SIGCONT)
        server.close()


def freeze(engine) -> None:
    """The engine hangs: it neither schedules nor heartbeats; its job processes go on."""
    for task in (engine._loop_task, engine._beat_task):
        task.cancel()


@pytest.mark.gen_test(timeout=120)
async def test_engine_on_another_machine_stops_heartbeating(api, make, store, start_engine,
                                                            gate):
    """An engine on another node that stops heartbeating: its executions are failed as node-lost
    within engine_dead_after plus a beat or two, retried here, and its processes (on another
    machine, as far as this engine knows) are left alone."""
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done"  # opened for the retry only
    job_type = await make.command_type("long", "sh", f"-c '{script}'", max_tries=2)
    there = await start_engine(cpus=1, dead_after=1.0, hostname="elsewhere")
    job = await make.submit(job_type)
    running = await wait_job(store, job["id"], "RUNNING")

    async def started():  # the claim is in the store a moment before its runner is registered
        runner = there.runners.get(running["latest_exe_id"])
        return runner is not None and runner.running
    process = (await wait_for(started, "the job process to start")).proc
    freeze(there)
    gate.touch(but=[running["latest_exe_id"]])
    frozen = time.monotonic()
    here = await start_engine(cpus=1, dead_after=1.0, hostname="here")
    done = await wait_job(store, job["id"], "COMPLETED")
    recovered_after = time.monotonic() - frozen
    lost = await store.jobs.get_exe(running["latest_exe_id"])
    node_lost = await store.errors.by_name("node-lost")
    assert (lost["status"], lost["error_id"], lost["node_id"]) == \
        ("FAILED", node_lost["id"], there.node["id"])
    retry = await store.jobs.get_exe(done["latest_exe_id"])
    assert (retry["status"], retry["node_id"]) == ("COMPLETED", here.node["id"])
    assert 1.0 <= recovered_after < 10.0
    # Another machine's process, as far as this engine knows: not killed from here.
    assert psutil.Process(process.pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


@pytest.mark.gen_test(timeout=120)
async def test_healthy_engines_never_recover_each_other(api, make, store, start_engine):
    """Two healthy engines on one node and one on another, with a short engine_dead_after: jobs
    running for several times that period all complete on their first try."""
    job_type = await make.command_type("steady", "sleep", "3")
    engines = [await start_engine(cpus=2, dead_after=0.5),
               await start_engine(cpus=2, dead_after=0.5),
               await start_engine(cpus=2, dead_after=0.5, hostname="other")]
    jobs = [await make.submit(job_type) for _ in range(6)]
    exes = []
    for job in jobs:
        done = await wait_job(store, job["id"], "COMPLETED", "FAILED")
        assert (done["status"], done["num_exes"]) == ("COMPLETED", 1)
        exes.append(await store.jobs.get_exe(done["latest_exe_id"]))
    assert {exe["node_id"] for exe in exes} == {engines[0].node["id"], engines[2].node["id"]}
    assert len({exe["engine"]["id"] for exe in exes}) >= 2
    assert await store.db.count("job_exes", {"status": "FAILED"}) == 0
