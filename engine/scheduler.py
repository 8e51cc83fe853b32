"""The scheduler: claims QUEUED executions in priority order when this node has room for them,
runs them through a backend, watches for cancels, and recovers after a crash.

Claims go through `store.jobs.start_executions`, conditional updates written as one group per
pass, so two server processes on one store never start the same execution. CPUs and memory in use are read from the store's
RUNNING executions of this node, so two processes on one machine share its capacity.

Each engine heartbeats (store/engines.py) every `dead_after / BEATS_PER_DEADLINE` seconds and
watches the others' heartbeats: the RUNNING executions of an engine whose heartbeat this engine
has seen unchanged for `dead_after` seconds are failed as `node-lost` (and retried), whatever its
pid looks like here. At start, executions of this node whose engine's process is gone (or a
zombie) are recovered at once.

A backend that places jobs itself (Slurm, engine/slurm.py) gets every job the scheduler may start
(is_paused, max_scheduled and priority order still apply; CPUs and memory are the cluster's
business). Its jobs outlive the engine: a stopping engine leaves them running, and an engine
starting on the node attaches to those of engines that are gone (by their Slurm job id) and
records their real outcome; only one it cannot find is failed as node-lost.
"""

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from pathlib import Path

import psutil
from pymongo.errors import PyMongoError

from core.model import FINAL_EXE_STATUSES, MIN_CPUS, MIN_MEM
from core.private import private_dir
from core.settings import DEFAULTS
from core.times import now_ms
from engine.executor import Backend, ClusterNode, Running, cluster_node_fields, placement_problem
from engine.local import LocalBackend
from engine.runner import ExecutionRunner, claim_fields
from engine.sandbox import make_sandbox
from engine.slurm import SlurmBackend
from store import Store

log = logging.getLogger("jobdeck.engine")

# How many QUEUED jobs one scheduling pass looks at.
SCAN_LIMIT = 200
MIB = 1024 * 1024
# Seconds a wake-up waits for others before the pass it triggers.
WAKE_SETTLE = 0.005
# Seconds between reads of the node's pause state (and touches of its last_offer).
NODE_REFRESH = 1.0
# Heartbeats per `dead_after`: an engine is declared dead only after missing about this many.
BEATS_PER_DEADLINE = 6


def machine_capacity() -> tuple[float, float]:
    """This machine's logical CPUs and memory in MiB."""
    return float(psutil.cpu_count() or 1), psutil.virtual_memory().total / MIB


def process_identity() -> dict:
    """Who runs the engine: a restarted server tells its own executions from a dead one's; `id`
    names this engine's heartbeat (two engines in one process have their own)."""
    pid = os.getpid()
    return {"pid": pid, "started": psutil.Process(pid).create_time(), "id": uuid.uuid4().hex}


def alive(identity: dict | None) -> bool:
    """Whether the process that ran an engine on this machine still runs: its pid, with the same
    creation time, and not a zombie (a killed server its parent has not reaped yet)."""
    if not identity or not identity.get("pid"):
        return False
    try:
        process = psutil.Process(identity["pid"])
        return (process.create_time() == identity.get("started")
                and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD))
    except psutil.Error:
        return False


class Engine:
    def __init__(self, store: Store, data_dir, cpus: float | None = None,
                 mem: float | None = None, cancel_grace: float = DEFAULTS.cancel_grace,
                 poll_interval: float = DEFAULTS.engine_poll_interval,
                 reserve_after: float = DEFAULTS.engine_reserve_after,
                 hostname: str | None = None, port: int | None = None,
                 backend: Backend | None = None,
                 dead_after: float = DEFAULTS.engine_dead_after,
                 sandbox: str | None = DEFAULTS.sandbox, job_user: str = DEFAULTS.job_user,
                 executor: str = DEFAULTS.executor,
                 slurm_partition: str | None = DEFAULTS.slurm_partition,
                 slurm_poll_interval: float = DEFAULTS.slurm_poll_interval,
                 slurm_extra_args: tuple[str, ...] = DEFAULTS.slurm_extra_args):
        default_cpus, default_mem = machine_capacity()
        self.store = store
        self.nodes = store.nodes
        self.engines = store.engines
        self.data_dir = Path(data_dir).resolve()
        self.cpus = float(cpus) if cpus else default_cpus
        self.mem = float(mem) if mem else default_mem
        self.cancel_grace = cancel_grace
        self.poll_interval = poll_interval
        self.reserve_after_ms = reserve_after * 1000
        self.dead_after = dead_after
        self.hostname = hostname or socket.gethostname()
        self.port = port
        # The job sandbox (engine/sandbox.py): bwrap where it works unless `sandbox` says.
        # The backend (`executor`): local processes, or batch jobs on a Slurm cluster.
        if backend is None and executor == "slurm":
            backend = SlurmBackend(slurm_partition, slurm_poll_interval, slurm_extra_args,
                                   cancel_grace=cancel_grace,
                                   sandbox=make_sandbox(sandbox, job_user, self.data_dir))
        elif backend is None:
            backend = LocalBackend(timeout_grace=cancel_grace,
                                   sandbox=make_sandbox(sandbox, job_user, self.data_dir))
        self.backend = backend
        self.identity = process_identity()
        self.node: dict | None = None
        self.runners: dict[int, ExecutionRunner] = {}
        # Executions whose claim is being written: RUNNING in the store, not yet with a runner.
        # A recovery leaves them alone and notes it (`_recover_after_claims`): one whose claim
        # then fails has no runner, and is recovered once the claims in flight end.
        self.claiming: set[int] = set()
        self._recover_after_claims = False
        self.tasks: dict[int, asyncio.Task] = {}
        self._cancels: set[asyncio.Task] = set()  # runners being stopped by _watch_cancels
        self.passes = 0
        self.interfaces: dict[int, dict] = {}
        self.node_paused = False
        # The cluster's nodes, as the backend last reported them (a backend that places jobs).
        self.cluster: list[ClusterNode] = []
        self._node_checked = 0.0
        self._cancels_checked = 0.0
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._beat_task: asyncio.Task | None = None
        # Other engines' heartbeats: id -> (the beat last read, when it was first read).
        self._heard: dict[str, tuple] = {}
        # Set by drain(): no execution starts any more; the rest of the loop goes on.
        self.draining = False
        self._last_runner: ExecutionRunner | None = None  # the one _launch made last

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the node, recover executions a dead server left RUNNING, start scheduling."""
        private_dir(self.data_dir / "executions")
        await self.backend.open()
        self.node = await self.nodes.register(self.hostname, self.port, self.cpus, self.mem)
        await self._beat()
        await self.recover()
        self._loop_task = asyncio.create_task(self._loop(), name="jobdeck-engine")
        self._beat_task = asyncio.create_task(self._heartbeat(), name="jobdeck-engine-heartbeat")
        # Outcomes that could not be written while the store could not write are recovered.
        self.store.writes.on_recovered(self.recover)
        log.info("engine on node %s (%s): %g CPUs, %.0f MiB", self.node_id, self.hostname,
                 self.cpus, self.mem)

    async def stop(self) -> None:
        """Stop scheduling; running executions are stopped and failed with `scheduler-lost`
        (SYSTEM, so they are retried while tries remain)."""
        for task in (self._loop_task, self._beat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = self._beat_task = None
        self.store.writes.forget(self.recover)
        runners = list(self.runners.values())
        if self.backend.places_jobs:
            # The cluster keeps running what it was given: the next engine attaches to it.
            kept = [r for r in runners if r.running is not None and not r.ending]
            for runner in kept:
                await runner.detach()
                self.tasks[runner.exe_id].cancel()
            runners = [r for r in runners if r not in kept]
            if kept:
                log.info("engine stopped; %d executions keep running on %s for the next "
                         "engine to attach to", len(kept), self.backend.name)
        await asyncio.gather(*(r.cancel(self.cancel_grace) for r in runners),
                             return_exceptions=True)
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        error = await self.store.errors.by_name("scheduler-lost")
        for runner in runners:
            await self.store.jobs.fail_execution(runner.exe_id, error,
                                                 command_arguments=runner.arguments)
        if runners:
            log.info("engine stopped %d running executions (scheduler-lost, retried while "
                     "tries remain)", len(runners))
        with contextlib.suppress(PyMongoError):
            await self.engines.forget(self.identity["id"])
        await self.backend.close()

    @property
    def node_id(self) -> int:
        """The id of the node start() registered this engine on."""
        if self.node is None:
            raise RuntimeError("the engine has no node before start()")
        return self.node["id"]

    async def interface_of(self, rev_id: int) -> dict:
        """A job type revision's interface (revisions never change, so they are cached)."""
        if rev_id not in self.interfaces:
            rev = await self.store.job_types.get_revision(rev_id)
            if rev is None:  # the runner fails its execution (`unknown`)
                raise LookupError(f"job type revision {rev_id} is not in the store")
            self.interfaces[rev_id] = rev["interface"]
        return self.interfaces[rev_id]

    async def drain(self, timeout: float) -> int:
        """Stop starting executions (cancels are still watched and heartbeats still sent) and
        wait up to `timeout` seconds for the running ones to end; how many still run."""
        self.draining = True
        deadline = time.monotonic() + timeout
        # A pass under way may still launch the claim it is making: let it end first.
        passes = self.passes
        self.wake()
        while (self.passes == passes and self._loop_task is not None
               and time.monotonic() < deadline):
            await asyncio.sleep(0.01)
        while self.tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(list(self.tasks.values()), timeout=left)
        return len(self.runners)

    def wake(self) -> None:
        """Schedule now rather than at the next poll (e.g. after a submission)."""
        self._wake.set()

    async def recover(self) -> int:
        """Fail with `node-lost` the RUNNING executions of this node whose server died, after
        killing whatever they left running; also this engine's own that no runner holds any more
        (their outcome could not be written while the store was down; run after it is back), but
        not those whose claim is still being written (their runners come once it is)."""
        lost = []
        beating: set | None = None
        for exe in await self.store.jobs.running_exes_of_node(self.node_id):
            ours = exe.get("engine") == self.identity
            if ours or exe["id"] in self.runners:
                if self._runnerless(exe["id"]):
                    lost.append(exe)
                continue
            if self.backend.places_jobs:
                if beating is None:
                    beating = {doc["_id"] for doc in await self.engines.all()}
                engine = exe.get("engine") or {}
                gone = not alive(engine) or engine.get("id") not in beating
                if gone and not await self._attach(exe):
                    lost.append(exe)
                continue
            if not alive(exe.get("engine")):
                lost.append(exe)
        recovered = await self._fail_lost(lost)
        if recovered:
            log.warning("failed %d executions left running by a dead server, or whose outcome "
                        "the store could not write (node-lost)", recovered)
        finished = await self.store.jobs.finish_half_ended_jobs()
        if finished:
            log.warning("finished %d jobs left RUNNING after their execution ended (the store "
                        "went down between the two writes)", finished)
        return recovered + finished

    def _runnerless(self, exe_id: int) -> bool:
        """Whether this engine's RUNNING execution `exe_id` has no runner; one whose claim is
        still being written has none yet, and is looked at again once the claims end."""
        if exe_id in self.claiming:
            self._recover_after_claims = True
            return False
        return exe_id not in self.runners

    async def _attach(self, exe: dict) -> bool:
        """Take over an execution a stopped engine left running on the cluster (Slurm): a
        runner waits for its job and records its real outcome. False when there is no job to
        attach to."""
        job = await self.store.jobs.get_job(exe["job_id"])
        job_type = (await self.store.job_types.by_ids([job["job_type_id"]])).get(
            job["job_type_id"]) if job else None
        if job is None or job_type is None:
            return False
        running = await self.backend.attach(exe)
        if running is None:
            return False
        await self.store.jobs.update_execution(exe["id"], engine=self.identity)
        log.info("execution %s: attached to its %s job %s", exe["id"], self.backend.name,
                 running.ref.job_id)
        self._launch(job, exe, job_type, attach=running)
        return True

    async def _fail_lost(self, exes: list[dict]) -> int:
        """Fail `exes` with `node-lost` (retried per max_tries), first killing what they left
        running if they ran on this node; how many were still RUNNING."""
        if not exes:
            return 0
        error = await self.store.errors.by_name("node-lost")
        recovered = 0
        for exe in exes:
            if exe.get("node_id") == self.node_id and await self.backend.reap(exe):
                log.info("execution %s: killed the process a dead server left", exe["id"])
            job = await self.store.jobs.get_job(exe["job_id"])
            rev = await self.store.job_types.get_revision(job["job_type_rev_id"]) if job else None
            arguments = rev["interface"]["command_arguments"] if rev else ""
            if await self.store.jobs.fail_execution(exe["id"], error,
                                                    command_arguments=arguments):
                recovered += 1
        if recovered:
            self.wake()  # their CPUs and memory are free again
        return recovered

    # -- heartbeats ----------------------------------------------------------------------------

    async def _beat(self) -> None:
        await self.engines.beat(self.identity["id"], {
            "node_id": self.node_id, "hostname": self.hostname, "pid": self.identity["pid"],
            "started": self.identity["started"], "dead_after": self.dead_after})

    async def _heartbeat(self) -> None:
        """Beat, then look for engines that stopped beating, every `dead_after / 6` seconds (two
        store round trips), in a task of its own so that a long scheduling pass never delays a
        beat."""
        while True:
            await asyncio.sleep(self.dead_after / BEATS_PER_DEADLINE)
            try:
                await self._beat()
                await self.recover_silent()
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                # Nobody could beat meanwhile: watch every engine afresh once the store is back.
                self._heard.clear()
                self.store.writes.failed(exc)  # a full disk: noted (and logged) once
                log.debug("heartbeat: the store is unavailable (%s)", exc)
            except Exception:
                log.exception("heartbeat failed; retrying")

    async def recover_silent(self) -> int:
        """Fail with `node-lost` the RUNNING executions of every other engine whose heartbeat
        this engine has seen unchanged for `dead_after` seconds (or that engine's own longer
        `dead_after`), even if its pid looks alive: a hung server, a zombie, an engine on
        another machine, a pid reused in another namespace. Time is measured here, on this
        engine's clock, so clocks that disagree across machines do not matter."""
        now = time.monotonic()
        heard, silent = {}, []
        for doc in await self.engines.all():
            if doc["_id"] == self.identity["id"]:
                continue
            beat, since = self._heard.get(doc["_id"], (None, now))
            if beat != doc.get("beat"):
                since = now
            heard[doc["_id"]] = (doc.get("beat"), since)
            if now - since >= max(self.dead_after, doc.get("dead_after") or 0):
                silent.append((doc, now - since))
        self._heard = heard
        recovered = 0
        for doc, silence in silent:
            exes = [exe for exe in await self.store.jobs.running_exes_of_node(doc["node_id"])
                    if (exe.get("engine") or {}).get("id") == doc["_id"]]
            count = await self._fail_lost(exes)
            await self.engines.forget(doc["_id"])
            self._heard.pop(doc["_id"], None)
            recovered += count
            if count:
                log.warning("engine %s (pid %s on %s) has not heartbeaten for %.1f s: failed its "
                            "%d running executions (node-lost)", doc["_id"], doc.get("pid"),
                            doc.get("hostname"), silence, count)
        return recovered

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        """A pass at each wake-up (an execution ended, a submission) or poll interval; passes
        back to back only while a full scan may have left fitting jobs unseen."""
        while True:
            self._wake.clear()
            again = False
            try:
                now = time.monotonic()
                if now - self._cancels_checked >= self.poll_interval:
                    self._cancels_checked = now
                    await self._watch_cancels()
                if now - self._node_checked >= NODE_REFRESH:
                    self._node_checked = now
                    await self._refresh_node()
                again = await self.schedule() == SCAN_LIMIT
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                if self.store.writes.failed(exc) is not None:
                    # A full disk: one warning per outage, from store/writes.py.
                    log.debug("scheduling pass: the store cannot write (%s)", exc)
                else:
                    log.warning("scheduling pass: the store is unavailable (%s); retrying", exc)
            except Exception:
                log.exception("scheduling pass failed; retrying")
            self.passes += 1
            if again:
                continue
            with contextlib.suppress(TimeoutError):
                # Not wait_for: on Python 3.11 it swallows a cancel that arrives as the wake-up
                # does (an execution ending as the server stops), and stop() then waits forever.
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
                # Wake-ups come in bursts (executions ending together): one pass serves them all.
                await asyncio.sleep(WAKE_SETTLE)

    async def _watch_cancels(self) -> None:
        """Executions canceled in the store (PATCH /jobs/{id}/) are stopped here."""
        statuses = await self.store.jobs.exe_statuses(self.runners)
        for exe_id, status in statuses.items():
            runner = self.runners.get(exe_id)
            # A runner that is recording its own outcome wrote that final status itself.
            if (runner is not None and status in FINAL_EXE_STATUSES and not runner.canceled
                    and not runner.ending):
                log.info("execution %s is %s in the store; stopping it", exe_id, status)
                # Held until done: the loop keeps only a weak reference to a task.
                task = asyncio.create_task(runner.cancel(self.cancel_grace),
                                           name=f"jobdeck-cancel-{exe_id}")
                self._cancels.add(task)
                task.add_done_callback(self._cancels.discard)

    async def _refresh_node(self) -> None:
        """Read the node's pause state and tell the store this engine is alive."""
        node = await self.nodes.get(self.node_id)
        self.node_paused = node is None or bool(node.get("is_paused"))
        await self.nodes.touch(self.node_id)
        await self._sync_cluster()

    async def _sync_cluster(self) -> None:
        """Record the cluster's nodes (a backend that places jobs: their state, size and drain)
        in the store, for /nodes/ and for holding back jobs no node can take."""
        nodes = await self.backend.cluster_nodes()
        if nodes is None:
            return
        self.cluster = nodes
        await self.nodes.sync_cluster([cluster_node_fields(n) for n in nodes])

    def _unplaceable(self, job: dict) -> bool:
        """Whether no node of the cluster can take the job (it stays QUEUED, and the API says
        why, rather than being refused by the cluster)."""
        return self.backend.places_jobs and placement_problem(
            job["cpus_required"], job["mem_required"], self.cluster) is not None

    def _fits_at_most(self) -> int:
        """How many jobs the room this engine's own running jobs leave could hold at most, each
        needing MIN_CPUS and MIN_MEM (SCAN_LIMIT for a backend that places jobs). Those jobs are
        RUNNING in the store, so the node's usage there is at least theirs: at 0 a pass need not
        read the store, and a pass needs no more candidates than this unless it skips some."""
        if self.backend.places_jobs:
            return SCAN_LIMIT
        running = [r.job for r in self.runners.values() if not r.ending]
        cpus = self.cpus - sum(job["cpus_required"] for job in running)
        mem = self.mem - sum(job["mem_required"] for job in running)
        return max(0, min(SCAN_LIMIT, math.floor(cpus / MIN_CPUS + 1e-9),
                          math.floor(mem / MIN_MEM + 1e-9)))

    def _room(self, usage: dict) -> tuple[float, float]:
        """The CPUs and memory free on the node, given the `usage` just read from the store.
        Executions whose completion waits for its group (store.jobs.ending: not sent yet, so
        still RUNNING in that usage) leave their room now; this pass's claims join their group.
        Read after the usage, so a group sent meanwhile is counted as in use (never twice)."""
        free_cpus, free_mem = self.cpus - usage["cpus"], self.mem - usage["mem"]
        for exe_id in self.store.jobs.ending():
            runner = self.runners.get(exe_id)
            if runner is not None:
                free_cpus += runner.job["cpus_required"]
                free_mem += runner.job["mem_required"]
        return free_cpus, free_mem

    async def schedule(self) -> int:
        """One pass: start every QUEUED execution that fits, best priority first.

        Smaller jobs ranked lower may use room a larger job is waiting for, but not forever: a
        job queued for `reserve_after` seconds that would fit an idle node reserves the node,
        and nothing ranked after it starts until it has.

        The pass reads only as many QUEUED jobs as could fit (_fits_at_most: a read of 200 of a
        long queue costs the store several times one of 8); when it left one of them unstarted
        with room to spare, ranked lower ones may fit, and it reads SCAN_LIMIT as before."""
        most = self._fits_at_most()
        if self.node_paused or self.draining or most == 0:
            return 0
        started, unseen = await self._pass(most)
        if unseen:
            started += (await self._pass(SCAN_LIMIT))[0]
        return started

    async def _pass(self, limit: int) -> tuple[int, bool]:
        """Start what fits of the first `limit` QUEUED jobs: how many started, and whether
        jobs past them, unread, might fit too."""
        candidates = await self.store.jobs.queued_jobs(limit)
        if not candidates:
            return 0, False
        usage, job_types = await asyncio.gather(  # side by side: one wait, not two
            self.store.jobs.node_usage(self.node_id),
            self.store.job_types.by_ids(c["job_type_id"] for c in candidates))
        free_cpus, free_mem = self._room(usage)
        limited = any(t.get("max_scheduled") is not None for t in job_types.values())
        running = await self.store.jobs.running_counts_by_type() if limited else {}
        reserving_since = now_ms() - self.reserve_after_ms  # queued by then: may reserve
        claims: list[tuple[dict, dict]] = []  # (job, its job type), written together below
        reserved = False
        for job in candidates:
            if self.draining:
                break
            job_type = job_types.get(job["job_type_id"])
            if job_type is None or job_type.get("is_paused") or job.get("latest_exe_id") is None \
                    or self._unplaceable(job):
                continue
            limit_of_type = job_type.get("max_scheduled")
            if limit_of_type is not None and running.get(job_type["id"], 0) >= limit_of_type:
                continue
            cpus, mem = job["cpus_required"], job["mem_required"]
            # A backend that places jobs (Slurm) gets them all: its cluster has the room.
            if not self.backend.places_jobs and (cpus > free_cpus + 1e-9
                                                 or mem > free_mem + 1e-9):
                if (cpus <= self.cpus + 1e-9 and mem <= self.mem + 1e-9
                        and job["queued"] <= reserving_since):
                    reserved = True
                    break
                continue
            free_cpus -= cpus
            free_mem -= mem
            running[job_type["id"]] = running.get(job_type["id"], 0) + 1
            claims.append((job, job_type))
        unseen = (len(candidates) == limit < SCAN_LIMIT and len(claims) < limit and not reserved
                  and not self.draining and free_cpus >= MIN_CPUS - 1e-9
                  and free_mem >= MIN_MEM - 1e-9)
        return await self._claim(claims), unseen

    async def _claim(self, claims: list[tuple[dict, dict]]) -> int:
        """Claim the pass's executions in one group (store.jobs.start_executions: a few store
        commands however many) and launch those claimed; how many were. One lost to another
        server or a cancel leaves its room for the next pass; a claim the store refused is
        raised once the others are launched."""
        if not claims or self.draining:
            return 0
        when = now_ms()
        claiming = {job["latest_exe_id"] for job, _ in claims}
        self.claiming |= claiming
        try:
            return await self._claim_and_launch(claims, when)
        finally:
            self.claiming -= claiming
            if self._recover_after_claims and not self.claiming:
                self._recover_after_claims = False
                with contextlib.suppress(PyMongoError):  # the store is down: it recovers later
                    await self.recover()

    async def _claim_and_launch(self, claims: list[tuple[dict, dict]], when: int) -> int:
        written = await self.store.jobs.start_executions([(
            job["latest_exe_id"], job["id"], {
                "cpus_scheduled": job["cpus_required"], "mem_scheduled": job["mem_required"],
                "disk_in_scheduled": job.get("disk_in_required"),
                "disk_out_scheduled": job.get("disk_out_required"),
                "disk_total_scheduled": (job.get("disk_in_required") or 0.0)
                + (job.get("disk_out_required") or 0.0),
                "engine": self.identity,
                **claim_fields(self.data_dir, job["latest_exe_id"], when)})
            for job, _ in claims], self.node_id, when)
        started, refused = 0, None
        for (_, job_type), claimed in zip(claims, written, strict=True):
            if isinstance(claimed, PyMongoError):
                refused = claimed
            elif claimed is not None:
                self._launch(*claimed, job_type)
                started += 1
        if refused is not None:  # the loop notes it (a full disk: recovery once it writes)
            raise refused
        return started

    def _launch(self, job: dict, exe: dict, job_type: dict, attach: Running | None = None) -> None:
        # A backend that places jobs (Slurm) gets them in launch order, which is priority order:
        # claimed together, their runners would otherwise race to it.
        turn = self._last_runner.handed if self._last_runner and self.backend.places_jobs \
            else None
        runner = self._last_runner = ExecutionRunner(self, job, exe, job_type, turn)
        self.runners[exe["id"]] = runner
        task = asyncio.create_task(runner.run(attach), name=f"jobdeck-exe-{exe['id']}")
        self.tasks[exe["id"]] = task

        def finished(_task, exe_id=exe["id"]):
            self.runners.pop(exe_id, None)
            self.tasks.pop(exe_id, None)
            self._wake.set()

        task.add_done_callback(finished)
