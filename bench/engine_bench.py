"""Engine throughput: N trivial jobs (`true`) from submission to COMPLETED through a real
Jobdeck server (its engine's local backend, the embedded store; the jobs submitted from the
bench's own process), against its peers (bench/peers.py: Celery and RQ on a
private redis-server) and against spawning the same processes directly, all with the same
parallelism, in one run. Each job is submitted with one call, one after the other; the time runs
from the first submission to the last completion.

Jobdeck runs twice: with the job sandbox (bwrap, the default where it works) and without it,
like for like with Celery and RQ, which do not sandbox. Issue 13's target, Jobdeck / Celery
<= 1, is read without the sandbox; the sandboxed figures are reported beside it. Issue 1's
target, Jobdeck / direct spawn <= 3, is read with the sandbox, as before. "Its submissions
alone" is the time until Jobdeck's last submission was answered, the engine running meanwhile:
each submission waits for its two inserts on the store's one core. The store floor is the
store writes alone, one per status change of a job and its execution, 8 jobs at a time; the
submission floor the two inserts of each submission alone, one submission at a time, as the
bench submits, into collections without indexes; "submissions with no engine running" the
bench's own submissions (JobStore.submit_job: the same two inserts into the indexed jobs and
executions) with no server. All three are measured once per run, on a store of their own,
and shown over Celery's whole run: what Jobdeck's design costs on this store before it runs
anything."""

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import peers
from core.interface import validate_interface
from core.model import ExeStatus, JobStatus
from engine.sandbox import probe
from store import Store
from store.embedded import EmbeddedMongo

TARGET_RATIO = 3.0
TARGET_CELERY_RATIO = 1.0
SERVER_READY = 60.0  # seconds a Jobdeck server may take to start its engine
CPUS_PER_JOB = 0.25
SUBMISSION_FLOOR = "submission floor (two inserts per job)"
SUBMISSIONS_ALONE = "Jobdeck's submissions with no engine running"


def add_arguments(parser) -> None:
    parser.add_argument("--engine-jobs", type=int, default=1000,
                        help="trivial jobs to run through the engine")


def run(args) -> list[dict]:
    jobs = 100 if args.quick else getattr(args, "engine_jobs", 1000)
    return asyncio.run(measure(jobs))


async def direct(count: int, parallel: int) -> float:
    """Seconds to spawn and reap `count` `true` processes, `parallel` at a time."""
    program = shutil.which("true")
    gate = asyncio.Semaphore(parallel)

    async def one():
        async with gate:
            proc = await asyncio.create_subprocess_exec(program, start_new_session=True)
            await proc.wait()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - started


async def store_floor(store: Store, count: int, parallel: int) -> float:
    """Seconds for the six writes the status model needs per job (job and execution each
    created, started, ended), `parallel` jobs at a time, with no scheduling and no process: the
    least an engine that writes each status change on its own could take on this store."""
    jobs, exes = store.db["floor_jobs"], store.db["floor_exes"]
    gate = asyncio.Semaphore(parallel)

    async def one(n: int):
        async with gate:
            await exes.insert_one({"_id": n, "job_id": n, "status": ExeStatus.QUEUED})
            await jobs.insert_one({"_id": n, "status": JobStatus.QUEUED, "latest_exe_id": n})
            for before, after in ((JobStatus.QUEUED, JobStatus.RUNNING),
                                  (JobStatus.RUNNING, JobStatus.COMPLETED)):
                await exes.update_one({"_id": n, "status": before}, {"$set": {"status": after}})
                await jobs.update_one({"_id": n, "status": before}, {"$set": {"status": after}})

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return time.perf_counter() - started


async def submission_floor(store: Store, count: int) -> float:
    """Seconds for the two inserts a submission needs (its execution, then its job: the commit
    point), one submission after the other on the idle store, with no engine and no checks:
    the least `count` submissions made one at a time can take on this store."""
    jobs, exes = store.db["floor_submitted_jobs"], store.db["floor_submitted_exes"]
    started = time.perf_counter()
    for n in range(count):
        await exes.insert_one({"_id": n, "job_id": n, "status": ExeStatus.QUEUED})
        await jobs.insert_one({"_id": n, "status": JobStatus.QUEUED, "latest_exe_id": n})
    return time.perf_counter() - started


async def submissions_alone(url: str, count: int) -> float:
    """Seconds for `count` submissions as the bench makes them (JobStore.submit_job, one after
    the other) on a fresh database of the same store with no engine running: what Jobdeck's
    submissions cost before any job runs or competes with them for the store."""
    store = await Store(url, "jobdeck_submissions").open()
    try:
        job_type, event = await bench_job_type(store)
        started = time.perf_counter()
        for _ in range(count):
            await store.jobs.submit_job(job_type, {}, event, "")
        return time.perf_counter() - started
    finally:
        await store.close()


async def bench_job_type(store: Store) -> tuple[dict, dict]:
    """The bench's job type (`true`, CPUS_PER_JOB) and the trigger event its jobs share."""
    job_type = await store.job_types.create(
        "bench-true", "1.0", validate_interface({"command": "true", "command_arguments": ""}),
        {"cpus_required": CPUS_PER_JOB, "mem_required": 1.0, "max_tries": 1})
    return job_type, await store.jobs.create_event("USER", {"user": "bench"})


def start_server(url: str, work_dir: Path, parallel: int, sandbox: str) -> subprocess.Popen:
    """A Jobdeck server (API, live feed and engine) in its own process on the bench's store, as
    Celery's and RQ's workers run apart from the client that submits."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    return subprocess.Popen(
        [sys.executable, "server.py", "--mongo-url", url, "--db-name", "jobdeck",
         "--port", str(port), "--data-dir", str(work_dir / "data"),
         "--engine-cpus", f"{parallel * CPUS_PER_JOB:g}", "--engine-mem", f"{parallel * 128.0:g}",
         "--engine-poll-interval", "0.05", "--sandbox", sandbox],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def fresh_store():
    """(url, work folder) of an embedded store started for one measurement, removed after."""
    work_dir = Path(tempfile.mkdtemp(prefix="jobdeck-engine-bench-"))
    embedded = EmbeddedMongo(work_dir / "store")
    try:
        yield await asyncio.to_thread(embedded.start), work_dir
    finally:
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(work_dir, ignore_errors=True)


async def jobdeck(count: int, parallel: int, sandbox: str) -> tuple[float, float]:
    """Seconds for `count` trivial jobs through a Jobdeck server on a fresh store (`sandbox`:
    bwrap or none), each submitted from this process through the store, and the seconds until
    the last submission was answered (the engine runs meanwhile)."""
    async with fresh_store() as (url, work_dir):
        server = None
        try:
            store = await Store(url, "jobdeck").open()
            job_type, event = await bench_job_type(store)
            server = start_server(url, work_dir, parallel, sandbox)
            ready = time.monotonic() + SERVER_READY
            while not await store.engines.all():  # its engine has started
                if server.poll() is not None or time.monotonic() > ready:
                    raise RuntimeError("the Jobdeck server did not start its engine")
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            for _ in range(count):
                await store.jobs.submit_job(job_type, {}, event, "")
            submit_s = time.perf_counter() - started
            while await store.db.count("jobs", {"status": JobStatus.COMPLETED}) < count:
                failed = await store.db.count("jobs", {"status": JobStatus.FAILED})
                if failed:
                    raise RuntimeError(f"{failed} bench jobs failed")
                await asyncio.sleep(0.01)
            engine_s = time.perf_counter() - started
            await store.close()
            return engine_s, submit_s
        finally:
            if server is not None:
                await asyncio.to_thread(peers.stop, server)


async def floors(count: int, parallel: int) -> tuple[float, float, float]:
    """Seconds of the store floor, the submission floor and the submissions with no engine
    running, on a fresh store, once per run."""
    async with fresh_store() as (url, _):
        store = await Store(url, "jobdeck").open()
        try:
            floor_s = await store_floor(store, count, parallel)
            submission_s = await submission_floor(store, count)
        finally:
            await store.close()
        return floor_s, submission_s, await submissions_alone(url, count)


def ratio_row(case: str, count: int, over: float, under: float, target: float | None) -> dict:
    row = {"case": case, "jobs": count, "ratio": over / under}
    if target is not None:
        row.update(target=f"<= {target:g}", met=over / under <= target)
    return row


async def measure(count: int) -> list[dict]:
    parallel = int(float(os.cpu_count() or 1) / CPUS_PER_JOB)
    sandbox_works = not probe()
    sandboxed_s, _ = await jobdeck(count, parallel, "bwrap" if sandbox_works else "none")
    plain_s, submit_s = await jobdeck(count, parallel, "none")
    floor_s, submission_s, alone_s = await floors(count, parallel)
    direct_s = await direct(count, parallel)
    celery_s = await asyncio.to_thread(peers.celery_seconds, count, parallel)
    rq_s = await asyncio.to_thread(peers.rq_seconds, count, parallel)
    sandbox_note = "sandbox on" if sandbox_works else "sandbox unavailable: off"
    times = {f"Jobdeck ({sandbox_note})": sandboxed_s, "Jobdeck (sandbox off)": plain_s,
             "Jobdeck (sandbox off), its submissions alone": submit_s,
             "Celery (prefork, Redis)": celery_s, "RQ (Redis)": rq_s,
             "direct spawn": direct_s, "store floor (six writes per job)": floor_s,
             SUBMISSION_FLOOR: submission_s, SUBMISSIONS_ALONE: alone_s}
    print("  " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()),
          file=sys.stderr, flush=True)
    rows = [{"case": f"{name}: {count} trivial jobs, "
                     + ("one at a time" if name in (SUBMISSION_FLOOR, SUBMISSIONS_ALONE)
                        else f"{parallel} at a time"),
             "jobs": count,
             "seconds": seconds, "jobs_per_s": count / seconds}
            for name, seconds in times.items()]
    return [
        *rows,
        ratio_row("Jobdeck (sandbox off) over Celery", count, plain_s, celery_s,
                  TARGET_CELERY_RATIO),
        ratio_row(f"Jobdeck ({sandbox_note}) over Celery", count, sandboxed_s, celery_s, None),
        ratio_row("Jobdeck (sandbox off) over RQ", count, plain_s, rq_s, None),
        ratio_row(f"Jobdeck ({sandbox_note}) over direct spawn", count, sandboxed_s, direct_s,
                  TARGET_RATIO),
        ratio_row("Jobdeck (sandbox off) over direct spawn", count, plain_s, direct_s, None),
        ratio_row("store floor over direct spawn", count, floor_s, direct_s, None),
        ratio_row("store floor over Celery", count, floor_s, celery_s, None),
        ratio_row("submission floor over Celery", count, submission_s, celery_s, None),
        ratio_row("Jobdeck's submissions with no engine over Celery", count, alone_s, celery_s,
                  None)]
