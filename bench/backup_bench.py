"""Backup and restore of the embedded store at 100,000 seeded jobs (issue 15), and the server's
behaviour while the backup runs.

A fresh data folder under /tmp is seeded through an embedded nx-27017 (`seed_jobs`), which is
then stopped so that `server.py --data-dir` owns the folder (engine off, so nothing runs the
seeded QUEUED jobs; no auth). Writers and readers keep the server busy in closed loops
(`POST /queue/new-job/` and `GET /jobs/`) before and during `python server.py backup DEST`;
then the server stops and `python server.py restore DEST --data-dir NEW` restores into a new
folder, on which a server is started once to time its start and count the jobs it serves.

Rows: the backup and the restore (wall time of the command, Python start included, and the time
of the work itself from the manifest, or from the restore's own line), the first start on the
restored folder, and per phase (before, during the backup) the requests, median, p99 and max
latency and the errors (5xx or no answer).
"""

import asyncio
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.api_bench import free_port, stop_server
from store import Store
from store.embedded import EmbeddedMongo
from store.seed import seed_jobs

ROOT = Path(__file__).resolve().parent.parent
SEED_BATCH = 1000
WRITERS = 2
READERS = 2
BEFORE_SECONDS = 10.0


def add_arguments(parser) -> None:
    parser.add_argument("--backup-jobs", type=int, default=None,
                        help="jobs in the backed-up store (default 100,000; --quick 10,000)")


def run(args) -> list[dict]:
    jobs = args.backup_jobs or (10_000 if args.quick else 100_000)
    work = Path(tempfile.mkdtemp(prefix=f"jobdeck-bench-backup-{jobs}-"))
    try:
        asyncio.run(seed(work / "data", jobs))
        return measure(work / "data", work, jobs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def seed(data_dir: Path, jobs: int) -> None:
    embedded = EmbeddedMongo(data_dir, db_name="jobdeck")
    url = await asyncio.to_thread(embedded.start)
    try:
        store = await Store(url, "jobdeck").open()
        try:
            await seed_jobs(store, jobs, batch=SEED_BATCH,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(embedded.stop)


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen, int, float]:
    """server.py on `data_dir`; returns it, its port and the seconds until /health answered."""
    port = free_port()
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--data-dir", str(data_dir), "--port", str(port),
         "--engine", "false", "--no-auth"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    while time.monotonic() - began < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"server.py exited with {proc.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port, time.monotonic() - began
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("server.py did not answer /health within 300 s")


class Traffic:
    """Closed-loop writers and readers; each request is recorded as (start, seconds, ok)."""

    def __init__(self, port: int, job_type_id: int):
        self.port, self.job_type_id = port, job_type_id
        self.records: list[tuple[float, float, bool]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(write,), daemon=True)
                        for write in [True] * WRITERS + [False] * READERS]

    def loop(self, write: bool) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = json.dumps({"job_type_id": self.job_type_id,
                           "job_data": {"input_data": [{"name": "mode", "value": "fast"}]}})
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                if write:
                    conn.request("POST", "/queue/new-job/", body,
                                 {"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/jobs/?page_size=25&status=QUEUED")
                response = conn.getresponse()
                response.read()
                ok = response.status < 500
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.records.append((began, time.monotonic() - began, ok))

    def phase(self, name: str, start: float, end: float, jobs: int) -> dict:
        mine = [(s, ok) for t, s, ok in self.records if start <= t and t + s <= end]
        times = sorted(s for s, _ in mine) or [0.0]
        return {"case": f"requests {name}", "jobs": jobs, "seconds": round(end - start, 2),
                "requests": len(mine), "median_ms": quantile(times, 0.5) * 1000,
                "p99_ms": quantile(times, 0.99) * 1000, "max_ms": times[-1] * 1000,
                "errors": sum(1 for _, ok in mine if not ok)}


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def command(*args: str) -> tuple[float, str]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "server.py", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"server.py {args[0]} exited {done.returncode}: {done.stderr}")
    return time.monotonic() - began, done.stdout


def measure(data_dir: Path, work: Path, jobs: int) -> list[dict]:
    rows = []
    store_mb = (data_dir / "jobdeck.db").stat().st_size / 1e6
    proc, port, _ = start(data_dir, work / "server.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/job-types/")
        job_type_id = json.loads(conn.getresponse().read())["results"][0]["id"]
        traffic = Traffic(port, job_type_id)
        for thread in traffic.threads:
            thread.start()
        began = time.monotonic()
        time.sleep(BEFORE_SECONDS)
        backup_began = time.monotonic()
        seconds, _ = command("backup", str(work / "backup"), "--data-dir", str(data_dir))
        backup_ended = time.monotonic()
        traffic.stop.set()
        for thread in traffic.threads:
            thread.join()
    finally:
        stop_server(proc)
    manifest = json.loads((work / "backup" / "manifest.json").read_text())
    main = manifest["store"][0]
    rows.append({"case": "backup", "jobs": jobs, "store_mb": round(store_mb, 1),
                 "backup_mb": round(main["bytes"] / 1e6, 1), "seconds": round(seconds, 2),
                 "work_seconds": manifest["seconds"],
                 "copy_seconds": main["copy_seconds"],
                 "jobs_in_backup": main["collections"]["jobs"]})
    rows.append(traffic.phase("before the backup", began, backup_began, jobs))
    rows.append(traffic.phase("during the backup", backup_began, backup_ended, jobs))
    seconds, line = command("restore", str(work / "backup"), "--data-dir", str(work / "new"))
    found = re.search(r" in ([\d.]+) s[;:]", line)
    rows.append({"case": "restore", "jobs": jobs, "seconds": round(seconds, 2),
                 "work_seconds": float(found.group(1)) if found else None})
    proc, port, ready = start(work / "new", work / "restored.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", "/jobs/?page_size=1")
        served = json.loads(conn.getresponse().read())["count"]
    finally:
        stop_server(proc)
    rows.append({"case": "first start on the restored folder", "jobs": jobs,
                 "seconds": round(ready, 2), "jobs_served": served,
                 "met": served == main["collections"]["jobs"]})
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    by_case = {row.get("case"): row for row in rows}
    for row in rows:
        if row.get("case") == "FAILED":
            out.append({"what": "FAILED", "figure": str(row.get("error"))[:100],
                        "target": "runs", "met": False})
    if "backup" in by_case:
        row = by_case["backup"]
        out.append({"what": f"backup, online, of {row['jobs']:,} jobs ({row['store_mb']:.0f} MB "
                            f"store): command s (work s, of which the store copy s)",
                    "figure": f"{row['seconds']:.1f} ({row['work_seconds']:.1f}, "
                              f"{row['copy_seconds']:.2f})",
                    "target": "(report)", "met": None})
    if "restore" in by_case:
        row = by_case["restore"]
        out.append({"what": f"restore of {row['jobs']:,} jobs into a new folder: command s "
                            f"(work s)",
                    "figure": f"{row['seconds']:.1f} ({row['work_seconds']:.1f})",
                    "target": "(report)", "met": None})
    before, during = by_case.get("requests before the backup"), \
        by_case.get("requests during the backup")
    if before and during:
        out.append({"what": "requests during the backup: median / p99 ms (before: median / "
                            "p99)",
                    "figure": f"{during['median_ms']:.0f} / {during['p99_ms']:.0f} "
                              f"({before['median_ms']:.0f} / {before['p99_ms']:.0f})",
                    "target": "(report)", "met": None})
        out.append({"what": f"errors (5xx, no answer) of {during['requests']:,} requests during "
                            "the backup",
                    "figure": during["errors"], "target": "= 0", "met": during["errors"] == 0})
    first = by_case.get("first start on the restored folder")
    if first:
        out.append({"what": "restored folder: a server serves every backed-up job",
                    "figure": f"{first['jobs_served']:,} jobs, ready in {first['seconds']:.1f} s",
                    "target": "all", "met": first["met"]})
    return out
