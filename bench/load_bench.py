"""Mixed load on one server process: readers, 100 live subscribers, submissions and cancels.

For each size (N seeded jobs, then N x scale): a fresh embedded nx-27017 under /tmp, seeded with
`store.seed.seed_jobs`, then `server.py --mongo-url` (api_bench.start_server) with auth on and one
operator token that every request and subscription sends. For `--load-seconds`:

- reader processes run closed-loop HTTP clients (aiohttp, keep-alive), each sending GET /jobs/
  with typical filters, GET /jobs/{id}/ of a random seeded job, or GET /jobs/updates/;
- one process holds the WebSocket subscribers on /ws/jobs/updates/ (no filter: every change),
  resuming with `started` after a drop as the README's live-update contract says;
- this process submits jobs (POST /queue/new-job/) and cancels jobs (PATCH /jobs/{id}/) at steady
  rates, and samples the memory and CPU of the server and of the store process.

The engine is off: with it on, the seeded QUEUED jobs would start running (and fail, their command
does not exist) and the engine's passes would change statuses the benchmark did not ask for. Off,
every status change of the run is one the benchmark made and saw acknowledged: a 201 is
(id, QUEUED), a 200 from the PATCH is (id, CANCELED). Every subscriber must have received exactly
that set; what is missing is a lost update.
"""

import asyncio
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import psutil

from bench.api_bench import fresh_store, start_server, stop_server
from bench.report import lost_updates
from core.model import CANCELABLE_JOB_STATUSES, JobStatus
from core.times import format_ms, now_ms
from store import Store
from store.seed import seed_jobs

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("list", "detail", "updates", "submit", "cancel")
READ_MIX = {"list": 5, "detail": 4, "updates": 1}
LIST_PATHS = (
    "/jobs/",
    "/jobs/?status=RUNNING",
    "/jobs/?status=QUEUED&status=RUNNING",
    "/jobs/?job_type_name=convert-image",
    "/jobs/?job_type_category=processing&page_size=25",
    "/jobs/?order=-last_modified",
    "/jobs/?started=P1D&order=-last_status_change",
)
UPDATES_PATHS = ("/jobs/updates/?started=PT1H", "/jobs/updates/?started=PT1H&status=CANCELED")
JOB_DATA = {"version": "1.0", "input_data": [{"name": "mode", "value": "fast"}],
            "output_data": []}
SEED_BATCH = 1000  # see api_bench.SEED_BATCH
REQUEST_TIMEOUT = 60
SETTLE_TIMEOUT = 60  # seconds subscribers may take to see the last change after the run


def add_arguments(parser) -> None:
    parser.add_argument("--load-jobs", type=int, default=None,
                        help="seeded jobs of the first run (default 10,000; --quick 1,000)")
    parser.add_argument("--load-scale", type=int, default=10,
                        help="the second run seeds this many times more jobs (1: one run only)")
    parser.add_argument("--load-seconds", type=float, default=None,
                        help="length of each mixed run (default 60; --quick 15)")
    parser.add_argument("--load-clients", type=int, default=32,
                        help="concurrent HTTP reader clients, spread over --load-workers")
    parser.add_argument("--load-workers", type=int, default=2,
                        help="reader processes (one Python process cannot drive much load)")
    parser.add_argument("--load-subscribers", type=int, default=100,
                        help="WebSocket subscribers on /ws/jobs/updates/")
    parser.add_argument("--load-submit-rate", type=float, default=10.0,
                        help="job submissions per second")
    parser.add_argument("--load-cancel-rate", type=float, default=5.0,
                        help="job cancels per second")


def settings(args) -> dict:
    quick = getattr(args, "quick", False)
    return {
        "jobs": getattr(args, "load_jobs", None) or (1_000 if quick else 10_000),
        "scale": max(1, getattr(args, "load_scale", 10)),
        "seconds": getattr(args, "load_seconds", None) or (15.0 if quick else 60.0),
        "clients": max(1, getattr(args, "load_clients", 32)),
        "workers": max(1, getattr(args, "load_workers", 2)),
        "subscribers": max(1, getattr(args, "load_subscribers", 100)),
        "submit_rate": getattr(args, "load_submit_rate", 10.0),
        "cancel_rate": getattr(args, "load_cancel_rate", 5.0),
    }


def run(args) -> list[dict]:
    conf = settings(args)
    sizes = [conf["jobs"]] + ([conf["jobs"] * conf["scale"]] if conf["scale"] > 1 else [])
    rows = []
    for size in sizes:
        print(f"load: {size:,} jobs, {conf['seconds']:g} s, {conf['clients']} readers, "
              f"{conf['subscribers']} subscribers", file=sys.stderr, flush=True)
        rows += asyncio.run(measure(size, conf))
    if len(sizes) == 2:
        rows += growth_rows(rows, *sizes)
    return rows


# -- figures ---------------------------------------------------------------------------------

class Latencies:
    """Latencies (seconds) and status codes of one endpoint; `errors` = no response at all."""

    def __init__(self):
        self.seconds: list[float] = []
        self.statuses: Counter = Counter()
        self.errors = 0

    def add(self, seconds: float, status: int) -> None:
        self.seconds.append(seconds)
        self.statuses[status] += 1

    def merge(self, other: dict) -> None:
        self.seconds += other["seconds"]
        self.statuses.update(other["statuses"])
        self.errors += other["errors"]

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "statuses": dict(self.statuses), "errors": self.errors}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def endpoint_row(name: str, size: int, stats: Latencies, elapsed: float) -> dict:
    """requests/s over the run's wall time, median and p99 in ms, and the failures by kind."""
    count = len(stats.seconds)
    server_errors = sum(n for status, n in stats.statuses.items() if status >= 500)
    client_errors = sum(n for status, n in stats.statuses.items() if 400 <= status < 500)
    return {
        "case": name, "jobs": size, "requests": count,
        "req_per_s": count / elapsed if elapsed else 0.0,
        "median_ms": statistics.median(stats.seconds) * 1000 if count else None,
        "p99_ms": quantile(stats.seconds, 0.99) * 1000 if count else None,
        "5xx": server_errors, "4xx": client_errors, "no_response": stats.errors,
        "target": "5xx = 0, no_response = 0",
        "met": server_errors == 0 and stats.errors == 0 and count > 0,
    }


def growth_rows(rows: list[dict], small: int, large: int) -> list[dict]:
    """Per endpoint, the large run's figures over the small run's: how the cost grows with the
    jobs in the store (issue 6 asks to show it; it sets no bound)."""
    by_key = {(row["case"], row["jobs"]): row for row in rows}
    grown = []
    for name in (*ENDPOINTS, "ws delivery"):
        one, ten = by_key.get((name, small)), by_key.get((name, large))
        if not one or not ten or not one.get("median_ms") or not ten.get("median_ms"):
            continue
        grown.append({"case": f"{name}: {large // small}x jobs over 1x", "jobs": large,
                      "median_ratio": ten["median_ms"] / one["median_ms"],
                      "p99_ratio": ten["p99_ms"] / one["p99_ms"],
                      "req_per_s_ratio": (ten["req_per_s"] / one["req_per_s"]
                                          if one.get("req_per_s") else None)})
    one, ten = by_key.get(("resources", small)), by_key.get(("resources", large))
    if one and ten:
        grown.append({"case": f"server RSS: {large // small}x jobs over 1x", "jobs": large,
                      "rss_ratio": ten["server_rss_peak_mb"] / one["server_rss_peak_mb"]})
    return grown


# -- reader processes ------------------------------------------------------------------------

def _reader_worker(base: str, token: str, detail_ids: tuple[int, int], clients: int,
                   seconds: float, seed: int, results) -> None:
    results.put(asyncio.run(_read(base, token, detail_ids, clients, seconds, seed)))


async def _read(base: str, token: str, detail_ids: tuple[int, int], clients: int,
                seconds: float, seed: int) -> dict:

    stats = {name: Latencies() for name in READ_MIX}
    names, weights = zip(*READ_MIX.items(), strict=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    cpu_before = psutil.Process().cpu_times()

    async def client(session, index: int) -> None:
        rng = random.Random(seed * 10_000 + index)
        while loop.time() < deadline:
            name = rng.choices(names, weights)[0]
            if name == "list":
                path = rng.choice(LIST_PATHS)
            elif name == "detail":
                path = f"/jobs/{rng.randint(*detail_ids)}/"
            else:
                path = rng.choice(UPDATES_PATHS)
            await timed(session, "GET", path, stats[name])

    began = time.perf_counter()
    async with session_for(base, token, clients) as session:
        await asyncio.gather(*(client(session, i) for i in range(clients)))
    cpu = psutil.Process().cpu_times()
    return {"stats": {name: s.as_dict() for name, s in stats.items()},
            "elapsed": time.perf_counter() - began,
            "cpu_s": cpu.user + cpu.system - cpu_before.user - cpu_before.system}


def session_for(base: str | None, token: str, connections: int):
    import aiohttp

    return aiohttp.ClientSession(
        base, headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))


async def timed(session, method: str, path: str, stats: Latencies, body=None):
    """One request, timed to its whole body; (status, parsed JSON or None), or None when no
    response came (refused, reset, timed out)."""
    import aiohttp

    began = time.perf_counter()
    try:
        async with session.request(method, path, json=body) as response:
            payload = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError):
        stats.errors += 1
        return None
    stats.add(time.perf_counter() - began, status)
    return status, payload


# -- subscriber process ----------------------------------------------------------------------

def _subscriber_worker(ws_url: str, token: str, count: int, epoch: str, marker_id, ready,
                       stop, results) -> None:
    results.put(asyncio.run(_subscribe(ws_url, token, count, epoch, marker_id, ready, stop)))


async def _subscribe(ws_url: str, token: str, count: int, epoch: str, marker_id, ready,
                     stop) -> dict:
    """`count` subscribers from `epoch` on (so none misses a change made while it connects);
    each is live once it has seen the marker job QUEUED and done once it has seen it CANCELED."""
    subscribers = _Subscribers(ws_url, count, epoch, marker_id)
    cpu_before = psutil.Process().cpu_times()
    async with session_for(None, token, count) as session:
        tasks = [asyncio.create_task(subscribers.follow(session, i)) for i in range(count)]
        ready.put(("connecting", count))
        await asyncio.gather(*(event.wait() for event in subscribers.live))
        ready.put(("live", count))
        stopper = asyncio.create_task(_until_set(stop))
        finished = asyncio.create_task(_all(subscribers.done))
        await asyncio.wait([finished, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        finished.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu = psutil.Process().cpu_times()
    return {"received": [sorted(keys) for keys in subscribers.received],
            "reconnects": subscribers.reconnects,
            "finished": sum(event.is_set() for event in subscribers.done),
            "latencies": subscribers.latencies, "messages": subscribers.messages,
            "cpu_s": cpu.user + cpu.system - cpu_before.user - cpu_before.system}


class _Subscribers:
    """What the subscribers of one process have seen; subscriber `index` follows the feed with
    follow(), reconnecting from the last change it saw until it has seen the marker CANCELED."""

    def __init__(self, ws_url: str, count: int, epoch: str, marker_id) -> None:
        self.ws_url, self.epoch, self.marker_id = ws_url, epoch, marker_id
        self.received: list[set] = [set() for _ in range(count)]
        self.reconnects = [0] * count
        self.latencies: list[float] = []
        self.messages = 0
        self.parsed: dict[str, list] = {}
        self.live = [asyncio.Event() for _ in range(count)]
        self.done = [asyncio.Event() for _ in range(count)]

    def rows_of(self, text: str) -> list[tuple[int, str, str, float]]:
        """Subscribers get the same text: parse it once per process."""
        rows = self.parsed.get(text)
        if rows is None:
            import json
            rows = self.parsed[text] = [
                (r["id"], r["status"], r["last_status_change"],
                 datetime.fromisoformat(r["last_status_change"]).timestamp() * 1000)
                for r in json.loads(text)["results"]]
        return rows

    async def follow(self, session, index: int) -> None:
        import aiohttp

        started = self.epoch
        while not self.done[index].is_set():
            try:
                async with session.ws_connect(f"{self.ws_url}?started={quote(started)}",
                                              max_msg_size=0, autoping=True) as ws:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            started = max(started, self.take(index, message.data))
                        if self.done[index].is_set():
                            break
            except (TimeoutError, aiohttp.ClientError):
                pass
            if not self.done[index].is_set():
                self.reconnects[index] += 1
                await asyncio.sleep(0.2)

    def take(self, index: int, text: str) -> str:
        """Record one message of subscriber `index`; the last change it holds (or "")."""
        now = time.time() * 1000
        self.messages += 1
        last = ""
        for job_id, status, changed, changed_ms in self.rows_of(text):
            last = max(last, changed)
            if job_id == self.marker_id:
                (self.done if status == JobStatus.CANCELED else self.live)[index].set()
            elif (job_id, status) not in self.received[index]:
                self.received[index].add((job_id, status))
                self.latencies.append(now - changed_ms)
        return last


async def _until_set(stop) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.2)


async def _all(events) -> None:
    await asyncio.gather(*(event.wait() for event in events))


# -- the writer and the resource sampler (this process) --------------------------------------

class Writer:
    """Submissions and cancels at steady rates; every acknowledged status change is recorded in
    `expected` as (job id, status): a 201 is (id, QUEUED), a 200 from the PATCH (id, CANCELED),
    as the API promises. An answer whose body says otherwise, and any 4xx, is kept in
    `anomalies` so the report shows it instead of hiding it in the accounting."""

    def __init__(self, session, job_type_id: int, cancelable: list[int]):
        self.session = session
        self.job_type_id = job_type_id
        self.cancelable = cancelable  # seeded jobs that a cancel changes
        self.submitted: list[int] = []  # this run's QUEUED jobs, not canceled yet
        self.expected: set[tuple[int, str]] = set()
        self.acknowledged = 0  # equals len(expected) unless two answers named one change
        self.anomalies: list[str] = []
        self.stats = {"submit": Latencies(), "cancel": Latencies()}
        self.in_flight = asyncio.Semaphore(64)  # a stalled server must not pile up tasks

    async def submit(self) -> None:
        async with self.in_flight:
            answer = await timed(self.session, "POST", "/queue/new-job/", self.stats["submit"],
                                 {"job_type_id": self.job_type_id, "job_data": JOB_DATA})
        if answer and answer[0] == 201:
            job = _json(answer[1])
            self.expected.add((job["id"], JobStatus.QUEUED))
            self.acknowledged += 1
            self.submitted.append(job["id"])
            if job["status"] != JobStatus.QUEUED:
                self.anomalies.append(f"POST -> 201 {job['id']} {job['status']}")
        elif answer:
            self.anomalies.append(f"POST -> {answer[0]} {answer[1][:120]!r}")

    async def cancel(self, turn: int) -> None:
        pool = self.submitted if (turn % 2 and self.submitted) or not self.cancelable \
            else self.cancelable
        if not pool:
            return
        job_id = pool.pop(random.randrange(len(pool)))
        async with self.in_flight:
            answer = await timed(self.session, "PATCH", f"/jobs/{job_id}/",
                                 self.stats["cancel"], {"status": JobStatus.CANCELED})
        if answer and answer[0] == 200:
            self.expected.add((job_id, JobStatus.CANCELED))
            self.acknowledged += 1
            status = _json(answer[1])["status"]
            if status != JobStatus.CANCELED:
                self.anomalies.append(f"PATCH {job_id} -> 200 {status}")
        elif answer:
            self.anomalies.append(f"PATCH {job_id} -> {answer[0]} {answer[1][:120]!r}")

    async def steady(self, rate: float, seconds: float, action) -> None:
        """`action(turn)` launched every 1/rate s on schedule, whatever the answers take."""
        if rate <= 0:
            return
        began = time.perf_counter()
        tasks = []
        for turn in range(int(rate * seconds)):
            wait = began + turn / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(action(turn)))
        await asyncio.gather(*tasks)


def _json(payload: bytes):
    import json
    return json.loads(payload)


class Sampler:
    """Peak RSS and CPU time of the server and of the store process, every 0.25 s."""

    def __init__(self, server_pid: int, store_pid: int):
        self.server = psutil.Process(server_pid)
        self.store = psutil.Process(store_pid)
        self.peak = {"server": 0, "store": 0}
        self.cpu_start = {}

    @staticmethod
    def cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def begin(self) -> None:
        self.cpu_start = {"server": self.cpu(self.server), "store": self.cpu(self.store)}
        psutil.cpu_percent()  # starts the machine-wide interval
        self.sample()

    def sample(self) -> None:
        for name, process in (("server", self.server), ("store", self.store)):
            self.peak[name] = max(self.peak[name], process.memory_info().rss)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.25)

    def cpu_seconds(self) -> dict:
        return {"server": self.cpu(self.server) - self.cpu_start["server"],
                "store": self.cpu(self.store) - self.cpu_start["store"]}


# -- one size --------------------------------------------------------------------------------

async def measure(size: int, conf: dict) -> list[dict]:
    async with fresh_store(f"jobdeck-load-bench-{size}-") as (url, work_dir, embedded):
        return await measure_seeded(size, conf, url, work_dir, embedded)


async def measure_seeded(size: int, conf: dict, url: str, work_dir, embedded) -> list[dict]:
    server = None
    try:
        store = await Store(url, "jobdeck").open()
        try:
            await seed_jobs(store, size, batch=SEED_BATCH, progress=None)
            first = await store.db["jobs"].find_one({}, {"id": 1})
            cancelable = [doc["id"] async for doc in store.db["jobs"].find(
                {"status": {"$in": list(CANCELABLE_JOB_STATUSES)}}, {"id": 1}).limit(10_000)]
            job_type = await store.db["job_types"].find_one({"name": "ingest-file"})
        finally:
            await store.close()
        token = secrets.token_urlsafe(24)
        server, port = await asyncio.to_thread(start_server, url, work_dir, token)
        detail_ids = (first["id"], first["id"] + size - 1)
        return await mixed_run(size, conf, port, token, detail_ids, cancelable, job_type["id"],
                               server.pid, embedded.pid)
    finally:
        if server is not None:
            await asyncio.to_thread(stop_server, server)


async def mixed_run(size: int, conf: dict, port: int, token: str, detail_ids: tuple[int, int],
                    cancelable: list[int], job_type_id: int, server_pid: int,
                    store_pid: int) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    ctx = multiprocessing.get_context("spawn")
    seconds = conf["seconds"]
    sampler = Sampler(server_pid, store_pid)
    async with session_for(base, token, 100) as session:
        epoch = format_ms(now_ms() - 1000)
        marker = await _submit_marker(session, job_type_id)
        ready, stop, sub_results = ctx.Queue(), ctx.Event(), ctx.Queue()
        subscribers = ctx.Process(target=_subscriber_worker, args=(
            f"ws://127.0.0.1:{port}/ws/jobs/updates/", token, conf["subscribers"], epoch,
            marker, ready, stop, sub_results), daemon=True)
        subscribers.start()
        await _expect(ready, "connecting")
        await _expect(ready, "live")
        read_results = ctx.Queue()
        spread = [conf["clients"] // conf["workers"] + (i < conf["clients"] % conf["workers"])
                  for i in range(conf["workers"])]
        readers = [ctx.Process(target=_reader_worker, args=(
            base, token, detail_ids, n, seconds, i, read_results), daemon=True)
            for i, n in enumerate(spread) if n]
        writer = Writer(session, job_type_id, cancelable)
        sampler.begin()
        sampling = asyncio.create_task(sampler.run())
        began = time.perf_counter()
        for reader in readers:
            reader.start()
        await asyncio.gather(writer.steady(conf["submit_rate"], seconds, lambda _: writer.submit()),
                             writer.steady(conf["cancel_rate"], seconds, writer.cancel))
        write_elapsed = time.perf_counter() - began
        reads = [await asyncio.to_thread(read_results.get, True, seconds + 120)
                 for _ in readers]
        elapsed = time.perf_counter() - began
        machine_cpu = psutil.cpu_percent()
        cpu = sampler.cpu_seconds()
        for reader in readers:
            reader.join()
        # Every change is acknowledged; the marker's cancel is the last change of the run.
        answer = await timed(session, "PATCH", f"/jobs/{marker}/", Latencies(),
                             {"status": JobStatus.CANCELED})
        if not answer or answer[0] != 200:
            raise RuntimeError(f"the end marker's cancel answered {answer and answer[0]}")
        if _json(answer[1])["status"] != JobStatus.CANCELED:
            writer.anomalies.append(f"PATCH {marker} (end marker) -> 200 "
                                    f"{_json(answer[1])['status']}")
        settle = asyncio.get_running_loop().call_later(SETTLE_TIMEOUT, stop.set)
        heard = await asyncio.to_thread(sub_results.get, True, SETTLE_TIMEOUT + 60)
        settle.cancel()
        subscribers.join()
        sampling.cancel()
        sampler.sample()
    stats = {name: Latencies() for name in READ_MIX}
    for result in reads:
        for name, values in result["stats"].items():
            stats[name].merge(values)
    stats.update(writer.stats)
    # Rates over each side's own window: readers stop at the deadline, the writer's last
    # answers may come later on an overloaded server.
    read_elapsed = max(result["elapsed"] for result in reads)
    rows = [endpoint_row(name, size, stats[name],
                         read_elapsed if name in READ_MIX else write_elapsed)
            for name in ENDPOINTS]
    lost = lost_updates(writer.expected, [set(map(tuple, keys)) for keys in heard["received"]])
    delivery = heard["latencies"]
    rows.append({
        "case": "ws delivery", "jobs": size, "subscribers": conf["subscribers"],
        "changes": len(writer.expected), "acknowledged": writer.acknowledged,
        "messages": heard["messages"],
        "median_ms": statistics.median(delivery) if delivery else None,
        "p99_ms": quantile(delivery, 0.99) if delivery else None,
        "lost": lost["lost"], "subscribers_missing": lost["subscribers_missing"],
        "unexpected": lost["unexpected"], "reconnects": sum(heard["reconnects"]),
        "examples": " ".join(f"{i}:{s}" for i, s in lost["examples"]) or None,
        "unexpected_examples": " ".join(f"{i}:{s}" for i, s in lost["unexpected_examples"])
        or None,
        "answer_anomalies": len(writer.anomalies),
        "anomaly_examples": "; ".join(writer.anomalies[:3]) or None,
        "target": "lost = 0", "met": lost["lost"] == 0 and heard["finished"] == conf[
            "subscribers"] and len(writer.expected) > 0})
    clients_cpu = sum(r["cpu_s"] for r in reads) + heard["cpu_s"]
    rows.append({
        "case": "resources", "jobs": size, "seconds": elapsed,
        "server_rss_peak_mb": sampler.peak["server"] / 2**20,
        "store_rss_peak_mb": sampler.peak["store"] / 2**20,
        "server_cpu_pct": 100 * cpu["server"] / elapsed,
        "store_cpu_pct": 100 * cpu["store"] / elapsed,
        "clients_cpu_pct": 100 * clients_cpu / elapsed,
        "machine_cpu_pct": machine_cpu * (os.cpu_count() or 1)})
    for row in rows:
        print(f"  {_brief(row)}", file=sys.stderr, flush=True)
    return rows


async def _submit_marker(session, job_type_id: int) -> int:
    answer = await timed(session, "POST", "/queue/new-job/", Latencies(),
                         {"job_type_id": job_type_id, "job_data": JOB_DATA})
    if not answer or answer[0] != 201:
        raise RuntimeError(f"submitting the marker job answered {answer and answer[0]}: "
                           f"{answer and answer[1][:200]!r}")
    return _json(answer[1])["id"]


async def _expect(queue, kind: str) -> None:
    got, _ = await asyncio.to_thread(queue.get, True, 120)
    if got != kind:
        raise RuntimeError(f"subscribers said {got}, expected {kind}")


def _brief(row: dict) -> str:
    return ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items() if k not in ("target", "met"))
