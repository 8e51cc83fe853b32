"""A sandboxed Slurm job's batch script ends only after every process of the job has: Slurm's
proctrack/cgroup finds the step's cgroup empty when the script exits, instead of sleeping a
whole second and trying again (bwrap exits while its PID 1 is still in the cgroup).

The script is the one the Slurm backend submits (engine/slurm.py's batch_command around the real
bubblewrap sandbox), run here in a cgroup v1 of its own, as slurmstepd runs it in the step's."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from engine.executor import LaunchSpec
from engine.sandbox import make_sandbox, probe
from engine.slurm import _prepare, batch_command

PIDS = Path("/sys/fs/cgroup/pids")
RUNS = 30

pytestmark = pytest.mark.skipif(
    probe() != "" or os.geteuid() != 0 or not PIDS.is_dir(),
    reason="needs root, bubblewrap and cgroup v1's pids controller (as the Slurm test cluster)")


@pytest.fixture
def cgroup():
    path = PIDS / f"jobdeck-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    path.rmdir()


def test_the_batch_script_ends_after_every_process_of_the_sandbox(cgroup, tmp_path):
    data_dir = tmp_path / "data"
    work_dir = data_dir / "exe"
    work_dir.mkdir(parents=True)
    data_dir.chmod(0o700)
    sandbox = make_sandbox("bwrap", "nobody", data_dir)
    spec = LaunchSpec(exe_id=1, argv=["sh", "-c", "echo out; echo err >&2; exit 3"], work_dir=work_dir, env={"PATH": "/usr/bin:/bin"},
                      stdout_path=work_dir / "stdout.log", stderr_path=work_dir / "stderr.log",
                      timeout=None, cpus=1, mem=64)
    script = batch_command(spec, _prepare(spec, sandbox), sandbox.on)
    procs = cgroup / "cgroup.procs"

    def enter() -> None:
        procs.write_text(str(os.getpid()))

    left = []
    for _ in range(RUNS):
        done = subprocess.run(["/bin/sh", "-c", script], cwd=work_dir, preexec_fn=enter,
                              stdin=subprocess.DEVNULL, capture_output=True, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
        left.append(procs.read_text().split())
        for pid in left[-1]:  # let the next run start clean even when this one failed
            subprocess.run(["kill", "-9", pid], check=False)
    assert left == [[]] * RUNS
