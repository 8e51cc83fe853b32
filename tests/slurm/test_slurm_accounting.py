"""Slurm refusing a job for its QOS (issue 12's bad input), on a cluster of its own with
accounting (slurm/cluster.py's `start_cluster(accounting=True)`: slurmdbd on a private MariaDB,
`AccountingStorageEnforce=associations,limits,qos`). The session's cluster has no accounting, so
there sbatch takes any --qos."""

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from slurm.cluster import Cluster, ClusterUnavailable, existing_cluster, start_cluster
from tests.engine.test_engine_failures import error_name, exes_of
from tests.slurm.slurm_helpers import scontrol, slurm_job_of
from tests.waiting import wait_job

pytestmark = pytest.mark.alone

REFUSED = "sbatch: error: Batch job submission failed: Invalid qos specification\n"


@pytest.fixture(scope="module")
def slurm_cluster():
    """This module's cluster, with accounting; it stands in for the session's `slurm_cluster`
    (tests/fixtures.py), so this module's engines submit to it."""
    try:
        cluster = start_cluster(accounting=True)
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)


def sbatch(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sbatch", "--parsable", "--output=/dev/null", *args, "--wrap", "true"],
                          env={**os.environ, **cluster.env}, capture_output=True, text=True,
                          timeout=30, check=False)


def grant_qos(cluster: Cluster, qos: str) -> None:
    """Let root use `qos`, and wait until slurmctld takes it (sbatch --test-only accepts it)."""
    cluster.run("sacctmgr", "-i", "modify", "user", "root", "set", f"qos+={qos}")
    end = time.monotonic() + 30
    while sbatch(cluster, "--test-only", f"--qos={qos}").returncode != 0:
        assert time.monotonic() < end, f"slurmctld never let root use QOS {qos}"
        time.sleep(0.05)


def test_the_accounting_cluster_runs_jobs_and_refuses_a_qos_root_may_not_use(slurm_cluster):
    cluster = slurm_cluster
    assert cluster.node_states() == {"n1": "idle", "n2": "idle"}
    assert set(cluster.pids()) == {"munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd-n1",
                                   "slurmd-n2"}
    assert all(cluster.pids().values()), cluster.pids()
    # `python -m slurm.cluster stop` (and status) find the accounting's daemons too.
    assert existing_cluster(cluster.directory).pids() == cluster.pids()
    name = cluster.run("scontrol", "show", "config").split("ClusterName", 1)[1].split()[1]
    assert cluster.run("sacctmgr", "-n", "-P", "show", "assoc", "format=cluster,account,user,qos"
                       ).splitlines() == [f"{name}|root||normal", f"{name}|root|root|normal"]
    # root's own association: a job without --qos runs.
    plain = sbatch(cluster)
    assert plain.returncode == 0, plain.stderr
    # A QOS that does not exist, and one that exists but is not root's, are refused alike.
    nope = sbatch(cluster, "--qos=nope")
    assert (nope.returncode, nope.stdout, nope.stderr) == (1, "", REFUSED)
    cluster.run("sacctmgr", "-i", "add", "qos", "silver")
    silver = sbatch(cluster, "--qos=silver")
    assert (silver.returncode, silver.stdout, silver.stderr) == (1, "", REFUSED)
    grant_qos(cluster, "silver")
    granted = sbatch(cluster, "--qos=silver")
    assert granted.returncode == 0, granted.stderr
    assert scontrol(cluster, granted.stdout.strip())["QOS"] == "silver"


@pytest.mark.gen_test(timeout=120)
async def test_a_refused_qos_fails_the_execution_and_the_engine_runs_the_next_job(
        api, make, store, start_engine, slurm_cluster):
    # QOS gold exists, but root may not use it yet.
    await asyncio.to_thread(slurm_cluster.run, "sacctmgr", "-i", "add", "qos", "gold")
    job_type = await make.command_type("golden", "echo", "ran")
    refused = await make.submit(job_type)
    await start_engine(slurm_extra_args=("--qos=gold",))
    done = await wait_job(store, refused["id"], "FAILED")
    assert await error_name(store, done["error_id"]) == "slurm-rejected"
    [exe] = await exes_of(store, refused["id"])
    assert (exe["status"], (exe.get("process") or {}).get("job_id")) == ("FAILED", None)
    _, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert logs["stderr"] == f"jobdeck: Slurm refused the job: {REFUSED}"

    # The same engine goes on: once root may use the QOS, the next job runs under it.
    await asyncio.to_thread(grant_qos, slurm_cluster, "gold")
    accepted = await make.submit(job_type)
    await wait_job(store, accepted["id"], "COMPLETED")
    _, slurm_id = await slurm_job_of(store, accepted["id"])
    assert scontrol(slurm_cluster, slurm_id)["QOS"] == "gold"
    [exe] = await exes_of(store, accepted["id"])
    assert (exe["status"], exe["job_exit_code"]) == ("COMPLETED", 0)
    assert (await store.jobs.get_job(refused["id"]))["status"] == "FAILED"

