"""Engine throughput: N trivial jobs (`true`) from submission to COMPLETED through the real
engine (local backend, embedded store), against spawning the same processes directly with the
same parallelism. The ratio is the engine's overhead per job; the target is <= 3. The store floor
is the same ratio for the store writes alone, one per status change of a job and its execution."""

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from core.interface import validate_interface
from core.model import ExeStatus, JobStatus
from engine.scheduler import Engine
from store import Store
from store.embedded import EmbeddedMongo

TARGET_RATIO = 3.0
CPUS_PER_JOB = 0.25


def add_arguments(parser) -> None:
    parser.add_argument("--engine-jobs", type=int, default=1000,
                        help="trivial jobs to run through the engine")


def run(args) -> list[dict]:
    jobs = 100 if args.quick else getattr(args, "engine_jobs", 1000)
    return [asyncio.run(measure(jobs))]


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


async def measure(count: int) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="jobdeck-engine-bench-"))
    embedded = EmbeddedMongo(work_dir / "store")
    url = await asyncio.to_thread(embedded.start)
    engine = None
    try:
        store = await Store(url, "jobdeck").open()
        cpus = float(os.cpu_count() or 1)
        parallel = int(cpus / CPUS_PER_JOB)
        job_type = await store.job_types.create(
            "bench-true", "1.0", validate_interface({"command": "true", "command_arguments": ""}),
            {"cpus_required": CPUS_PER_JOB, "mem_required": 1.0, "max_tries": 1})
        event = await store.jobs.create_event("USER", {"user": "bench"})
        engine = Engine(store, work_dir / "data", cpus=cpus, mem=parallel * 128.0,
                        poll_interval=0.05)
        await engine.start()
        started = time.perf_counter()
        for _ in range(count):
            await store.jobs.submit_job(job_type, {}, event, "")
        engine.wake()
        while await store.db.count("jobs", {"status": JobStatus.COMPLETED}) < count:
            failed = await store.db.count("jobs", {"status": JobStatus.FAILED})
            if failed:
                raise RuntimeError(f"{failed} bench jobs failed")
            await asyncio.sleep(0.05)
        engine_s = time.perf_counter() - started
        await engine.stop()
        engine = None
        direct_s = await direct(count, parallel)
        floor_s = await store_floor(store, count, parallel)
        await store.close()
        ratio = engine_s / direct_s
        print(f"  {count} jobs: engine {engine_s:.2f} s, direct {direct_s:.2f} s, "
              f"ratio {ratio:.2f}; the store's six writes per job alone {floor_s:.2f} s, "
              f"ratio {floor_s / direct_s:.2f}", file=sys.stderr, flush=True)
        return {"case": f"{count} trivial jobs, {parallel} at a time", "jobs": count,
                "engine_s": engine_s, "jobs_per_s": count / engine_s, "direct_s": direct_s,
                "store_floor_s": floor_s, "store_floor_ratio": floor_s / direct_s,
                "ratio": ratio, "target": f"<= {TARGET_RATIO:g}", "met": ratio <= TARGET_RATIO}
    finally:
        if engine is not None:
            await engine.stop()
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(work_dir, ignore_errors=True)
