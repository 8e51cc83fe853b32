"""Harness for the live-feed chaos tests (tests/live/test_chaos.py, issue 16).

- `ChaosServer`: server.py as a child process (engine off), either with its own embedded nx-27017
  store or on a store given by URL (a second process on the first one's store, or SecantusDB).
- `OwnedStore` / `ServerStore`: kill -9 of the store, then wait until every server's /health
  answers 200 again (the outage window the checker measures delivery against).
- `Listener`: a live subscriber that reconnects with `started` = the last change it saw when its
  socket closes (the README's live contract) and stamps every row with its arrival time.
- `drop_subscribers`: subscribers that close right after connecting, mid-catch-up.
- `Ledger`: every acknowledged status change and every outage; `Ledger.check` confirms delivery.
- `PageChecker`: pages of up to 1000 rows read during the chaos must be complete.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlencode

import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from core.times import format_ms, now_ms
from store import Store
from store.embedded import EmbeddedMongo, EmbeddedStoreError
from tests.live_client import Subscriber, ws_url
from tests.test_faults import READY_LINE, ROOT, STORE_TIMEOUT_MS, Server
from tests.tokens import OPERATOR_HEADERS, OPERATOR_TOKEN

WINDOW = 3.0  # seconds within which an acknowledged change must reach every live subscriber
PAGE = 1000
INTERFACE = {"version": "1.0", "command": "run.sh", "command_arguments": ""}


def clock(seconds: float | None) -> str:
    """Epoch seconds as the UTC time of day, to read beside `last_status_change` values."""
    if seconds is None:
        return "-"
    return format_ms(int(seconds * 1000))[11:]


def lsc_seconds(text: str) -> float:
    """A `last_status_change` (`2015-08-28T17:55:41.005Z`) as seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


# -- HTTP ------------------------------------------------------------------------------------

class Client:
    """JSON calls that never raise: (status, body), status None when there was no answer
    (refused, reset, timed out). Its own client instance so chaos traffic does not queue behind
    tornado's default 10 connections."""

    def __init__(self):
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)

    def close(self):
        self.http.close()

    async def call(self, url: str, method: str = "GET", body=None, timeout: float = 30.0):
        data = None if body is None else json.dumps(body)
        if data is None and method in ("POST", "PATCH"):
            data = ""
        try:
            response = await self.http.fetch(
                url, method=method, body=data, request_timeout=timeout,
                headers={"Content-Type": "application/json", **OPERATOR_HEADERS})
        except HTTPClientError as exc:
            response = exc.response
            if response is None:
                return None, str(exc)
        except (OSError, StreamClosedError) as exc:
            return None, str(exc)
        text = response.body.decode(errors="replace")
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.code, json.loads(text)
        return response.code, text

    async def until_ok(self, url: str, method: str = "GET", body=None, give_up: float = 30.0):
        """Retry while the store is down (503, no answer); any other answer is returned."""
        deadline = time.monotonic() + give_up
        while True:
            status, answer = await self.call(url, method, body)
            if status not in (None, 503) or time.monotonic() > deadline:
                return status, answer
            await asyncio.sleep(0.1)


# -- servers and stores -----------------------------------------------------------------------

class ChaosServer(Server):
    """tests/test_faults.py's Server with the engine off, optionally on a store given by URL
    (then it has no embedded store and no supervisor of its own)."""

    def __init__(self, name: str, tmp_path: Path, mongo_url: str | None = None):
        tmp_path.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp_path)
        self.name = name
        self.mongo_url = mongo_url

    def spawn(self) -> None:
        store = ["--mongo-url", self.mongo_url] if self.mongo_url else []
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "server.py", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), "--store-timeout-ms", str(STORE_TIMEOUT_MS),
                 "--engine", "false", *store],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "JOBDECK_TOKENS": f"operator:{OPERATOR_TOKEN}"})

    async def until_store_ready(self) -> None:
        """Wait until this server's embedded store is up (its app may still be starting)."""
        while not READY_LINE.search(self.log()):
            assert self.proc.poll() is None, self.log()
            await asyncio.sleep(0.05)

    @property
    def embedded_url(self) -> str:
        """The URL of the embedded store this server started (from its log)."""
        return self.store_url

    async def healthy(self, client: Client) -> bool:
        status, _ = await client.call(self.url + "/health", timeout=5)
        return status == 200


async def until_all_healthy(servers: list[ChaosServer], client: Client,
                            give_up: float = 60.0) -> float:
    """Wait until every server's /health answers 200; returns that moment (epoch seconds)."""
    deadline = time.monotonic() + give_up
    while True:
        for server in servers:
            assert server.proc.poll() is None, f"server exited:\n{server.log()[-4000:]}"
        answers = await asyncio.gather(*(server.healthy(client) for server in servers))
        if all(answers):
            return time.time()
        assert time.monotonic() < deadline, (
            f"harness: the store was not reachable again within {give_up:.0f} s; "
            f"/health answers {answers}")
        await asyncio.sleep(0.05)


class ServerStore:
    """The embedded nx-27017 a server started: killed with SIGKILL, restarted by that server's
    supervisor on the same socket."""

    kind = "nx"

    def __init__(self, owner: ChaosServer):
        self.owner = owner

    @property
    def url(self) -> str:
        return self.owner.embedded_url

    async def kill(self) -> None:
        os.kill(self.owner.store_pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stopped with its server."""


class OwnedStore:
    """An embedded store the test runs itself (SecantusDB: server.py can only start nx-27017):
    killed with SIGKILL and started again at the same address, as the supervisor does."""

    def __init__(self, data_dir: Path, kind: str):
        self.kind = kind
        self.embedded = EmbeddedMongo(data_dir, kind=kind)
        self.url: str | None = None

    async def start(self) -> "OwnedStore":
        self.url = await asyncio.to_thread(self.embedded.start)
        return self

    async def kill(self) -> None:
        pid = self.embedded.pid
        os.kill(pid, signal.SIGKILL)
        while self.embedded.is_alive():
            await asyncio.sleep(0.01)
        for attempt in range(20):  # the port frees as the killed process's sockets close
            try:
                await asyncio.to_thread(self.embedded.restart)
                return
            except EmbeddedStoreError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)

    def stop(self) -> None:
        self.embedded.stop()


# -- seeding -----------------------------------------------------------------------------------

async def create_job_type(client: Client, base_url: str, name: str) -> dict:
    status, body = await client.call(base_url + "/job-types/", "POST", {
        "name": name, "version": "1.0", "interface": INTERFACE})
    assert status == 201, f"harness: creating job type {name}: {status} {body}"
    return body


async def seed_jobs(mongo_url: str, job_type_id: int, count: int, queued: int = 0,
                    age_s: float = 1800) -> None:
    """`count` jobs of one type changed `age_s` ago (so a subscriber with started=PT1H catches
    up on all of them, one with a later `started` on none): the first `queued` QUEUED with their
    QUEUED execution, the others PENDING. Bulk-inserted through the store's own document
    builders (one call per job would take a minute on a busy machine)."""
    store = Store(mongo_url)
    try:
        job_type = await store.job_types.get(job_type_id)
        event = await store.jobs.create_event("USER", {"user": "chaos-seed"})
        job_ids = await store.db.next_ids("jobs", count)
        exe_ids = await store.db.next_ids("job_exes", queued) if queued else []
        when = now_ms() - int(age_s * 1000)
        jobs, exes = [], []
        for job_id in job_ids:
            job = store.jobs.new_job_doc(job_id, job_type, {"version": "1.0", "input_data": []},
                                         event, when)
            if len(exes) < queued:
                exe_id = exe_ids[len(exes)]
                exes.append({"_id": exe_id, **store.jobs._new_exe(exe_id, job, when, "")})
                job.update(status="QUEUED", queued=when, num_exes=1, latest_exe_id=exe_id)
            jobs.append(job)
        if exes:
            await store.db["job_exes"].insert_many(exes, ordered=False)
        await store.db["jobs"].insert_many(jobs, ordered=False)
    finally:
        await store.close()


# -- subscribers -------------------------------------------------------------------------------

class TimedSubscriber(Subscriber):
    """tests/live_client.py's Subscriber, also stamping each row with its arrival time."""

    def __init__(self, connection):
        self.arrivals: list[tuple[float, dict]] = []
        super().__init__(connection)

    def received(self, message: dict) -> None:
        super().received(message)
        arrived = time.time()
        self.arrivals.extend((arrived, row) for row in message["results"])


async def connect(base_url: str, query: dict | None = None) -> TimedSubscriber:
    request = HTTPRequest(ws_url(base_url, urlencode(query or {}, doseq=True)),
                          headers=OPERATOR_HEADERS, connect_timeout=5, request_timeout=10)
    return TimedSubscriber(await tornado.websocket.websocket_connect(request))


async def drop_subscribers(base_url: str, query: dict, count: int) -> int:
    """`count` subscribers at once that each close right after the handshake, while the server
    is still reading their catch-up; returns how many connected (refusals while the store is
    down are not the point here)."""

    async def one() -> bool:
        try:
            connection = await tornado.websocket.websocket_connect(HTTPRequest(
                ws_url(base_url, urlencode(query, doseq=True)), headers=OPERATOR_HEADERS,
                connect_timeout=5, request_timeout=10))
        except (OSError, HTTPClientError, StreamClosedError, tornado.websocket.WebSocketError):
            return False
        connection.close()
        return True

    return sum(await asyncio.gather(*(one() for _ in range(count))))


@dataclass
class Listener:
    """A live subscriber that stays subscribed: when its socket closes it reconnects with
    `started` = the last `last_status_change` it saw. `rows` holds (arrival time, row) for every
    row received over all its connections."""

    name: str
    base_url: str
    query: dict
    started: str
    rows: list = field(default_factory=list)
    closes: list = field(default_factory=list)
    connects: int = 0
    _current: TimedSubscriber | None = None
    _task: asyncio.Task | None = None

    async def start(self) -> "Listener":
        self._current = await connect(self.base_url, {**self.query, "started": self.started})
        self.connects = 1
        self._task = asyncio.create_task(self._run())
        return self

    @property
    def last_seen(self) -> str:
        return max((row["last_status_change"] for _, row in self.rows), default=self.started)

    def _collect(self) -> None:
        current = self._current
        if current is not None and current.arrivals:
            self.rows.extend(current.arrivals)
            current.arrivals.clear()

    async def _run(self) -> None:
        while True:
            self._collect()
            current = self._current
            if current is None or current.closed.is_set():
                if current is not None:
                    self.closes.append((current.connection.close_code,
                                        current.connection.close_reason))
                    self._current = None
                try:
                    self._current = await connect(self.base_url,
                                                  {**self.query, "started": self.last_seen})
                    self.connects += 1
                except (OSError, HTTPClientError, StreamClosedError,
                        tornado.websocket.WebSocketError):
                    await asyncio.sleep(0.2)
                continue
            current._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(current._arrived.wait(), 0.2)

    def received(self) -> set[tuple[int, str, str]]:
        self._collect()
        return {(row["id"], row["last_status_change"], row["status"]) for _, row in self.rows}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._collect()
        if self._current is not None:
            self._current.close()


# -- acknowledged changes and the checker ------------------------------------------------------

@dataclass(frozen=True)
class Change:
    job_id: int
    status: str
    last_status_change: str
    acknowledged_at: float | None  # epoch seconds of the answer; None: seen only in the store
    via: str

    @property
    def key(self) -> tuple[int, str, str]:
        return self.job_id, self.last_status_change, self.status


class Ledger:
    """Every acknowledged status change (from the API's answers) and every store outage."""

    def __init__(self):
        self.changes: list[Change] = []
        self.outages: list[tuple[float, float]] = []
        self.failed_calls: dict[str, int] = {}
        self.excluded: set[int] = set()  # harness jobs (the probe), not checked

    def acknowledge(self, row: dict, via: str) -> None:
        self.changes.append(Change(row["id"], row["status"], row["last_status_change"],
                                   time.time(), via))

    def failed(self, what: str) -> None:
        self.failed_calls[what] = self.failed_calls.get(what, 0) + 1

    def last_acknowledged(self) -> dict[int, Change]:
        last: dict[int, Change] = {}
        for change in self.changes:
            known = last.get(change.job_id)
            if known is None or change.last_status_change > known.last_status_change:
                last[change.job_id] = change
        return last

    def base(self, change: Change) -> float:
        """When the change became deliverable: its acknowledgement, or the end of an outage that
        began before the window after it closed. A change seen only in the store (its answer was
        lost) may have committed any time between its `last_status_change` and the kill that cut
        its request off, so it is due from the end of the first outage after it."""
        if change.acknowledged_at is None:
            at = lsc_seconds(change.last_status_change)
            return next((back for _, back in sorted(self.outages) if back > at), at)
        at = change.acknowledged_at
        base = at
        for down, back in self.outages:
            if down < at + WINDOW and back > at:
                base = max(base, back)
        return base

    def deadline(self, change: Change) -> float:
        return self.base(change) + WINDOW

    def expected(self, final_rows: list[dict]) -> list[Change]:
        """The acknowledged changes plus each job's final state in the store (a change whose
        answer was lost in an outage is still a change every subscriber must get)."""
        acknowledged = {change.key for change in self.changes}
        return [change for change in self.changes if change.job_id not in self.excluded] + [
            Change(row["id"], row["status"], row["last_status_change"], None, "store")
            for row in final_rows if (row["id"], row["last_status_change"], row["status"])
            not in acknowledged and row["id"] not in self.excluded]


@dataclass
class Verdict:
    problems: list[str]
    summary: str
    max_lag: float


def check(ledger: Ledger, listeners: list[Listener], final_rows: list[dict]) -> Verdict:
    """(a) every job's final state reaches every listener within WINDOW s of its base; (b) so
    does every acknowledged change unless a later change of that job, made within its window,
    reached the listener (the feed may collapse changes superseded while the store was down
    into the later one); (c) per job the delivered `last_status_change` values never go
    backwards. Also: no acknowledged change is missing from the store's final state."""
    problems: list[str] = []
    expected = ledger.expected(final_rows)
    final = {row["id"]: row for row in final_rows if row["id"] not in ledger.excluded}
    for job_id, change in sorted(ledger.last_acknowledged().items()):
        if job_id in ledger.excluded:
            continue
        row = final.get(job_id)
        if row is None or row["last_status_change"] < change.last_status_change:
            problems.append(f"store lost acknowledged change: job {job_id} {change.status} at "
                            f"{change.last_status_change}; the store has "
                            f"{row and (row['status'], row['last_status_change'])}")
    lags: list[float] = []
    collapsed = 0
    for listener in listeners:
        listener.received()
        arrival: dict[tuple, float] = {}
        order: dict[int, list[str]] = {}
        for arrived, row in listener.rows:
            key = (row["id"], row["last_status_change"], row["status"])
            arrival.setdefault(key, arrived)
            order.setdefault(row["id"], []).append(row["last_status_change"])
        missing, late = [], []
        for change in expected:
            deadline = ledger.deadline(change)
            is_final = (change.job_id in final
                        and final[change.job_id]["last_status_change"]
                        == change.last_status_change)
            arrived = arrival.get(change.key)
            if arrived is None:
                superseded = any(lsc > change.last_status_change and lsc_seconds(lsc) <= deadline
                                 for lsc in order.get(change.job_id, ()))
                if superseded and not is_final:
                    collapsed += 1
                    continue
                missing.append(change)
                continue
            lags.append(arrived - ledger.base(change))
            if arrived > deadline:
                late.append((change, arrived - ledger.base(change)))
        if missing:
            problems.append(
                f"{listener.name}: {len(missing)} of {len(expected)} changes never arrived "
                f"(job id, status, last_status_change, acknowledged through): "
                + ", ".join(f"({c.job_id}, {c.status}, {c.last_status_change}, {c.via})"
                            for c in missing[:25]) + (" ..." if len(missing) > 25 else ""))
        if late:
            problems.append(
                f"{listener.name}: {len(late)} changes arrived more than {WINDOW:.0f} s after "
                "the acknowledgement or the store being reachable again: "
                "(job id, status, last_status_change, through, acknowledged, due from, "
                "arrived, lag): " + ", ".join(
                    f"({c.job_id}, {c.status}, {c.last_status_change[11:]}, {c.via}, "
                    f"{clock(c.acknowledged_at)}, {clock(ledger.base(c))}, "
                    f"{clock(ledger.base(c) + lag)}, {lag:.2f} s)" for c, lag in late[:25]))
        backwards = [(job_id, seq) for job_id, seq in order.items()
                     if any(b < a for a, b in pairwise(seq))]
        if backwards:
            problems.append(f"{listener.name}: last_status_change went backwards for jobs "
                            + ", ".join(f"{job_id} {seq}" for job_id, seq in backwards[:10]))
    max_lag = max(lags, default=0.0)
    store_only = sum(1 for change in expected if change.acknowledged_at is None)
    summary = (f"{len(expected) - store_only} acknowledged changes on "
               f"{len({c.job_id for c in expected})} jobs, {store_only} more final states seen "
               f"only in the store (answers lost in an outage); {len(ledger.outages)} outages ("
               + ", ".join(f"{clock(down)}-{clock(back)} {back - down:.2f} s"
                           for down, back in ledger.outages) + "); "
               f"{len(lags)} deliveries checked, max lag {max_lag:.3f} s, {collapsed} "
               f"superseded changes collapsed; failed calls {ledger.failed_calls}; listeners: "
               + "; ".join(f"{lst.name} {lst.connects} connects, closes {lst.closes[:5]}"
                           for lst in listeners))
    return Verdict(problems, summary, max_lag)


async def until_delivered(ledger: Ledger, listeners: list[Listener], final_rows: list[dict],
                          margin: float = 0.5) -> None:
    """Wait until every listener has every job's final state, or every deadline has passed."""
    expected = ledger.expected(final_rows)
    finals = {(row["id"], row["last_status_change"], row["status"]) for row in final_rows
              if row["id"] not in ledger.excluded}
    latest = max((ledger.deadline(c) for c in expected), default=time.time()) + margin
    while time.time() < latest:
        if all(finals <= listener.received() for listener in listeners):
            return
        await asyncio.sleep(0.05)


async def until_received(listeners: list[Listener], keys: set, give_up: float) -> bool:
    """Wait until every listener has every (job id, last_status_change, status) in `keys`."""
    deadline = time.monotonic() + give_up
    while not all(keys <= listener.received() for listener in listeners):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- pages -------------------------------------------------------------------------------------

@dataclass
class PageChecker:
    """Reads pages of up to 1000 rows while the chaos runs (`sweep`: every path on every server,
    one read at a time, so a read is in flight when the store dies). `expected` maps each path to
    its count, which the chaos never changes (the seeded job type): every 200 must have that
    count and exactly min(1000, count) rows, and the same ids as a fresh read afterwards."""

    client: Client
    base_urls: list[str]
    expected: dict[str, int]
    reads: dict = field(default_factory=dict)
    pages: dict = field(default_factory=dict)
    incomplete: list = field(default_factory=list)
    sweeps: int = 0

    async def sweep(self, give_up: float = 60.0) -> None:
        """Read every path on every server until it answers 200 (503s while the store is down
        are counted and retried, so each sweep also reads right after the store is back). The
        paths take turns at going first, so a different one is in flight at each kill."""
        paths = list(self.expected.items())
        self.sweeps += 1
        first = self.sweeps % len(paths)
        deadline = time.monotonic() + give_up
        for path, count in paths[first:] + paths[:first]:
            for base_url in self.base_urls:
                tally = self.reads.setdefault(path, {"ok": 0, "unavailable": 0})
                while True:
                    status, body = await self.client.call(base_url + path, timeout=30)
                    if status == 200:
                        break
                    assert status in (None, 503), f"{path}: {status} {body}"
                    tally["unavailable"] += 1
                    assert time.monotonic() < deadline, (
                        f"harness: {path} on {base_url} still unavailable after "
                        f"{give_up:.0f} s")
                    await asyncio.sleep(0.2)
                tally["ok"] += 1
                ids = tuple(row["id"] for row in body["results"])
                if body["count"] != count or len(ids) != min(PAGE, count):
                    self.incomplete.append((path, base_url, len(ids), body["count"]))
                self.pages.setdefault(path, set()).add(ids)

    async def problems(self) -> list[str]:
        """Incomplete pages, and pages whose ids differ from a fresh read."""
        found = [f"page {path} on {url} had {n} rows and count {count}; expected "
                 f"{min(PAGE, self.expected[path])} rows of {self.expected[path]}"
                 for path, url, n, count in self.incomplete[:20]]
        for path, count in self.expected.items():
            status, fresh = await self.client.until_ok(self.base_urls[0] + path)
            assert status == 200, f"{path}: {status} {fresh}"
            want = tuple(row["id"] for row in fresh["results"])
            if fresh["count"] != count or len(want) != min(PAGE, count):
                found.append(f"fresh read of {path} has {len(want)} rows, count "
                             f"{fresh['count']}; expected {min(PAGE, count)} of {count}")
            for ids in self.pages.get(path, ()):
                if ids != want:
                    found.append(f"page {path} read during the chaos differs from a fresh read: "
                                 f"{len(ids)} rows, {len(set(want) - set(ids))} ids missing, "
                                 f"e.g. {sorted(set(want) - set(ids))[:10]}")
        return found

    def summary(self) -> str:
        return ", ".join(f"{path}: {tally['ok']} read, {tally['unavailable']} unavailable"
                         for path, tally in self.reads.items())


def since(seconds_ago: float) -> str:
    return format_ms(now_ms() - int(seconds_ago * 1000))


# -- transitions -------------------------------------------------------------------------------

class Burst:
    """Status changes through the API of several servers, each acknowledged one recorded in the
    ledger: submit (201, QUEUED), cancel (PATCH 200, CANCELED), requeue (200, QUEUED). A job
    whose call got no acknowledgement is left alone afterwards (its state is then only known
    from the store's final read)."""

    def __init__(self, client: Client, servers: list[ChaosServer], ledger: Ledger,
                 job_type_id: int):
        self.client = client
        self.servers = servers
        self.ledger = ledger
        self.job_type_id = job_type_id
        self.uncertain: set[int] = set()
        self.busy: set[int] = set()
        self.turn = 0

    def _server(self) -> ChaosServer:
        self.turn += 1
        return self.servers[self.turn % len(self.servers)]

    async def submit(self) -> int | None:
        server = self._server()
        status, body = await self.client.call(server.url + "/queue/new-job/", "POST",
                                              {"job_type_id": self.job_type_id})
        if status == 201:
            assert body["status"] == "QUEUED", body
            self.ledger.acknowledge(body, f"submit@{server.name}")
            return body["id"]
        assert status in (None, 503), f"submit through {server.name}: {status} {body}"
        self.ledger.failed("submit")
        return None

    async def cancel(self, job_id: int) -> bool:
        server = self._server()
        status, body = await self.client.call(server.url + f"/jobs/{job_id}/", "PATCH",
                                              {"status": "CANCELED"})
        if status == 200:
            assert body["status"] == "CANCELED", body
            self.ledger.acknowledge(body, f"cancel@{server.name}")
            return True
        self.ledger.failed(f"cancel {status}")
        self.uncertain.add(job_id)
        return False

    async def requeue(self, job_id: int) -> bool:
        server = self._server()
        status, body = await self.client.call(server.url + "/queue/requeue-jobs/", "POST",
                                              {"job_ids": [job_id]})
        row = (next((r for r in body["results"] if r["id"] == job_id), None)
               if status == 200 else None)
        if row is not None and row["status"] == "QUEUED":
            self.ledger.acknowledge(row, f"requeue@{server.name}")
            return True
        self.ledger.failed(f"requeue {status}")
        self.uncertain.add(job_id)
        return False

    async def chain(self, steps: int) -> None:
        """submit, then cancel / requeue / cancel ... `steps` calls in all, one at a time."""
        job_id = await self.submit()
        if job_id is None:
            return
        await self.more(job_id, steps - 1, "QUEUED")

    async def more(self, job_id: int, steps: int, status: str) -> None:
        self.busy.add(job_id)
        try:
            for _ in range(steps):
                ok = await (self.cancel(job_id) if status == "QUEUED" else self.requeue(job_id))
                if not ok:
                    return
                status = "CANCELED" if status == "QUEUED" else "QUEUED"
        finally:
            self.busy.discard(job_id)

    async def run(self, chains: int, old: int) -> None:
        """`chains` new jobs (1 to 4 calls each) and `old` earlier jobs moved on by two calls,
        all at once."""
        earlier = sorted((change for job_id, change in self.ledger.last_acknowledged().items()
                          if job_id not in self.uncertain and job_id not in self.busy),
                         key=lambda change: change.acknowledged_at)[:old]  # least recent first
        await asyncio.gather(
            *(self.chain(1 + i % 4) for i in range(chains)),
            *(self.more(change.job_id, 2, change.status) for change in earlier))
