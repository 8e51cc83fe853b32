"""Live updates under load: 1, 100 and 1,000 WebSocket subscribers on loopback, one server
process, a steady stream of status changes made through the store's transition functions.

Latency is from a change's `last_status_change` (stamped just before the store write) to the
moment a subscriber has parsed the message holding it, so it includes the store write, the
change feed, the hub's batch window (50 ms) and the client. Subscribers run in worker processes
(the server gets its own). Lost = changes made minus distinct changes a subscriber received.

Run: `python -m bench.live_bench [--live-rate 100] [--live-seconds 10] [--quick]`, or as part of
`python -m bench`.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 100, 1000)
CLIENTS_PER_WORKER = 250


def add_arguments(parser) -> None:
    parser.add_argument("--live-rate", type=int, default=100,
                        help="status changes per second in the live benchmark")
    parser.add_argument("--live-seconds", type=float, default=10.0,
                        help="seconds of steady changes per subscriber count")
    parser.add_argument("--live-levels", type=int, nargs="+", default=list(LEVELS),
                        help="subscriber counts to measure")
    parser.add_argument("--live-mongo-url", default=None,
                        help="use this MongoDB instead of a fresh embedded nx-27017")


# -- subscribers (worker processes) ----------------------------------------------------------

def _worker(url: str, clients: int, marker_id: int, ready, results) -> None:
    results.put(asyncio.run(_subscribe(url, clients, marker_id, ready)))


async def _subscribe(url: str, clients: int, marker_id: int, ready) -> dict:
    import tornado.websocket

    from core.times import parse_instant

    connections = []
    for _ in range(clients):
        connections.append(await tornado.websocket.websocket_connect(
            url, max_message_size=64 * 1024 * 1024))
    latencies: list[float] = []
    received = [set() for _ in connections]
    messages = 0
    live = [asyncio.Event() for _ in connections]
    done = [asyncio.Event() for _ in connections]

    # Subscribers with the same filter get the same text: parse it once per worker, so the
    # workers' CPU (shared with the server on a small machine) goes to reading sockets.
    parsed: dict[str, list] = {}

    def rows_of(text: str) -> list[tuple[int, str, str, float]]:
        rows = parsed.get(text)
        if rows is None:
            rows = parsed[text] = [
                (r["id"], r["status"], r["last_status_change"],
                 parse_instant(r["last_status_change"])) for r in json.loads(text)["results"]]
        return rows

    async def read(index, connection):
        nonlocal messages
        while (text := await connection.read_message()) is not None:
            now = time.time() * 1000
            messages += 1
            for job_id, status, changed, changed_ms in rows_of(text):
                if job_id == marker_id:
                    (done if status == "CANCELED" else live)[index].set()
                    continue
                received[index].add((job_id, changed))
                latencies.append(now - changed_ms)
        done[index].set()

    readers = [asyncio.create_task(read(i, c)) for i, c in enumerate(connections)]
    ready.put(("connected", clients))
    await asyncio.gather(*(event.wait() for event in live))
    ready.put(("live", clients))
    await asyncio.gather(*(event.wait() for event in done))
    for connection in connections:
        connection.close()
    for reader in readers:
        reader.cancel()
    return {"latencies": latencies, "received": [len(keys) for keys in received],
            "messages": messages}


# -- the server and the changes --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn_server(url: str, db_name: str, port: int, log_path: Path) -> subprocess.Popen:
    """One server process without the job engine: the benchmark makes every change itself.
    Auth is off so the feed is measured as before auth existed (the load benchmark runs with
    auth on)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "server.py", "--mongo-url", url, "--db-name", db_name, "--port",
             str(port), "--ws-max-queue", "1024", "--engine", "false", "--no-auth"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def _wait_ready(process, url: str) -> None:
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError
    while True:
        if process.poll() is not None:
            raise RuntimeError("the server exited while starting")
        try:
            await AsyncHTTPClient().fetch(url + "/jobs/")
            return
        except (ConnectionError, HTTPClientError, OSError):
            await asyncio.sleep(0.1)


class Changes:
    """A steady stream of QUEUED → RUNNING → COMPLETED through the store's transitions."""

    def __init__(self, store, job_type, event):
        self.store = store
        self.job_type = job_type
        self.event = event
        self.made = 0
        self.write_ms: list[float] = []
        self.queued: list[dict] = []
        self.running: list[dict] = []

    async def one(self) -> None:
        began = time.perf_counter()
        await self._change()
        self.write_ms.append((time.perf_counter() - began) * 1000)
        self.made += 1

    async def _change(self) -> None:
        jobs = self.store.jobs
        if self.running and (len(self.running) > 20 or not self.queued):
            exe = self.running.pop(0)
            await jobs.complete_execution(exe["id"], {})
        elif self.queued and len(self.queued) > 20:
            started = await jobs.start_execution(self.queued.pop(0)["id"], None)
            self.running.append(started[1])
        else:
            _, exe = await jobs.submit_job(self.job_type, {}, self.event, "")
            self.queued.append(exe)

    async def run(self, rate: int, seconds: float) -> float:
        began = time.perf_counter()
        interval = 1 / rate
        total = int(rate * seconds)
        while self.made < total:
            await self.one()
            wait = began + self.made * interval - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        return time.perf_counter() - began


async def _level(store, job_type, event, ws_url: str, server: psutil.Process, subscribers: int,
                 rate: int, seconds: float) -> dict:
    ctx = multiprocessing.get_context("spawn")
    marker, _ = await store.jobs.submit_job(job_type, {}, event, "")
    ready, results = ctx.Queue(), ctx.Queue()
    sizes = [min(CLIENTS_PER_WORKER, subscribers - i)
             for i in range(0, subscribers, CLIENTS_PER_WORKER)]
    workers = [ctx.Process(target=_worker, args=(ws_url, n, marker["id"], ready, results))
               for n in sizes]
    for worker in workers:
        worker.start()
    await _gather_signal(ready, "connected", subscribers)
    # The marker's own change tells every subscriber is live before the measured stream starts.
    await store.jobs.start_execution(marker["latest_exe_id"], None)
    await _gather_signal(ready, "live", subscribers)
    rss_before = server.memory_info().rss
    changes = Changes(store, job_type, event)
    elapsed = await changes.run(rate, seconds)
    rss_after = server.memory_info().rss
    await store.jobs.cancel_job(marker["id"])
    outcome = [await asyncio.to_thread(results.get) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(x for o in outcome for x in o["latencies"])
    received = [n for o in outcome for n in o["received"]]
    messages = sum(o["messages"] for o in outcome)
    return {
        "subscribers": subscribers, "changes": changes.made,
        "median_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
        "write_p99_ms": round(sorted(changes.write_ms)[int(0.99 * (changes.made - 1))], 1),
        "changes_per_s": round(changes.made / elapsed),
        "messages_per_s": round(messages / elapsed),
        "rows_per_s": round(len(latencies) / elapsed),
        "server_rss_mb": round(rss_after / 2**20, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "lost": sum(changes.made - n for n in received),
    }


async def _gather_signal(queue, kind: str, total: int) -> None:
    count = 0
    while count < total:
        got, n = await asyncio.to_thread(queue.get, True, 120)
        if got != kind:
            raise RuntimeError(f"expected {kind}, got {got}")
        count += n


async def _run(args) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from store import Store
    from store.embedded import EmbeddedMongo
    from store.seed import seed_job_types

    levels = args.live_levels if not getattr(args, "quick", False) else [1, 100]
    seconds = args.live_seconds if not getattr(args, "quick", False) else 3.0
    embedded = None
    tmp = tempfile.TemporaryDirectory(prefix="live-bench-")
    url = args.live_mongo_url
    if not url:
        embedded = EmbeddedMongo(Path(tmp.name))
        url = await asyncio.to_thread(embedded.start)
    db_name = f"bench_live_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    process = _spawn_server(url, db_name, port, Path(tmp.name) / "server.log")
    store = await Store(url, db_name).open()
    rows = []
    try:
        await _wait_ready(process, f"http://127.0.0.1:{port}")
        job_type = (await seed_job_types(store))[0]
        event = await store.jobs.create_event("USER", {"user": "bench"})
        ws_url = f"ws://127.0.0.1:{port}/ws/jobs/updates/"
        server = psutil.Process(process.pid)
        for subscribers in levels:
            print(f"live: {subscribers} subscribers, {args.live_rate} changes/s for "
                  f"{seconds:g} s", file=sys.stderr, flush=True)
            rows.append(await _level(store, job_type, event, ws_url, server, subscribers,
                                     args.live_rate, seconds))
    finally:
        process.terminate()
        process.wait(timeout=30)
        await store.db.client.drop_database(db_name)
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        tmp.cleanup()
    by_count = {row["subscribers"]: row for row in rows}
    if 1 in by_count and len(by_count) > 1:
        top = max(by_count)
        ratio = by_count[top]["p99_ms"] / by_count[1]["p99_ms"]
        for row in rows:
            row["p99_vs_1"] = round(row["p99_ms"] / by_count[1]["p99_ms"], 2)
        print(f"p99({top})/p99(1) = {ratio:.2f} (target: within 10)", file=sys.stderr)
    return rows


def run(args) -> list[dict]:
    return asyncio.run(_run(args))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 100 subscribers, 3 s each")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from bench.report import table
    print(table(run(args)))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
