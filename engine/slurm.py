"""Slurm backend: each execution's job phase is one Slurm batch job, driven through the Slurm CLI
(`sbatch`, `squeue`, `scancel`, `sinfo`; PySlurm does not build against Debian's Slurm 22.05).
The cluster is the one `SLURM_CONF` (or the CLI's defaults) names.

- Submission: `sbatch --parsable` with --cpus-per-task=ceil(cpus), --mem in MiB, --priority
  (Scale's lower number first: PRIORITY_TOP - priority; Slurm starts equal ones in submission
  order), --chdir the execution folder, --output/--error its stdout.log and stderr.log appended
  to (readable while the job runs, so the log tail works unchanged), --export=NONE and the
  command run through `env -i K=V ... argv`, so the job gets exactly the runner's environment and
  neither the server's nor the node's login one. `--time` is only a safety net (the timeout
  plus SAFETY_MARGIN and the grace, in whole minutes): Slurm rounds it up and checks it about every
  30 s, so Jobdeck enforces the timeout itself from the moment it sees the job RUNNING. sbatch
  refusing the job (a partition or QOS that does not exist) fails the execution with
  `slurm-rejected`; a job bigger than every node is never handed to Slurm (the scheduler keeps
  it QUEUED, engine/executor.py's placement_problem says why).
- Nodes: `sinfo` lists the partition's nodes (read_nodes; the engine records them each second
  for /nodes/), and `scontrol update` drains or resumes one (drain_node, PATCH /nodes/{id}/).
- One poller task reads the state of every submitted job in a single `squeue --json -t all -j
  ...` each `slurm_poll_interval` (and at once after a cancel). Never a loop per job.
- Cancel: a job still PENDING is removed with a plain scancel; a running one gets
  `scancel --signal=TERM --full` (every process of its batch step), then after the grace
  `scancel --signal=USR2 --batch`, on which the batch script (BATCH_SCRIPT) SIGKILLs its
  process group at once (Slurm's own --signal=KILL would send SIGTERM again and wait KillWait),
  and a plain scancel if it still runs KILL_WAIT seconds later.
- Outcomes: COMPLETED and FAILED give the exit code (killed by signal N: -N, as locally);
  NODE_FAIL (and BOOT_FAIL, PREEMPTED) give reason LOST, which the runner fails as `node-lost`
  and retries per max_tries (the job is submitted with --no-requeue: Slurm's requeue waits about
  two minutes); OUT_OF_MEMORY fails as `out-of-memory`, Slurm's own TIMEOUT as `slurm-timeout`; a
  job canceled outside Jobdeck as `unknown`.
- Sandbox: the same bubblewrap wrapper as the local backend (every node sees the execution folder
  on the shared filesystem). bwrap would die at the first SIGTERM and take the job with it before
  its grace, so it runs with SIGTERM ignored and the job's own command gets the default handling
  back (`env --default-signal=TERM`, coreutils 8.31 or later on the nodes).
"""

import asyncio
import contextlib
import json
import logging
import math
import os
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from core.settings import DEFAULTS, SettingsError
from engine.executor import (
    CANCELED,
    EXECUTION_DIR_MODE,
    EXITED,
    LOST,
    TIMED_OUT,
    Backend,
    ClusterNode,
    ExitReport,
    LaunchError,
    LaunchSpec,
    ProcessRef,
    Running,
    check_program,
    open_log,
)
from engine.sandbox import CLEAN_ENV, NO_SANDBOX, Sandbox

log = logging.getLogger("jobdeck.engine")

# Slurm priority of a Scale priority p: PRIORITY_TOP - p (bigger runs first in Slurm).
PRIORITY_TOP = 1_000_000
# Seconds added to a job's timeout (with the cancel grace) for Slurm's --time safety net.
SAFETY_MARGIN = 60.0
# Seconds a CLI call may take before it counts as failed.
CLI_TIMEOUT = 30.0
# Seconds a `scancel --signal=KILL` may take before a plain scancel follows it.
KILL_WAIT = 5.0
# Polls in a row a submitted job may be missing from squeue before it counts as lost.
MISSING_POLLS = 5
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                "BOOT_FAIL", "PREEMPTED", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
LOST_STATES = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED"}
# A final state's own Scale error (whatever the exit code says).
STATE_ERRORS = {"OUT_OF_MEMORY": "out-of-memory", "TIMEOUT": "slurm-timeout",
                "DEADLINE": "slurm-timeout"}


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def message(self) -> str:
        """What the command said, on one line (its lines joined by "; "), for an error message."""
        text = self.err.strip() or self.out.strip() or f"exit code {self.code}"
        return "; ".join(line.strip() for line in text.splitlines() if line.strip())


async def end(proc: asyncio.subprocess.Process) -> None:
    """Kill a command and reap it, so its pipes close while the event loop still runs (left to
    the garbage collector, they close on a loop that may be gone)."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


async def run_cli(*argv: str, env: dict[str, str] | None = None,
                  timeout: float = CLI_TIMEOUT) -> CliResult:
    """Run a Slurm command; exit code 127 when it is missing, -1 when it timed out."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
    except OSError as exc:
        return CliResult(127, "", f"{argv[0]}: {exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await end(proc)
        return CliResult(-1, "", f"{argv[0]} did not answer within {timeout:g} s")
    except asyncio.CancelledError:  # the engine stops: the command is killed and reaped too
        await end(proc)
        raise
    return CliResult(proc.returncode or 0, out.decode(errors="replace"),
                     err.decode(errors="replace"))


class SlurmCommandFailed(RuntimeError):
    """A Slurm command (scontrol, sinfo) failed; the message says what it answered."""


# sinfo's fields for a node: name, state (%T: idle, mixed, drained, down*...), CPUs, memory in
# MiB, and the reason it is drained or down (last: it may hold the separator).
NODE_FORMAT = "%N|%T|%c|%m|%E"
# Slurm's reason for a drain asked for without one (scontrol requires a reason).
DEFAULT_DRAIN_REASON = "paused through Jobdeck"


async def read_nodes(partition: str | None = None, names: tuple[str, ...] = ()) \
        -> list[ClusterNode]:
    """The cluster's nodes (those of `partition`, or only `names` when given), once each, as
    `sinfo` shows them; SlurmCommandFailed when it does not answer."""
    args = ["sinfo", "-h", "-N", "-o", NODE_FORMAT]
    if partition:
        args += ["-p", partition]
    if names:
        args += ["-n", ",".join(names)]
    done = await run_cli(*args)
    if done.code != 0:
        raise SlurmCommandFailed(f"sinfo failed: {done.message()}")
    nodes: dict[str, ClusterNode] = {}
    for line in done.out.splitlines():
        fields = line.strip().split("|", 4)
        if len(fields) != 5 or fields[0] in nodes:
            continue
        name, state, cpus, mem, reason = fields
        with contextlib.suppress(ValueError):
            nodes[name] = ClusterNode(
                name, state, float(cpus), float(mem.rstrip("+")),
                drained=state.rstrip("*~#!%$@^-").startswith("drain"),
                reason=None if reason == "none" else reason)
    return list(nodes.values())


async def drain_node(name: str, drained: bool, reason: str | None) -> None:
    """Drain a node (it finishes its jobs and starts no new ones) with `reason`, or resume it,
    through `scontrol update`; SlurmCommandFailed with what scontrol said when it refuses."""
    args = ["scontrol", "update", f"nodename={name}"]
    if drained:
        args += ["state=drain", f"reason={reason or DEFAULT_DRAIN_REASON}"]
    else:
        args.append("state=resume")
    done = await run_cli(*args)
    if done.code != 0:
        raise SlurmCommandFailed(f"scontrol could not {'drain' if drained else 'resume'} "
                                 f"Slurm node {name}: {done.message()}")


def slurm_priority(priority: int) -> int:
    """Slurm's --priority for a Scale priority: lower Scale numbers run first."""
    return max(1, PRIORITY_TOP - int(priority))


def time_limit(timeout: float | None, grace: float) -> str | None:
    """sbatch's --time safety net, in whole minutes (None: no timeout, the partition's)."""
    if not timeout:
        return None
    return str(max(1, math.ceil((timeout + grace + SAFETY_MARGIN) / 60)))


def exit_code(raw) -> int | None:
    """squeue's exit_code (the raw wait status: exit 3 is 768, SIGKILL is 9) as a subprocess
    return code: the exit status, or -N when killed by signal N."""
    if isinstance(raw, dict):  # newer Slurm: {"status": ..., "return_code": ..., "signal": ...}
        sig = (raw.get("signal") or {}).get("signal_id") or 0
        code = raw.get("return_code")
        return -int(sig) if sig else (int(code) if code is not None else None)
    if raw is None:
        return None
    raw = int(raw)
    sig = raw & 0x7F
    return -sig if sig else (raw >> 8) & 0xFF


def job_state(record: dict) -> str:
    state = record.get("job_state")
    if isinstance(state, list):  # newer Slurm: a list of flags, the base state first
        state = state[0] if state else ""
    return str(state or "")


# Made by the batch script in the execution folder as the job starts: Slurm says RUNNING up to
# a second before the node starts the script, and the timeout counts from the job's own start.
STARTED_MARK = ".jobdeck-started"
# Seconds after RUNNING the marker may take to appear before the timeout counts from RUNNING.
MARK_WAIT = 10.0
# The batch script around the job's command line (%s). It ignores SIGTERM itself (a cancel's
# `scancel --signal=TERM --full`, sent to the script's process group, is for the job) and on a
# USR2 (`scancel --signal=USR2 --batch`) SIGKILLs its whole process group, the job and itself,
# at once: Slurm's own `--signal=KILL` would send SIGTERM again and wait KillWait first. Its exit
# status is the job's (killed by signal N: 128 + N).
BATCH_SCRIPT = ("trap '' TERM; trap 'kill -9 0' USR2; : > " + STARTED_MARK + "; "
                "%s & job=$!; wait $job; code=$?; "
                "while kill -0 $job 2>/dev/null; do wait $job; code=$?; done; exit $code")
# A background job of sh ignores SIGINT and SIGQUIT, and this one SIGTERM: the job gets them back.
DEFAULT_SIGNALS = "--default-signal=TERM,INT,QUIT"
# Sandboxed, the script ends only once bwrap's PID 1 has: bwrap exits as soon as that init reports
# the job's exit code, while the init is still in the step's cgroup (tearing its namespaces
# down), and Slurm's proctrack/cgroup, finding the cgroup not yet empty, then sleeps a whole
# second before it ends the job (a fifth to a third of sandboxed jobs). So bwrap writes its info
# (the init's pid, --info-fd 7) into a pipe and the init holds the pipe (--sync-fd 9, neither
# reaches the job) until its files close; the command's exit code follows. The reader waits for
# EOF, then until the init is a zombie or gone (out of the cgroup), and exits with the code. Fd 8
# keeps the script's stdout (the job's log) for the command, which comes first.
AWAIT_INIT = (" 7>&1 9>&1 >&8 8>&-; printf '\\n%s\\n' $?; } | { out=$(cat); "
              "code=${out##*[!0-9]}; pid=${out#*'\"child-pid\": '}; pid=${pid%%[!0-9]*}; "
              "while [ -n \"$pid\" ] && read -r stat 2>/dev/null < /proc/$pid/stat; do "
              "set -- $stat; [ \"$3\" = Z ] && break; sleep 0.005; done; exit $code; }; } 8>&1")


def batch_command(spec: LaunchSpec, argv: list[str], sandboxed: bool) -> str:
    """The batch script: BATCH_SCRIPT around `env -i K=V ... argv`, so the job gets exactly its
    own environment (sandboxed: bwrap keeps SIGTERM ignored, the job's command gets it back)."""
    head = ["/usr/bin/env", "-i"]
    if sandboxed:
        inner = list(CLEAN_ENV)
        for i in range(len(argv) - len(inner) + 1):
            if argv[i:i + len(inner)] == inner:
                argv = [*argv[:i], inner[0], DEFAULT_SIGNALS, *inner[1:],
                        *argv[i + len(inner):]]
                break
    else:
        head.append(DEFAULT_SIGNALS)
    env = [f"{key}={value}" for key, value in spec.env.items()]
    if not sandboxed:
        return BATCH_SCRIPT % shlex.join([*head, *env, *argv])
    argv = [argv[0], "--info-fd", "7", "--sync-fd", "9", *argv[1:]]
    return BATCH_SCRIPT % ("{ { " + shlex.join([*head, *env, *argv]) + AWAIT_INIT)


def _prepare(spec: LaunchSpec, sandbox: Sandbox) -> list[str]:
    """The execution's logs (made here, so their modes are the server's; Slurm appends to them)
    and its command line. In a worker thread."""
    check_program(spec)
    spec.stdout_path.parent.mkdir(mode=EXECUTION_DIR_MODE, parents=True, exist_ok=True)
    for path in (spec.stdout_path, spec.stderr_path):
        open_log(path).close()
    try:
        inputs = sandbox.prepare(spec.work_dir, spec.inputs)
    except OSError as exc:
        raise LaunchError(f"cannot prepare the execution folder: {exc}") from exc
    return sandbox.wrap(spec.argv, spec.work_dir, inputs, network=spec.network)


class SlurmJob(Running):
    """One submitted batch job; the backend's poller feeds it squeue's records."""

    def __init__(self, backend: "SlurmBackend", job_id: str, timeout: float | None,
                 work_dir: Path | None = None):
        self.backend = backend
        self.mark = work_dir / STARTED_MARK if work_dir is not None else None
        self.job_id = job_id
        self.timeout = timeout
        self.ref = ProcessRef("slurm", job_id=job_id)
        self.state = "PENDING"
        self.node: str | None = None
        self.running_since: float | None = None  # monotonic, when the poller saw it RUNNING
        self.started = asyncio.Event()
        self.ended: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self.canceled = False
        self.stopping = False
        self.missing = 0
        self.attached = False

    def update(self, record: dict) -> None:
        self.missing = 0
        self.state = job_state(record)
        self.node = record.get("nodes") or self.node
        self.ref.node = self.node
        if self.running_since is None and self.state not in ("PENDING", "CONFIGURING") \
                and self.state:
            self.running_since = time.monotonic()
            start = record.get("start_time")
            if self.attached and isinstance(start, int) and start > 0:
                # Started under a previous server: its timeout runs from Slurm's start time.
                self.running_since -= max(0.0, time.time() - start)
            self.started.set()
        if self.state in FINAL_STATES and not self.ended.done():
            self.ended.set_result(record)

    async def placed(self) -> None:
        ended = asyncio.ensure_future(asyncio.shield(self.ended))
        started = asyncio.ensure_future(self.started.wait())
        try:
            await asyncio.wait([ended, started], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            started.cancel()

    def vanished(self) -> None:
        """Not in squeue's answer: lost after MISSING_POLLS polls in a row."""
        self.missing += 1
        if self.missing >= MISSING_POLLS and not self.ended.done():
            self.ended.set_result({"job_state": "NODE_FAIL", "exit_code": None,
                                   "state_reason": "Slurm no longer knows the job"})

    async def _stop(self, grace: float) -> None:
        """SIGTERM to every process of the job, SIGKILL after `grace` seconds if it still runs."""
        self.stopping = True
        if not self.started.is_set():
            await self.backend.scancel(self.job_id)
            self.backend.poke()
            return
        await self.backend.scancel(self.job_id, "--signal=TERM", "--full")
        self.backend.poke()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ended), grace)
        if not self.ended.done():
            await self.backend.scancel(self.job_id, "--signal=USR2", "--batch")
            self.backend.poke()
            # A plain scancel (TERM again, then KILL after KillWait) only if the job still runs
            # a while later.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), KILL_WAIT)
            if not self.ended.done():
                await self.backend.scancel(self.job_id)
                self.backend.poke()

    async def wait(self) -> ExitReport:
        try:
            if self.timeout:
                await self.placed()
                if not self.ended.done() and self.running_since is not None:
                    await self._own_start()
                    left = self.running_since + self.timeout - time.monotonic()
                    try:
                        await asyncio.wait_for(asyncio.shield(self.ended), max(0.0, left))
                    except TimeoutError:
                        if not self.canceled:
                            await self._stop(self.backend.cancel_grace)
                            record = await self.ended
                            return ExitReport(TIMED_OUT, self._code(record),
                                              f"killed after {self.timeout:g} s")
            record = await self.ended
        finally:
            self.backend.forget(self.job_id)
        return self._report(record)

    async def _own_start(self) -> None:
        """Move running_since to when the batch script really started (its STARTED_MARK), once
        that shows up; from RUNNING if it does not within MARK_WAIT."""
        if self.mark is None or self.running_since is None:
            return
        waited = time.monotonic()
        while not self.ended.done() and time.monotonic() - waited < MARK_WAIT:
            try:
                started_at = (await asyncio.to_thread(self.mark.stat)).st_mtime
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self.running_since = time.monotonic() - max(0.0, time.time() - started_at)
            return

    def _code(self, record: dict) -> int | None:
        """The job's exit code as the local backend gives it: -N when killed by signal N (the
        batch script, and bwrap, exit 128 + N then)."""
        code = exit_code(record.get("exit_code"))
        if code is not None and 128 < code <= 128 + signal.NSIG:
            return 128 - code
        return code

    def _report(self, record: dict) -> ExitReport:
        state = job_state(record)
        code = self._code(record)
        reason = record.get("state_reason") or ""
        where = f"Slurm job {self.job_id}" + (f" on {self.node}" if self.node else "")
        if self.canceled:
            return ExitReport(CANCELED, code)
        if state in LOST_STATES:
            return ExitReport(LOST, code, f"{where} ended {state} ({reason})")
        if state in STATE_ERRORS:
            return ExitReport(EXITED, code, f"{where} ended {state}", error=STATE_ERRORS[state])
        if state == "CANCELLED":
            return ExitReport(EXITED, code, f"{where} was canceled outside Jobdeck",
                              error="unknown")
        if state not in ("COMPLETED", "FAILED"):
            return ExitReport(EXITED, code, f"{where} ended {state} ({reason})", error="unknown")
        return ExitReport(EXITED, code)

    async def cancel(self, grace: float) -> None:
        self.canceled = True
        if not self.ended.done() and not self.stopping:
            await self._stop(grace)


class SlurmBackend(Backend):
    name = "slurm"
    places_jobs = True

    def __init__(self, partition: str | None = None,
                 poll_interval: float = DEFAULTS.slurm_poll_interval,
                 extra_args: tuple[str, ...] | list[str] = (),
                 cancel_grace: float = DEFAULTS.cancel_grace, sandbox: Sandbox = NO_SANDBOX):
        self.partition = partition
        self.poll_interval = poll_interval
        self.extra_args = list(extra_args)
        self.cancel_grace = cancel_grace
        self.sandbox = sandbox
        self.jobs: dict[str, SlurmJob] = {}
        self.polls = 0
        self._poke = asyncio.Event()
        self._poller: asyncio.Task | None = None

    # -- life cycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """SettingsError (one line) when the CLI is missing or the controller does not answer."""
        for program in ("sbatch", "squeue", "scancel"):
            if shutil.which(program) is None:
                raise SettingsError(f"executor: slurm needs the Slurm CLI, but `{program}` is "
                                    "not on PATH (Debian: apt-get install slurm-client)")
        ping = await run_cli("sinfo", "-h", "-o", "%P", timeout=15)
        if ping.code != 0:
            conf = os.environ.get("SLURM_CONF", "the Slurm CLI's default slurm.conf")
            raise SettingsError(f"executor: slurm cannot reach the Slurm controller ({conf}): "
                                f"{ping.message()}")
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="jobdeck-slurm-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def cluster_nodes(self) -> list[ClusterNode] | None:
        """The nodes of `slurm_partition` (every node without one); None when sinfo fails."""
        try:
            return await read_nodes(self.partition)
        except SlurmCommandFailed as exc:
            log.warning("%s", exc)
            return None

    # -- the CLI -------------------------------------------------------------------------------

    async def scancel(self, job_id: str, *options: str) -> None:
        done = await run_cli("scancel", *options, job_id)
        if done.code != 0:
            log.warning("scancel %s %s: %s", " ".join(options), job_id, done.message())

    def sbatch_args(self, spec: LaunchSpec, argv: list[str]) -> list[str]:
        args = ["sbatch", "--parsable", f"--job-name=jobdeck-{spec.exe_id}",
                f"--chdir={spec.work_dir}", f"--output={spec.stdout_path}",
                f"--error={spec.stderr_path}", "--open-mode=append", "--export=NONE",
                "--no-requeue", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={max(1, math.ceil(spec.cpus))}",
                f"--mem={max(1, math.ceil(spec.mem))}M",
                f"--priority={slurm_priority(spec.priority)}"]
        limit = time_limit(spec.timeout, self.cancel_grace)
        if limit is not None:
            args.append(f"--time={limit}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        args += self.extra_args
        args += ["--wrap", batch_command(spec, argv, self.sandbox.on)]
        return args

    # -- Backend -------------------------------------------------------------------------------

    async def start(self, spec: LaunchSpec) -> Running:
        argv = await asyncio.to_thread(_prepare, spec, self.sandbox)
        done = await run_cli(*self.sbatch_args(spec, argv))
        if done.code != 0:
            raise LaunchError(f"Slurm refused the job: {done.message()}", "slurm-rejected")
        job_id = done.out.strip().split(";")[0]
        if not job_id.isdigit():
            raise LaunchError(f"sbatch gave no job id: {done.message()}", "slurm-rejected")
        job = SlurmJob(self, job_id, spec.timeout, spec.work_dir)
        self.jobs[job_id] = job
        if self._poller is None:  # a backend used without open() (a test's own engine)
            self._poller = asyncio.create_task(self._poll_loop(), name="jobdeck-slurm-poller")
        self.poke()
        return job

    async def _job_ids_of(self, exe: dict) -> set[str]:
        """The Slurm jobs of `exe`: the recorded job id, or those named after the execution that
        run in its folder (the server may have died before recording the id)."""
        ids = set()
        ref = exe.get("process") or {}
        if ref.get("backend") == "slurm" and ref.get("job_id"):
            ids.add(str(ref["job_id"]))
        elif exe.get("work_dir"):
            found = await run_cli("squeue", "-h", "-t", "all", "-n", f"jobdeck-{exe['id']}",
                                  "-o", "%i %Z")
            for line in found.out.splitlines():
                job_id, _, folder = line.partition(" ")
                if folder.strip() == exe["work_dir"]:
                    ids.add(job_id)
        return ids

    async def attach(self, exe: dict) -> Running | None:
        """Re-attach to the Slurm job a previous server submitted for `exe`: the poller reads
        its state (also the real outcome of one that ended meanwhile, while slurmctld still
        knows it: MinJobAge)."""
        ids = await self._job_ids_of(exe)
        if len(ids) != 1:
            return None
        job_id = ids.pop()
        job = SlurmJob(self, job_id, float(exe["timeout"]) if exe.get("timeout") else None,
                       Path(exe["work_dir"]) if exe.get("work_dir") else None)
        job.attached = True
        self.jobs[job_id] = job
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="jobdeck-slurm-poller")
        self.poke()
        return job

    async def reap(self, exe: dict) -> bool:
        """Cancel the Slurm job a dead server left for `exe` (one the engine could not attach
        to)."""
        ids = await self._job_ids_of(exe)
        alive = False
        for job_id in ids:
            state = await run_cli("squeue", "-h", "-j", job_id, "-o", "%T")
            if state.code == 0 and state.out.strip() and state.out.split()[0] not in FINAL_STATES:
                alive = True
            await self.scancel(job_id)
        return alive

    # -- the poller ----------------------------------------------------------------------------

    def poke(self) -> None:
        """Poll now rather than at the next interval."""
        self._poke.set()

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    async def _poll_loop(self) -> None:
        while True:
            self._poke.clear()
            try:
                if self.jobs:
                    await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("polling Slurm failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._poke.wait()
                await asyncio.sleep(0.05)  # pokes come in bursts: one poll serves them

    async def poll(self) -> None:
        """One squeue for every job this backend waits for."""
        ids = list(self.jobs)
        if not ids:
            return
        done = await run_cli("squeue", "--json", "-t", "all", "-j", ",".join(ids))
        self.polls += 1
        if done.code != 0:
            # An id slurmctld forgot makes the whole call fail: read every job instead.
            done = await run_cli("squeue", "--json", "-t", "all")
        if done.code != 0:
            log.warning("squeue failed: %s", done.message())
            return
        try:
            records = {str(r.get("job_id")): r for r in json.loads(done.out).get("jobs", [])}
        except (ValueError, AttributeError) as exc:
            log.warning("squeue gave no JSON: %s", exc)
            return
        for job_id in ids:
            job = self.jobs.get(job_id)
            if job is None:
                continue
            if job_id in records:
                job.update(records[job_id])
            else:
                job.vanished()
