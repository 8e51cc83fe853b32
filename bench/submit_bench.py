"""Sustained submissions: `POST /queue/new-job/` per second with 8 concurrent clients.

A fresh embedded nx-27017, one job type, then `server.py` (engine off, auth on with one operator
token) as a child process. Each client is a thread with its own keep-alive connection that
submits jobs back to back for `--submit-seconds` after a short warm-up; the figure is the 201s
answered per second. Issue 13's target: at least 3x the rate measured before its work
(BASELINE_PER_SECOND, measured on this machine with this same script).

The rate depends on what else the machine runs; the CPU time the server and the store spend per
submission (read from /proc over the timed window) does much less, so it is reported beside it,
against its own baseline.
"""

import asyncio
import http.client
import json
import os
import threading
import time

from bench.api_bench import fresh_store, start_server, stop_server
from core.interface import validate_interface
from store import Store

CLIENTS = 8
WARM_UP_SECONDS = 1.0
TOKEN = "bench-operator-token-0123456789abcdef"
# Before issue 13 (12 store commands per submission), measured with this script on the 2-CPU
# development machine (main at 34775c0) while other work ran on it: 79.5 to 125.7 submissions per
# second over ten runs (mean 105), and 8.7 to 9.1 ms of CPU per submission (server 3.4-3.5,
# store 5.3-5.5). Back to back with issue 13's code: 94.7 against 324.8, 106.9 against 282.9.
BASELINE_PER_SECOND = 105.0
BASELINE_CPU_MS = 8.9
TARGET_FACTOR = 3.0


def add_arguments(parser) -> None:
    parser.add_argument("--submit-seconds", type=float, default=None,
                        help="seconds of timed submissions (10; --quick: 5)")


def run(args) -> list[dict]:
    seconds = getattr(args, "submit_seconds", None) or (5.0 if args.quick else 10.0)
    return asyncio.run(measure(seconds))


async def measure(seconds: float) -> list[dict]:
    async with fresh_store("jobdeck-bench-submit-") as (url, work_dir, embedded):
        store = await Store(url, "jobdeck").open()
        try:
            job_type = await store.job_types.create(
                "submit-bench", "1.0",
                validate_interface({"command": "true", "command_arguments": ""}), {})
        finally:
            await store.close()
        server, port = start_server(url, work_dir, TOKEN)
        pids = {"server": server.pid, "store": embedded.pid}
        try:
            done, errors, cpu = await asyncio.to_thread(submit_for, port, job_type["id"],
                                                        seconds, pids)
        finally:
            stop_server(server)
    rate = done / seconds
    per = {name: cpu[name] / max(done, 1) * 1000 for name in cpu}
    row = {"case": f"submissions/s, {CLIENTS} clients", "submitted": done, "errors": errors,
           "seconds": seconds, "per_second": round(rate, 1),
           "cpu_ms_server": round(per.get("server", 0), 2),
           "cpu_ms_store": round(per.get("store", 0), 2)}
    if BASELINE_PER_SECOND:
        ratio = rate / BASELINE_PER_SECOND
        row.update(baseline_per_second=BASELINE_PER_SECOND, ratio=round(ratio, 2),
                   target=f">= {TARGET_FACTOR:g}x {BASELINE_PER_SECOND:g}/s",
                   met=ratio >= TARGET_FACTOR and errors == 0)
    rows = [row]
    if len(per) == 2:
        cpu_ms = sum(per.values())
        rows.append({"case": "CPU ms per submission (server + store)",
                     "cpu_ms": round(cpu_ms, 2), "baseline_cpu_ms": BASELINE_CPU_MS,
                     "ratio": round(BASELINE_CPU_MS / cpu_ms, 2)})
    return rows


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process, None when /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def submit_for(port: int, type_id: int, seconds: float,
               pids: dict) -> tuple[int, int, dict[str, float]]:
    """(201s answered within the timed window, other answers, CPU seconds each of `pids`
    ({name: pid}) spent in it) over CLIENTS threads."""
    body = json.dumps({"job_type_id": type_id, "job_data": {
        "version": "1.0", "input_data": [], "output_data": []}})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    start = time.monotonic() + WARM_UP_SECONDS
    end = start + seconds
    counts = [[0, 0] for _ in range(CLIENTS)]

    def client(mine: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while (now := time.monotonic()) < end:
                conn.request("POST", "/queue/new-job/", body, headers)
                response = conn.getresponse()
                response.read()
                finished = time.monotonic()
                if now >= start and finished <= end:
                    mine[0 if response.status == 201 else 1] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in counts]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start - time.monotonic()))
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    time.sleep(max(0.0, end - time.monotonic()))
    after = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    for thread in threads:
        thread.join()
    cpu = {name: after[name] - was for name, was in before.items()
           if was is not None and after.get(name) is not None}
    return sum(c[0] for c in counts), sum(c[1] for c in counts), cpu
