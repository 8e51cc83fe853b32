"""The Slurm backend (engine/slurm.py, issue 12) on the real two-node cluster of the
`slurm_cluster` fixture (nodes n1 and n2, 2 CPUs and 1024 MiB each, KillWait 2 s): jobs submitted
through the API run as Slurm batch jobs of an engine with `executor="slurm"`, and every outcome is
checked both in Jobdeck's store and in Slurm (`scontrol show job`)."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.model import BUILTIN_ERRORS
from engine.executor import EXITED, LOST, ExitReport
from engine.slurm import SlurmBackend, SlurmJob
from tests.engine.test_engine_failures import error_name, exes_of
from tests.waiting import PY, wait_for, wait_job

pytestmark = pytest.mark.alone

ROOT = Path(__file__).resolve().parents[2]
from tests.fixtures import SLURM_POLL as POLL
from tests.slurm.slurm_helpers import scontrol, slurm_job_of, wait_slurm

WRITE_OUT = ("import json, os, sys; open(sys.argv[1] + '/out.txt', 'w').write('hello'); "
             "print(json.dumps(sorted(os.environ)))")
# Prints "got TERM" on SIGTERM and goes on sleeping: only the SIGKILL after the grace ends it.
STUBBORN = ("import signal, sys, time\n"
            "def term(*_):\n"
            "    print('got TERM', flush=True)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "print('ready', flush=True)\n"
            "for _ in range(600): time.sleep(0.5)\n")


async def wait_log(work_dir: str, text: str, name="stdout.log") -> None:
    async def check():
        path = Path(work_dir) / name
        return path.exists() and text in path.read_text()
    await wait_for(check, f"{text!r} in {name}")


@pytest.mark.gen_test(timeout=120)
async def test_success_runs_as_a_slurm_job_and_collects_the_product(api, make, store,
                                                                     start_engine,
                                                                     slurm_cluster):
    ws = await make.workspace()
    job_type = await make.command_type(
        "writer", PY, f'-c "{WRITE_OUT}" ${{job_output_dir}}', cpus_required=1.5,
        mem_required=200.5, priority=7,
        outputs=[{"name": "out", "type": "file", "media_type": "text/plain"}])
    job = await make.submit(job_type, outputs=[{"name": "out", "workspace_id": ws["id"]}])
    await start_engine()
    done = await wait_job(store, job["id"], "COMPLETED")

    [exe] = await exes_of(store, job["id"])
    assert exe["process"]["backend"] == "slurm"
    slurm_id = exe["process"]["job_id"]
    info = scontrol(slurm_cluster, slurm_id)
    assert (info["JobState"], info["ExitCode"], info["JobName"]) == \
        ("COMPLETED", "0:0", f"jobdeck-{exe['id']}")
    # ceil(1.5) CPUs, 200.5 MiB rounded up, Scale priority 7 -> Slurm 1_000_000 - 7.
    assert (info["NumCPUs"], info["MinMemoryNode"], info["Priority"]) == ("2", "201M", "999993")
    assert info["WorkDir"] == exe["work_dir"]
    assert (info["StdOut"], info["StdErr"]) == (exe["stdout_file"], exe["stderr_file"])
    assert info["Requeue"] == "0"
    assert exe["process"] == {"backend": "slurm", "pid": None, "started": None,
                              "job_id": slurm_id, "node": info["NodeList"]}
    assert info["NodeList"] in ("n1", "n2")

    assert done["num_exes"] == 1
    _, details, _ = await api.get(f"/jobs/{job['id']}/")
    product = details["outputs"][0]["value"]
    assert (product["file_name"], product["media_type"], product["file_size"]) == \
        ("out.txt", "text/plain", 5)
    status, raw, _ = await api.get(f"/files/{product['id']}/download/")
    assert (status, raw) == (200, "hello")
    assert (exe["job_exit_code"], exe["post_exit_code"]) == (0, 0)

    # The job's own environment only: neither the server's nor Slurm's nor the node's login one.
    status, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert status == 200 and logs["stderr"] == ""
    assert json.loads(logs["stdout"]) == sorted(exe["environment"])


@pytest.mark.gen_test(timeout=120)
async def test_timeout_is_enforced_by_jobdeck_from_running(api, make, store, start_engine,
                                                           slurm_cluster):
    job_type = await make.command_type("sleeper", "sh", "-c 'date +%s.%N; exec sleep 300'",
                                       timeout=2, max_tries=3)
    job = await make.submit(job_type)
    await start_engine(cancel_grace=1.0)
    exe, slurm_id = await slurm_job_of(store, job["id"])
    info = await wait_slurm(slurm_cluster, slurm_id, "RUNNING")
    # The safety net: timeout 2 s + grace 1 s + 60 s, in whole minutes.
    assert info["TimeLimit"] == "00:02:00"
    done = await wait_job(store, job["id"], "FAILED")
    ended = time.time()
    assert done["num_exes"] == 1
    assert await error_name(store, done["error_id"]) == "timeout"
    [exe] = await exes_of(store, job["id"])
    assert exe["job_exit_code"] == -15  # sleep dies of the SIGTERM
    info = scontrol(slurm_cluster, slurm_id)
    assert (info["JobState"], info["ExitCode"]) == ("FAILED", "143:0")  # 128 + SIGTERM
    # From the job's start (its own clock): 2 s, plus up to a poll to see it RUNNING and one to
    # see it end; not Slurm's minute.
    took = ended - float((Path(exe["work_dir"]) / "stdout.log").read_text())
    assert 2.0 <= took <= 2 + 2 * POLL + 1.0, took


@pytest.mark.gen_test(timeout=120)
async def test_cancel_of_a_running_job_sends_term_then_kill_after_the_grace(
        api, make, store, start_engine, slurm_cluster):
    job_type = await make.command_type("stubborn", PY, f'-c "{STUBBORN}"')
    job = await make.submit(job_type)
    engine = await start_engine(cancel_grace=3.0)
    exe, slurm_id = await slurm_job_of(store, job["id"])
    await wait_log(exe["work_dir"], "ready")
    status, _, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200
    canceled = time.monotonic()
    await wait_log(exe["work_dir"], "got TERM")
    termed = time.monotonic() - canceled
    info = await wait_slurm(slurm_cluster, slurm_id, "FAILED")
    ended = time.monotonic() - canceled

    async def released():
        return not engine.runners
    await wait_for(released, "the engine to let the execution go")
    exe = await store.jobs.get_exe(exe["id"])
    assert (exe["status"], exe["error_id"], exe["post_started"]) == ("CANCELED", None, None)
    assert exe["job_exit_code"] == -9  # it outlived its TERM: killed after the grace
    assert (await store.jobs.get_job(job["id"]))["status"] == "CANCELED"
    assert info["ExitCode"] == "0:9"  # the batch script and the job, SIGKILLed
    stdout = (Path(exe["work_dir"]) / "stdout.log").read_text()
    assert stdout == "ready\ngot TERM\n"
    # The TERM within the engine's cancel watch (poll_interval) and a Slurm call; the KILL not
    # before the 3 s grace, and soon after it.
    assert termed < 1.5, termed
    assert 3.0 <= ended <= 3.0 + 2 * POLL + 2.5, ended


@pytest.mark.gen_test(timeout=120)
async def test_cancel_of_a_job_pending_in_slurm_removes_it_unstarted(
        api, make, store, start_engine, slurm_cluster):
    # Both nodes full (2 CPUs each) with jobs Jobdeck does not know: the next one pends in Slurm.
    blockers = [slurm_cluster.run("sbatch", "--parsable", "--cpus-per-task=2", "--mem=64",
                                  "-o", "/dev/null", "--wrap", "sleep 300").strip()
                for _ in range(2)]
    for blocker in blockers:
        await wait_slurm(slurm_cluster, blocker, "RUNNING")
    job_type = await make.command_type("waits", "echo", "ran")
    job = await make.submit(job_type)
    await start_engine()
    exe, slurm_id = await slurm_job_of(store, job["id"])
    info = await wait_slurm(slurm_cluster, slurm_id, "PENDING")
    assert info["Reason"] in ("Resources", "Priority")
    status, _, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200
    info = await wait_slurm(slurm_cluster, slurm_id, "CANCELLED")
    assert info["RunTime"] == "00:00:00"
    assert (await store.jobs.get_exe(exe["id"]))["status"] == "CANCELED"
    assert (Path(exe["work_dir"]) / "stdout.log").read_text() == ""
    assert [scontrol(slurm_cluster, b)["JobState"] for b in blockers] == ["RUNNING"] * 2


@pytest.mark.gen_test(timeout=120)
async def test_an_invalid_partition_fails_the_execution_not_the_engine(api, make, store,
                                                                       start_engine):
    job_type = await make.command_type("nowhere", "true")
    job = await make.submit(job_type)
    await start_engine(slurm_partition="nope")
    done = await wait_job(store, job["id"], "FAILED")
    assert await error_name(store, done["error_id"]) == "slurm-rejected"
    [exe] = await exes_of(store, job["id"])
    _, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert logs["stderr"] == ("jobdeck: Slurm refused the job: sbatch: error: invalid "
                              "partition specified: nope; sbatch: error: Batch job submission "
                              "failed: Invalid partition name specified\n")


@pytest.mark.gen_test(timeout=180)
async def test_a_lost_node_fails_node_lost_and_the_retry_runs_on_the_other_node(
        api, make, store, start_engine, slurm_cluster, tmp_path):
    # No sandbox here: the first try leaves a mark outside its own folder, the retry sees it.
    mark = tmp_path / "first-try"
    script = f"import os, time; os.path.exists('{mark}') or (open('{mark}', 'w'), time.sleep(300))"
    job_type = await make.command_type("survivor", PY, f'-c "{script}"', max_tries=2)
    job = await make.submit(job_type)
    await start_engine(sandbox="none")
    _first, slurm_id = await slurm_job_of(store, job["id"])
    info = await wait_slurm(slurm_cluster, slurm_id, "RUNNING")
    node = info["NodeList"]
    await wait_for(lambda: asyncio.sleep(0, mark.exists()), "the first try's mark")
    await asyncio.to_thread(slurm_cluster.kill_node, node)
    try:
        done = await wait_job(store, job["id"], "COMPLETED")
        exes = await exes_of(store, job["id"])
        assert [e["status"] for e in exes] == ["FAILED", "COMPLETED"]
        assert await error_name(store, exes[0]["error_id"]) == "node-lost"
        assert done["num_exes"] == 2
        assert scontrol(slurm_cluster, slurm_id)["JobState"] == "NODE_FAIL"
        retry = scontrol(slurm_cluster, exes[1]["process"]["job_id"])
        assert retry["JobState"] == "COMPLETED"
        assert retry["NodeList"] == ({"n1", "n2"} - {node}).pop()
        _, logs, _ = await api.get(f"/job-executions/{exes[0]['id']}/logs/")
        assert f"jobdeck: Slurm job {slurm_id} on {node} ended NODE_FAIL" in logs["stderr"]
    finally:
        await asyncio.to_thread(slurm_cluster.start_node, node)
        await asyncio.to_thread(slurm_cluster.wait_idle, [node], 60)


# -- the server refuses to start without a usable Slurm ---------------------------------------

def run_server(tmp_path, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "server.py", "--executor", "slurm", "--port", "0",
                           "--data-dir", str(tmp_path / "data")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def error_lines(stderr: str) -> list[str]:
    return [line.split(" ERROR ", 1)[1] for line in stderr.splitlines() if " ERROR " in line]


def test_executor_slurm_without_sbatch_exits_2(tmp_path, slurm_cluster):
    env = {**os.environ, "PATH": str(tmp_path), **slurm_cluster.env}
    proc = run_server(tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        ("executor: slurm needs the Slurm CLI, but `sbatch` is not on PATH (Debian: apt-get "
        "install slurm-client)")]


def test_executor_slurm_with_an_unreachable_controller_exits_2(tmp_path, slurm_cluster):
    conf = Path(slurm_cluster.env["SLURM_CONF"]).read_text()
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=1", conf))
    proc = run_server(tmp_path, {**os.environ, "SLURM_CONF": str(dead)})
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        (f"executor: slurm cannot reach the Slurm controller ({dead}): slurm_load_partitions: "
        "Unable to contact slurm controller (connect failure)")]


@pytest.mark.gen_test(timeout=180)
async def test_slurm_starts_jobs_in_scale_priority_order_ties_in_submission_order(
        api, make, store, start_engine, slurm_cluster):
    # n2 stays full; n1 is full until every job is pending in Slurm, then runs them one by one.
    keep = slurm_cluster.run("sbatch", "--parsable", "-w", "n2", "--cpus-per-task=2",
                             "--mem=64", "-o", "/dev/null", "--wrap", "sleep 300").strip()
    block = slurm_cluster.run("sbatch", "--parsable", "-w", "n1", "--cpus-per-task=2",
                              "--mem=64", "-o", "/dev/null", "--wrap", "sleep 300").strip()
    for blocker in (keep, block):
        await wait_slurm(slurm_cluster, blocker, "RUNNING")
    stamp = "-c 'import time; print(time.time()); time.sleep(0.3)'"
    jobs = {}
    for name, priority in (("a", 20), ("b", 10), ("c", 20), ("d", 10)):
        job_type = await make.command_type(f"p-{name}", PY, stamp, priority=priority,
                                           cpus_required=2.0)
        jobs[name] = await make.submit(job_type)
    await start_engine()
    for job in jobs.values():
        _, slurm_id = await slurm_job_of(store, job["id"])
        await wait_slurm(slurm_cluster, slurm_id, "PENDING")
    slurm_cluster.run("scancel", block)
    started = {}
    for name, job in jobs.items():
        await wait_job(store, job["id"], "COMPLETED")
        exe = await store.jobs.get_exe((await store.jobs.get_job(job["id"]))["latest_exe_id"])
        started[name] = float((Path(exe["work_dir"]) / "stdout.log").read_text())
    assert sorted(started, key=started.get) == ["b", "d", "a", "c"]


@pytest.mark.gen_test(timeout=180)
async def test_a_restarted_engine_attaches_to_running_jobs_and_records_their_outcome(
        api, make, store, start_engine, slurm_cluster):
    ws = await make.workspace()
    writer = await make.command_type(
        "late-writer", PY,
        "-c \"import sys, time; time.sleep(4); open(sys.argv[1] + '/out.txt', 'w')"
        ".write('late')\" ${job_output_dir}",
        outputs=[{"name": "out", "type": "file", "media_type": "text/plain"}])
    running = await make.submit(writer, outputs=[{"name": "out", "workspace_id": ws["id"]}])
    exits = await make.command_type("ends-while-down", "sh", "-c 'sleep 1; exit 3'",
                                    max_tries=3)
    ended = await make.submit(exits)
    first = await start_engine()
    ids = {}
    for job in (running, ended):
        _, ids[job["id"]] = await slurm_job_of(store, job["id"])
        await wait_slurm(slurm_cluster, ids[job["id"]], "RUNNING")
    await first.stop()
    # Stopping the server leaves the cluster's jobs alone.
    assert scontrol(slurm_cluster, ids[running["id"]])["JobState"] == "RUNNING"
    await wait_slurm(slurm_cluster, ids[ended["id"]], "FAILED")
    assert (await store.jobs.get_job(running["id"]))["status"] == "RUNNING"

    second = await start_engine()
    done = await wait_job(store, running["id"], "COMPLETED")
    assert done["num_exes"] == 1
    [exe] = await exes_of(store, running["id"])
    assert exe["process"]["job_id"] == ids[running["id"]]
    assert exe["engine"] == second.identity and exe["job_exit_code"] == 0
    _, details, _ = await api.get(f"/jobs/{running['id']}/")
    product = details["outputs"][0]["value"]
    status, raw, _ = await api.get(f"/files/{product['id']}/download/")
    assert (status, raw) == (200, "late")

    # The job that ended while no server ran: its real exit code, not node-lost.
    failed = await wait_job(store, ended["id"], "FAILED")
    assert failed["num_exes"] == 1
    assert await error_name(store, failed["error_id"]) == "algorithm-unknown"
    [exe] = await exes_of(store, ended["id"])
    assert exe["job_exit_code"] == 3


@pytest.mark.gen_test
async def test_slurm_end_states_map_to_reports_and_errors():
    """End states read as squeue gives them, also those this cluster can't produce on demand
    (Slurm's TIMEOUT takes a minute or more)."""
    job = SlurmJob(SlurmBackend(), "7", None)
    job.node = "n1"
    assert job._report({"job_state": "OUT_OF_MEMORY", "exit_code": 9}) == ExitReport(
        EXITED, -9, "Slurm job 7 on n1 ended OUT_OF_MEMORY", error="out-of-memory")
    assert job._report({"job_state": "TIMEOUT", "exit_code": 15}) == ExitReport(
        EXITED, -15, "Slurm job 7 on n1 ended TIMEOUT", error="slurm-timeout")
    assert job._report({"job_state": "NODE_FAIL", "exit_code": 0,
                        "state_reason": "NodeDown"}) == ExitReport(
        LOST, 0, "Slurm job 7 on n1 ended NODE_FAIL (NodeDown)")
    assert job._report({"job_state": "FAILED", "exit_code": 768}) == ExitReport(EXITED, 3)
    assert job._report({"job_state": "FAILED", "exit_code": 143 << 8}) == ExitReport(EXITED, -15)
    assert job._report({"job_state": "CANCELLED", "exit_code": 15}) == ExitReport(
        EXITED, -15, "Slurm job 7 on n1 was canceled outside Jobdeck", error="unknown")
    assert {"out-of-memory", "slurm-timeout", "slurm-rejected"} <= \
        {name for name, *_ in BUILTIN_ERRORS}
