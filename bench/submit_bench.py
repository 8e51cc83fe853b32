"""Sustained submissions: `POST /queue/new-job/` per second with 8 concurrent clients.

A fresh embedded nx-27017, one job type, then `server.py` (engine off, auth on with one operator
token) as a child process. Each client is a thread with its own keep-alive connection that
submits jobs back to back for `--submit-seconds` after a short warm-up; the figure is the 201s
answered per second. Issue 13's target: at least 3x the rate measured before its work
(BASELINE_PER_SECOND, measured on this machine with this same script).
"""

import asyncio
import http.client
import json
import threading
import time

from bench.api_bench import fresh_store, start_server, stop_server
from core.interface import validate_interface
from store import Store

CLIENTS = 8
WARM_UP_SECONDS = 1.0
TOKEN = "bench-operator-token-0123456789abcdef"
# Submissions per second before issue 13 (12 store commands per submission), measured with this
# script on the 2-CPU development machine (main at 34775c0): 88 and 102.6 in two runs.
BASELINE_PER_SECOND = 95.0
TARGET_FACTOR = 3.0


def add_arguments(parser) -> None:
    parser.add_argument("--submit-seconds", type=float, default=None,
                        help="seconds of timed submissions (10; --quick: 5)")


def run(args) -> list[dict]:
    seconds = getattr(args, "submit_seconds", None) or (5.0 if args.quick else 10.0)
    return asyncio.run(measure(seconds))


async def measure(seconds: float) -> list[dict]:
    async with fresh_store("jobdeck-bench-submit-") as (url, work_dir, _):
        store = await Store(url, "jobdeck").open()
        try:
            job_type = await store.job_types.create(
                "submit-bench", "1.0",
                validate_interface({"command": "true", "command_arguments": ""}), {})
        finally:
            await store.close()
        server, port = start_server(url, work_dir, TOKEN)
        try:
            done, errors = await asyncio.to_thread(submit_for, port, job_type["id"], seconds)
        finally:
            stop_server(server)
    rate = done / seconds
    row = {"case": f"submissions/s, {CLIENTS} clients", "submitted": done, "errors": errors,
           "seconds": seconds, "per_second": round(rate, 1)}
    if BASELINE_PER_SECOND:
        ratio = rate / BASELINE_PER_SECOND
        row.update(baseline_per_second=BASELINE_PER_SECOND, ratio=round(ratio, 2),
                   target=f">= {TARGET_FACTOR:g}x {BASELINE_PER_SECOND:g}/s",
                   met=ratio >= TARGET_FACTOR and errors == 0)
    return [row]


def submit_for(port: int, type_id: int, seconds: float) -> tuple[int, int]:
    """(201s answered within the timed window, other answers) over CLIENTS threads."""
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
    for thread in threads:
        thread.join()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)
