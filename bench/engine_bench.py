"""Engine throughput: N trivial jobs (`true`) from submission to COMPLETED through the real
engine (local backend, embedded store), against spawning the same processes directly with the
same parallelism. The ratio is the engine's overhead per job; the target is <= 3."""

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from core.interface import validate_interface
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
        while await store.db.count("jobs", {"status": "COMPLETED"}) < count:
            failed = await store.db.count("jobs", {"status": "FAILED"})
            if failed:
                raise RuntimeError(f"{failed} bench jobs failed")
            await asyncio.sleep(0.05)
        engine_s = time.perf_counter() - started
        await engine.stop()
        engine = None
        direct_s = await direct(count, parallel)
        await store.close()
        ratio = engine_s / direct_s
        print(f"  {count} jobs: engine {engine_s:.2f} s, direct {direct_s:.2f} s, "
              f"ratio {ratio:.2f}", file=sys.stderr, flush=True)
        return {"case": f"{count} trivial jobs, {parallel} at a time", "jobs": count,
                "engine_s": engine_s, "jobs_per_s": count / engine_s, "direct_s": direct_s,
                "ratio": ratio, "target": f"<= {TARGET_RATIO:g}", "met": ratio <= TARGET_RATIO}
    finally:
        if engine is not None:
            await engine.stop()
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(work_dir, ignore_errors=True)
