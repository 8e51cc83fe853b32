"""The backend interface: what the scheduler needs from whatever runs a job's command.

The scheduler stages inputs (pre phase) and collects outputs (post phase) itself; a backend only
starts the job phase of one execution, cancels it, and reports how it ended. The local backend
(engine/local.py) runs subprocesses on this machine; a backend for a distributed engine implements
the same three calls.
"""

import abc
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from core.private import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, private_file

# The modes of an execution's folder (data_dir/executions/<id>) and its outputs/, tmp/ and
# inputs/ folders, and of its stdout.log and stderr.log: the server's user only, like the rest of
# the data folder (core/private.py). The one place to change what a job's own user may do there.
EXECUTION_DIR_MODE = PRIVATE_DIR_MODE
EXECUTION_LOG_MODE = PRIVATE_FILE_MODE


def open_log(path: Path) -> BinaryIO:
    """An execution's log, opened to append bytes, mode EXECUTION_LOG_MODE."""
    return private_file(path, mode=EXECUTION_LOG_MODE)

# Why a job phase ended.
EXITED = "exited"
TIMED_OUT = "timeout"
CANCELED = "canceled"
# The node it ran on was lost (a Slurm NODE_FAIL): failed as Scale's `node-lost`, retried per
# max_tries.
LOST = "lost"


class LaunchError(RuntimeError):
    """The command could not be started (missing program, permissions, resources);
    `error_name` names the Scale error its execution fails with."""

    def __init__(self, message: str, error_name: str = "task-launch"):
        super().__init__(message)
        self.error_name = error_name


@dataclass
class LaunchSpec:
    """Everything a backend needs to run the job phase of one execution."""

    exe_id: int
    argv: list[str]
    work_dir: Path
    env: dict[str, str]
    stdout_path: Path
    stderr_path: Path
    timeout: float | None
    cpus: float
    mem: float
    # The staged input files (links in work_dir/inputs/), which a sandbox mounts for the job.
    inputs: list[Path] = field(default_factory=list)
    # Whether the job type's interface lets the job use the network (engine/sandbox.py).
    network: bool = False
    # The job's Scale priority (lower runs first), for a backend that queues jobs itself.
    priority: int = 0


def check_program(spec: LaunchSpec) -> None:
    """LaunchError unless the command's program is an executable file (found on its PATH):
    what a backend checks before a wrapper (bwrap, sbatch) would start and the command fail."""
    program = spec.argv[0]
    if "/" in program:
        found = str(spec.work_dir / program) if os.access(spec.work_dir / program, os.X_OK) \
            and (spec.work_dir / program).is_file() else None
    else:
        found = shutil.which(program, path=spec.env.get("PATH", os.defpath))
    if found is None:
        raise LaunchError(f"cannot start {program!r}: [Errno 2] No such file or directory: "
                          f"{program!r}")


@dataclass
class ExitReport:
    """How the job phase ended: `reason` is EXITED, TIMED_OUT, CANCELED or LOST; `error`, when
    set, names the Scale error an EXITED phase fails with whatever its exit code (a backend's own
    verdict: out of memory, the cluster's time limit)."""

    reason: str
    exit_code: int | None
    detail: str = ""
    error: str | None = None


@dataclass
class ProcessRef:
    """Where a started execution runs, recorded on the execution so a restarted server can
    clean up after a dead one: a local process (`pid`, `started`) or a Slurm job (`job_id`)."""

    backend: str
    pid: int | None = None
    started: float | None = None
    job_id: str | None = None
    node: str | None = None  # the cluster node it runs on, once known

    def as_doc(self) -> dict:
        doc: dict = {"backend": self.backend, "pid": self.pid, "started": self.started}
        if self.job_id is not None:
            doc["job_id"] = self.job_id
        if self.node is not None:
            doc["node"] = self.node
        return doc


@dataclass
class ClusterNode:
    """A node of the cluster a backend places jobs on: its name, its state in the cluster's own
    words (Slurm's sinfo %T: idle, mixed, drained, down*...), its CPUs and memory (MiB), whether
    it is drained (or draining) and why."""

    name: str
    state: str
    cpus: float
    mem: float
    drained: bool = False
    reason: str | None = None


def cluster_node_fields(node: ClusterNode) -> dict:
    """A cluster node as store.nodes.sync_cluster records it."""
    return {"hostname": node.name, "cpus": node.cpus, "mem": node.mem, "slurm_state": node.state,
            "is_paused": node.drained, "pause_reason": node.reason if node.drained else None}


def placement_problem(cpus: float, mem: float, nodes: list[ClusterNode]) -> str | None:
    """Why a job needing `cpus` and `mem` MiB can run on none of `nodes` (the cluster would
    refuse it), or None when one is big enough (or no node is known)."""
    need_cpus, need_mem = max(1, math.ceil(cpus)), max(1, math.ceil(mem))
    if not nodes or any(n.cpus >= need_cpus and n.mem >= need_mem for n in nodes):
        return None
    biggest = max(nodes, key=lambda n: (n.cpus, n.mem))
    return (f"it needs {cpus_text(need_cpus)} and {need_mem} MiB, more than any cluster node "
            f"has (the largest, {biggest.name}, has {cpus_text(biggest.cpus)} and "
            f"{biggest.mem:g} MiB)")


def cpus_text(cpus: float) -> str:
    return f"{cpus:g} CPU" + ("" if cpus == 1 else "s")


class Running(abc.ABC):
    """One started job phase."""

    ref: ProcessRef

    @abc.abstractmethod
    async def wait(self) -> ExitReport:
        """Wait for the phase to end (its timeout included) and report how."""

    @abc.abstractmethod
    async def cancel(self, grace: float) -> None:
        """Stop it: a polite signal first, a forced stop after `grace` seconds."""

    async def placed(self) -> None:  # noqa: B027 (a local process is placed when started)
        """Wait until the job runs on a node of the cluster (ref.node set), or has ended."""


class Backend(abc.ABC):
    name: str
    # Whether the backend places jobs itself (a cluster's scheduler): the engine then hands it
    # every job it may start (is_paused, max_scheduled and priority order still apply) without
    # checking its own node's CPUs and memory.
    places_jobs: bool = False

    async def open(self) -> None:  # noqa: B027 (optional: nothing to open by default)
        """Check the backend can run jobs and start what it shares (a poller); SettingsError
        when a setting names something missing."""

    async def close(self) -> None:  # noqa: B027
        """Stop what open() started."""

    async def cluster_nodes(self) -> list[ClusterNode] | None:
        """The nodes of the cluster a backend that places jobs runs them on; None when it has no
        cluster (the local backend) or the cluster did not answer."""
        return None

    async def attach(self, exe: dict) -> "Running | None":
        """The job phase a previous server started for `exe` and left running (a backend that
        places jobs keeps them through a restart), or None when there is none to attach to."""
        return None

    @abc.abstractmethod
    async def start(self, spec: LaunchSpec) -> Running:
        """Start the job phase; raise LaunchError when it cannot start."""

    @abc.abstractmethod
    async def reap(self, exe: dict) -> bool:
        """Stop whatever a dead server left running for the execution `exe` (its `process`
        field holds ProcessRef.as_doc() once recorded); True if something was still running."""
