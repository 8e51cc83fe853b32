"""Local backend: each execution's job phase is a subprocess of this server, in its own session
and process group, so a cancel or timeout reaches its children too.

No shell is involved: the command is run from its argument list (a job type that needs a shell
says so, e.g. `sh -c '...'`). The environment is clean; see engine/runner.py for the variables.
With a sandbox (engine/sandbox.py) the group's leader is bwrap: a cancel's SIGTERM goes to the
processes below it (bwrap would die at once and take the job with it, without its grace
period); the SIGKILL after the grace goes to the whole group, and bwrap's death ends every
process left in the job's PID namespace.
"""

import asyncio
import contextlib
import os
import signal

import psutil

from core.settings import DEFAULTS
from engine.executor import (
    CANCELED,
    EXECUTION_DIR_MODE,
    EXITED,
    TIMED_OUT,
    Backend,
    ExitReport,
    LaunchError,
    LaunchSpec,
    ProcessRef,
    Running,
    check_program,
    open_log,
)
from engine.sandbox import NO_SANDBOX, Sandbox


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_below(pid: int, sig: int) -> None:
    """Send `sig` to every process started below `pid` (not to `pid` itself)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(sig)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _prepare(spec: LaunchSpec, sandbox: Sandbox):
    """The job's stdout and stderr files (appended to: a retried execution keeps the first
    attempt's lines; the child holds its own copies of the descriptors) and its command line.
    Called in a worker thread, like the runner's folder creation."""
    if sandbox.on:  # bwrap would start, and its command then fail: say so as without it
        check_program(spec)
    spec.stdout_path.parent.mkdir(mode=EXECUTION_DIR_MODE, parents=True, exist_ok=True)
    # Closed by start() once the child holds its copies.
    out, err = open_log(spec.stdout_path), open_log(spec.stderr_path)
    try:
        inputs = sandbox.prepare(spec.work_dir, spec.inputs)
    except OSError as exc:
        out.close()
        err.close()
        raise LaunchError(f"cannot prepare the execution folder: {exc}") from exc
    return out, err, sandbox.wrap(spec.argv, spec.work_dir, inputs, network=spec.network)


class LocalProcess(Running):
    def __init__(self, proc: asyncio.subprocess.Process, timeout: float | None, grace: float,
                 sandboxed: bool = False):
        self.proc = proc
        self.sandboxed = sandboxed
        self.timeout = timeout
        self.grace = grace
        self.ref = ProcessRef("local", proc.pid, _create_time(proc.pid))
        self.canceled = False

    async def _stop(self, grace: float) -> None:
        """SIGTERM to the group (sandboxed: below bwrap), SIGKILL after `grace` seconds if the
        leader still lives."""
        if self.sandboxed:
            _signal_below(self.proc.pid, signal.SIGTERM)
        else:
            _signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        _signal_group(self.proc.pid, signal.SIGKILL)

    def _code(self, code: int) -> int:
        """The job's exit code as without a sandbox: bwrap exits 128 + N when its command is
        killed by signal N, reported as -N like any subprocess (an exit 129..192 of the job's
        own reads the same)."""
        if self.sandboxed and 128 < code <= 128 + signal.NSIG:
            return 128 - code
        return code

    async def wait(self) -> ExitReport:
        try:
            code = await asyncio.wait_for(asyncio.shield(self.proc.wait()), self.timeout)
        except TimeoutError:
            await self._stop(self.grace)
            code = self._code(await self.proc.wait())
            return ExitReport(TIMED_OUT, code, f"killed after {self.timeout:g} s")
        # Whatever the command left behind in its group goes with it.
        _signal_group(self.proc.pid, signal.SIGKILL)
        return ExitReport(CANCELED if self.canceled else EXITED, self._code(code))

    async def cancel(self, grace: float) -> None:
        self.canceled = True
        if self.proc.returncode is None:
            await self._stop(grace)


class LocalBackend(Backend):
    name = "local"

    def __init__(self, timeout_grace: float = DEFAULTS.cancel_grace,
                 sandbox: Sandbox = NO_SANDBOX):
        self.timeout_grace = timeout_grace
        self.sandbox = sandbox

    async def start(self, spec: LaunchSpec) -> Running:
        out, err, argv = await asyncio.to_thread(_prepare, spec, self.sandbox)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=spec.work_dir, env=spec.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True)
        except (OSError, ValueError) as exc:
            raise LaunchError(f"cannot start {spec.argv[0]!r}: {exc}") from exc
        finally:
            out.close()
            err.close()
        return LocalProcess(proc, spec.timeout, self.timeout_grace, self.sandbox.on)

    async def reap(self, exe: dict) -> bool:
        """Kill the execution's process groups: the recorded leader's, and any process whose
        environment names this execution (the server may have died before recording it)."""
        groups = set()
        ref = exe.get("process") or {}
        pid, started = ref.get("pid"), ref.get("started")
        if pid and started is not None and _create_time(pid) == started:
            groups.add(pid)
        if exe.get("work_dir"):
            groups.update(await asyncio.to_thread(_groups_working_in, exe["work_dir"]))
        killed = False
        for pgid in groups:
            killed = _signal_group(pgid, signal.SIGKILL) or killed
        return killed


def _groups_working_in(work_dir: str) -> set[int]:
    """Process groups of the processes whose environment names `work_dir` as their execution's
    working folder (JOBDECK_WORK_DIR, unique per data folder and execution)."""
    groups = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get("JOBDECK_WORK_DIR") == work_dir:
                pgid = os.getpgid(proc.pid)
                if pgid != os.getpgid(0):
                    groups.add(pgid)
    return groups
