"""Jobdeck on Slurm (issue 12) against bare sbatch, on the throwaway two-node cluster of
slurm/cluster.py (4 CPUs in all, so 4 trivial jobs at a time):

- throughput: N trivial jobs (`true`, 1 CPU each) through Jobdeck's engine with executor=slurm,
  from the first submission to the last completion, against the same N submitted straight with
  `sbatch` and polled with `squeue`. Target: ratio <= 1.3.
- latency: submit -> RUNNING at p50, one job at a time on the idle cluster, measured to the
  moment the job's own process starts (it prints time.time()): through Jobdeck (from the store's
  submission) against bare sbatch. Target: <= +0.3 s.
"""

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.interface import validate_interface
from core.model import JobStatus
from engine.scheduler import Engine
from slurm.cluster import ClusterUnavailable, start_cluster
from store import Store
from store.embedded import EmbeddedMongo

TARGET_RATIO = 1.3
TARGET_LATENCY = 0.3
# Slurm starts a job about 1 s or about 2 s after sbatch (one cycle more, in 1 of 8-16 runs, bare
# sbatch too): 10 samples let one run's p50 land on either; 20 keep it on the usual one.
LATENCY_SAMPLES = 20
PY = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
STAMP = "import time; print(repr(time.time()))"


def add_arguments(parser) -> None:
    parser.add_argument("--slurm-jobs", type=int, default=500,
                        help="trivial jobs for the Slurm throughput figure")


def run(args) -> list[dict]:
    count = 50 if args.quick else getattr(args, "slurm_jobs", 500)
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        return [{"case": "skipped", "error": str(exc)}]
    os.environ.update(cluster.env)
    try:
        return asyncio.run(measure(cluster, count))
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


def sbatch(folder: Path, *command: str, output: str = "/dev/null") -> str:
    done = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=1", "--mem=128M",
                           "--export=NONE", f"--chdir={folder}", f"--output={output}",
                           "--wrap", " ".join(command)], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def unfinished() -> int:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         check=True).stdout
    return len(out.split())


async def bare_throughput(folder: Path, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await asyncio.to_thread(sbatch, folder, "true")
    while await asyncio.to_thread(unfinished):
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def bare_latency(folder: Path) -> list[float]:
    samples = []
    for n in range(LATENCY_SAMPLES):
        out = folder / f"stamp-{n}.txt"
        submitted = time.time()
        await asyncio.to_thread(sbatch, folder, PY, "-c", f"'{STAMP}'", output=str(out))
        while not out.exists() or not out.read_text().strip():
            await asyncio.sleep(0.01)
        samples.append(float(out.read_text()) - submitted)
        while await asyncio.to_thread(unfinished):
            await asyncio.sleep(0.05)
    return samples


async def jobdeck_runs(store: Store, job_type: dict, event: dict, count: int, engine: Engine,
                       done_before: int) -> None:
    for _ in range(count):
        await store.jobs.submit_job(job_type, {}, event, "")
    engine.wake()
    while await store.db.count("jobs", {"status": JobStatus.COMPLETED}) < done_before + count:
        if await store.db.count("jobs", {"status": JobStatus.FAILED}):
            raise RuntimeError("bench jobs failed on Slurm")
        await asyncio.sleep(0.05)


async def jobdeck_latency(store: Store, engine: Engine, event: dict, data_dir: Path,
                          done_before: int) -> list[float]:
    job_type = await store.job_types.create(
        "bench-stamp", "1.0", validate_interface({"command": PY,
                                                  "command_arguments": f"-c '{STAMP}'"}),
        {"cpus_required": 1.0, "mem_required": 128.0, "max_tries": 1})
    samples = []
    for n in range(LATENCY_SAMPLES):
        submitted = time.time()
        _, exe = await store.jobs.submit_job(job_type, {}, event, "")
        engine.wake()
        out = data_dir / "executions" / str(exe["id"]) / "stdout.log"
        while not out.exists() or not out.read_text().strip():
            await asyncio.sleep(0.01)
        samples.append(float(out.read_text()) - submitted)
        while await store.db.count("jobs", {"status": JobStatus.COMPLETED}) < done_before + n + 1:
            await asyncio.sleep(0.05)
    return samples


async def measure(cluster, count: int) -> list[dict]:
    work_dir = Path(tempfile.mkdtemp(prefix="jobdeck-slurm-bench-"))
    embedded = EmbeddedMongo(work_dir / "store")
    url = await asyncio.to_thread(embedded.start)
    engine = None
    try:
        store = await Store(url, "jobdeck").open()
        event = await store.jobs.create_event("USER", {"user": "bench"})
        job_type = await store.job_types.create(
            "bench-true", "1.0", validate_interface({"command": "true", "command_arguments": ""}),
            {"cpus_required": 1.0, "mem_required": 128.0, "max_tries": 1})
        data_dir = work_dir / "data"
        engine = Engine(store, data_dir, poll_interval=0.05, executor="slurm",
                        cancel_grace=2.0)
        await engine.start()
        # Warm-up: the first job after slurmctld starts waits ~3 s for the scheduler.
        await jobdeck_runs(store, job_type, event, 1, engine, 0)
        started = time.perf_counter()
        await jobdeck_runs(store, job_type, event, count, engine, 1)
        jobdeck_s = time.perf_counter() - started
        jobdeck_lat = await jobdeck_latency(store, engine, event, data_dir, 1 + count)
        await engine.stop()
        engine = None
        await store.close()
        bare_dir = work_dir / "bare"
        bare_dir.mkdir()
        bare_s = await bare_throughput(bare_dir, count)
        bare_lat = await bare_latency(bare_dir)
    finally:
        if engine is not None:
            await engine.stop()
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(work_dir, ignore_errors=True)
    ratio = jobdeck_s / bare_s
    p50_jobdeck, p50_bare = statistics.median(jobdeck_lat), statistics.median(bare_lat)
    extra = p50_jobdeck - p50_bare
    print(f"  {count} jobs: Jobdeck {jobdeck_s:.2f} s, bare sbatch {bare_s:.2f} s, ratio "
          f"{ratio:.2f}; submit->running p50 Jobdeck {p50_jobdeck:.3f} s, bare "
          f"{p50_bare:.3f} s", file=sys.stderr, flush=True)
    return [
        {"case": f"{count} trivial jobs on Slurm (4 CPUs): Jobdeck / bare sbatch", "jobs": count,
         "jobdeck_s": jobdeck_s, "bare_s": bare_s, "ratio": ratio,
         "target": f"<= {TARGET_RATIO:g}", "met": ratio <= TARGET_RATIO},
        {"case": "submit -> RUNNING p50, Jobdeck minus bare sbatch (s)",
         "jobdeck_p50_s": p50_jobdeck, "bare_p50_s": p50_bare, "figure": round(extra, 3),
         "target": f"<= +{TARGET_LATENCY:g} s", "met": extra <= TARGET_LATENCY},
    ]
