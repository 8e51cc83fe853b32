"""The throwaway Slurm cluster (slurm/cluster.py) and the Slurm facts the Slurm backend (issue 12)
relies on, each checked with exact values on the real cluster (the `slurm_cluster` fixture of
tests/fixtures.py: nodes n1 and n2, 2 CPUs and 1024 MiB each, KillWait 2 s)."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from slurm import cluster as script
from slurm.cluster import Cluster, ClusterUnavailable, check_machine, start_cluster

pytestmark = pytest.mark.alone

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY"}


def slurm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={**os.environ, **cluster.env}, capture_output=True,
                          text=True, timeout=30, check=False)


def sbatch(cluster: Cluster, *args: str) -> str:
    """Submit; the job id."""
    result = slurm(cluster, "sbatch", "--parsable", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def job(cluster: Cluster, job_id: str) -> dict[str, str]:
    """`scontrol show job` as name: value."""
    out = cluster.run("scontrol", "-o", "show", "job", job_id)
    return dict(re.findall(r"(\S+?)=(\S*)", out))


def until(check, what: str, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}; last saw {result!r}")
        time.sleep(0.05)


def wait_state(cluster: Cluster, job_id: str, states=ENDED, timeout: float = 30.0) -> dict:
    def check():
        info = job(cluster, job_id)
        return info if info["JobState"] in states else None
    return until(check, f"job {job_id} to be {'/'.join(sorted(states))}", timeout)


def wait_file(path: Path, timeout: float = 30.0) -> str:
    return until(lambda: path.exists() and path.read_text(), f"{path.name} written", timeout)


@pytest.fixture
def cluster(slurm_cluster):
    """The session's cluster, with every job of the test cancelled afterwards."""
    yield slurm_cluster
    slurm_cluster.cancel_all()


def test_the_cluster_is_two_idle_nodes(cluster):
    assert cluster.nodes == ("n1", "n2")
    assert cluster.env == {"SLURM_CONF": str(cluster.directory / "slurm.conf")}
    assert cluster.node_states() == {"n1": "idle", "n2": "idle"}
    assert cluster.run("sinfo", "-h", "-N", "-o", "%N %c %m %P").splitlines() == [
        "n1 2 1024 main*", "n2 2 1024 main*"]
    assert all(cluster.pids().values()), cluster.pids()


def test_exit_code_shows_as_code_and_signal(cluster, tmp_path):
    ok = sbatch(cluster, f"--output={tmp_path}/ok.out", "--wrap", "echo hello")
    failed = sbatch(cluster, "--output=/dev/null", "--wrap", "exit 3")
    killed = sbatch(cluster, "--output=/dev/null", "--wrap", "kill -KILL $$")
    ended = {name: wait_state(cluster, job_id)
             for name, job_id in (("ok", ok), ("failed", failed), ("killed", killed))}
    assert {name: (info["JobState"], info["ExitCode"]) for name, info in ended.items()} == {
        "ok": ("COMPLETED", "0:0"), "failed": ("FAILED", "3:0"), "killed": ("FAILED", "0:9")}
    assert ended["failed"]["Reason"] == "NonZeroExitCode"
    assert ended["ok"]["StdOut"] == f"{tmp_path}/ok.out"
    assert ended["ok"]["NodeList"] in ("n1", "n2")
    assert (tmp_path / "ok.out").read_text() == "hello\n"


def test_squeue_json_lists_finished_jobs(cluster):
    ok = sbatch(cluster, "--output=/dev/null", "--wrap", "true")
    failed = sbatch(cluster, "--output=/dev/null", "--wrap", "exit 3")
    for job_id in (ok, failed):
        wait_state(cluster, job_id)
    jobs = json.loads(cluster.run("squeue", "--json", "-t", "all"))["jobs"]
    # exit_code is the raw wait status: exit 3 is 768.
    seen = {str(entry["job_id"]): (entry["job_state"], entry["exit_code"]) for entry in jobs}
    assert {job_id: seen.get(job_id) for job_id in (ok, failed)} == {
        ok: ("COMPLETED", 0), failed: ("FAILED", 768)}


def test_priority_orders_pending_jobs_ties_in_submission_order(cluster, tmp_path):
    """Higher --priority starts first (Jobdeck inverts Scale's order); equal ones go in
    submission order. Each job needs all of n1, so they start one at a time."""
    whole_n1 = ["-w", "n1", "--cpus-per-task=2", "--mem=1024", "--output=/dev/null"]
    blocker = sbatch(cluster, *whole_n1, "--wrap", "sleep 300")
    wait_state(cluster, blocker, {"RUNNING"})
    order = tmp_path / "order"
    submitted = {name: sbatch(cluster, *whole_n1, f"--priority={priority}",
                              "--wrap", f"echo {name} >> {order}")
                 for name, priority in (("a", 10), ("b", 30), ("c", 20), ("d", 30))}
    assert {name: job(cluster, job_id)["Priority"] for name, job_id in submitted.items()} == {
        "a": "10", "b": "30", "c": "20", "d": "30"}
    cluster.run("scancel", blocker)
    for job_id in submitted.values():
        assert wait_state(cluster, job_id)["JobState"] == "COMPLETED"
    assert order.read_text().split() == ["b", "d", "c", "a"]


TRAP = ("trap 'echo term >> {dir}/term; exit 0' TERM; echo started > {dir}/started; "
        "while true; do sleep 0.1; done")


def test_signal_term_full_reaches_the_running_job(cluster, tmp_path):
    job_id = sbatch(cluster, "--output=/dev/null", "--wrap", TRAP.format(dir=tmp_path))
    wait_file(tmp_path / "started")
    assert job(cluster, job_id)["JobState"] == "RUNNING"
    cluster.run("scancel", "--signal=TERM", "--full", job_id)
    assert wait_file(tmp_path / "term", timeout=5) == "term\n"
    # Only signalled: the job ends as its own code says.
    info = wait_state(cluster, job_id)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0")


def test_scancel_terms_then_kills_after_kill_wait(cluster, tmp_path):
    """Plain scancel: SIGTERM, the job is CANCELLED; one that ignores SIGTERM gets SIGKILL
    KillWait (2 s) later."""
    polite = sbatch(cluster, "--output=/dev/null", "--wrap", TRAP.format(dir=tmp_path))
    wait_file(tmp_path / "started")
    stubborn_dir = tmp_path / "stubborn"
    stubborn_dir.mkdir()
    stubborn = sbatch(cluster, "--output=/dev/null", "--wrap",
                      f"trap 'echo term >> {stubborn_dir}/term' TERM; echo started > {stubborn_dir}/started;"
                      " while true; do sleep 0.1; done")
    wait_file(stubborn_dir / "started")
    began = time.monotonic()
    cluster.run("scancel", polite, stubborn)
    polite_info = wait_state(cluster, polite)
    assert (polite_info["JobState"], polite_info["ExitCode"]) == ("CANCELLED", "0:0")
    assert (tmp_path / "term").read_text() == "term\n"
    until(lambda: not cluster.job_ids(), "the stubborn job to be killed", timeout=15)
    killed_after = time.monotonic() - began
    stubborn_info = job(cluster, stubborn)
    assert (stubborn_info["JobState"], stubborn_info["ExitCode"]) == ("CANCELLED", "0:9")
    assert (stubborn_dir / "term").read_text() == "term\n"
    assert 2.0 <= killed_after < 10.0


NOT_AVAILABLE = ("sbatch: error: Batch job submission failed: Requested node configuration is not "
                 "available")


def test_a_job_that_fits_no_node(cluster):
    """More CPUs or memory than any node has: sbatch refuses it. More nodes than the partition
    has: it stays PENDING with a reason."""
    for too_big in ("--cpus-per-task=3", "--mem=1025"):
        refused = slurm(cluster, "sbatch", "--parsable", too_big, "--wrap", "true")
        assert (refused.returncode, refused.stderr.splitlines()[-1]) == (1, NOT_AVAILABLE), too_big
    job_id = sbatch(cluster, "--nodes=3", "--output=/dev/null", "--wrap", "true")
    info = wait_state(cluster, job_id, {"PENDING"})
    until(lambda: job(cluster, job_id)["Reason"] != "None", "a pending reason", timeout=10)
    time.sleep(1.5)
    info = job(cluster, job_id)
    assert (info["JobState"], info["Reason"]) == ("PENDING", "PartitionNodeLimit")


def test_drain_and_resume_a_node(cluster):
    cluster.run("scontrol", "update", "nodename=n1", "state=drain", "reason=jobdeck test")
    try:
        assert cluster.run("sinfo", "-h", "-N", "-n", "n1", "-o", "%T|%E").strip() == \
            "drained|jobdeck test"
        job_id = sbatch(cluster, "-w", "n1", "--output=/dev/null", "--wrap", "true")
        until(lambda: job(cluster, job_id)["Reason"] != "None", "a pending reason", timeout=10)
        info = job(cluster, job_id)
        assert (info["JobState"], info["Reason"]) == ("PENDING", "ReqNodeNotAvail,_UnavailableNodes:n1")
    finally:
        cluster.run("scontrol", "update", "nodename=n1", "state=resume")
    cluster.wait_idle(["n1"], timeout=10)
    assert cluster.run("sinfo", "-h", "-N", "-n", "n1", "-o", "%T|%E").strip() == "idle|none"
    info = wait_state(cluster, job_id)
    assert (info["JobState"], info["NodeList"]) == ("COMPLETED", "n1")


def test_a_second_cluster_runs_beside_it_and_stops_by_pid(cluster, tmp_path):
    """Each cluster keeps to its own folder, ports and munged: a second one (another xdist
    worker's) comes up beside the session's, runs a job, and its stop leaves no daemon."""
    began = time.monotonic()
    second = start_cluster()
    started_in = time.monotonic() - began
    try:
        assert second.conf != cluster.conf
        job_id = sbatch(second, f"--output={tmp_path}/out", "--wrap", "echo second")
        assert wait_state(second, job_id)["JobState"] == "COMPLETED"
        assert (tmp_path / "out").read_text() == "second\n"
        pids = second.pids()
        assert all(pids.values()), pids
    finally:
        began = time.monotonic()
        second.stop()
        stopped_in = time.monotonic() - began
    assert set(second.pids().values()) == {None}
    assert not any(script._alive(pid) for pid in pids.values() if pid)
    assert cluster.node_states() == {"n1": "idle", "n2": "idle"}
    assert started_in < 30 and stopped_in < 10, (started_in, stopped_in)


def test_refuses_where_it_cannot_work(monkeypatch, capsys):
    """Not root, or no Slurm and no apt-get: ClusterUnavailable in Python, and from the command
    line one line and exit 2."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterUnavailable, match="needs root"):
        check_machine()
    assert script.main(["start"]) == 2
    assert capsys.readouterr().err == ("slurm-cluster: the Slurm test cluster needs root (it "
                                       "installs Slurm with apt-get and runs its daemons as "
                                       "root)\n")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(script, "BINARIES", ("/nonexistent/slurmctld",))
    monkeypatch.setattr(script.shutil, "which", lambda name: None)
    with pytest.raises(ClusterUnavailable) as refused:
        start_cluster()
    assert str(refused.value) == "Slurm is not installed and there is no apt-get to install it"


def test_a_lost_node_fails_its_job(cluster, tmp_path):
    """kill_node: slurmd, slurmstepd and the job's processes die; about 25-30 s later the node is
    DOWN and the job NODE_FAIL, while a job on the other node runs on. start_node brings the
    node back. The slowest test: it runs last."""
    lost = sbatch(cluster, "-w", "n2", "--output=/dev/null", "--wrap",
                  f"echo $$ > {tmp_path}/lost.pid; sleep 300")
    survivor = sbatch(cluster, "-w", "n1", "--output=/dev/null", "--wrap", "sleep 300")
    for job_id in (lost, survivor):
        wait_state(cluster, job_id, {"RUNNING"})
    job_pid = int(wait_file(tmp_path / "lost.pid"))
    try:
        cluster.kill_node("n2")
        assert not script._alive(job_pid)
        assert cluster.pids()["slurmd-n2"] is None
        info = wait_state(cluster, lost, timeout=60)
        assert (info["JobState"], info["Reason"], info["NodeList"]) == (
            "NODE_FAIL", "NodeDown", "n2")
        assert cluster.node_states() == {"n1": "mixed", "n2": "down*"}
        assert job(cluster, survivor)["JobState"] == "RUNNING"
    finally:
        cluster.start_node("n2")
    cluster.cancel_all()
    cluster.wait_idle(["n1", "n2"], timeout=15)
