"""Clients of the live update stream (ws://HOST/ws/jobs/updates/) and what they compare with."""

import asyncio
import json

import tornado.websocket
from tornado.httpclient import HTTPRequest

from tests.tokens import OPERATOR_HEADERS


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://", 1) + "/ws/jobs/updates/" + (
        f"?{query}" if query else "")


class Subscriber:
    """A WebSocket client that reads every message in the background and keeps them."""

    def __init__(self, connection):
        self.connection = connection
        self.messages: list[dict] = []
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base_url: str, query: str = "", headers=None) -> "Subscriber":
        request = HTTPRequest(ws_url(base_url, query),
                              headers=OPERATOR_HEADERS if headers is None else headers)
        return cls(await tornado.websocket.websocket_connect(request))

    async def _read(self):
        while True:
            text = await self.connection.read_message()
            if text is None:
                self.closed.set()
                self._arrived.set()
                return
            self.received(json.loads(text))
            self._arrived.set()

    def received(self, message: dict) -> None:
        self.messages.append(message)

    @property
    def rows(self) -> list[dict]:
        return [row for message in self.messages for row in message["results"]]

    def keys(self) -> list[tuple[int, str]]:
        return [(row["id"], row["last_status_change"]) for row in self.rows]

    async def until(self, predicate):
        """Wait until `predicate(self)` holds (the test's own timeout bounds the wait)."""
        while not predicate(self):
            if self.closed.is_set():
                raise AssertionError(f"closed ({self.connection.close_code} "
                                     f"{self.connection.close_reason}) before the condition held")
            self._arrived.clear()
            await self._arrived.wait()

    async def until_row(self, job_id: int, status: str) -> dict:
        await self.until(lambda s: any(r["id"] == job_id and r["status"] == status
                                       for r in s.rows))
        return next(r for r in self.rows if r["id"] == job_id and r["status"] == status)

    def close(self):
        self.connection.close()
        self._reader.cancel()


async def until_live(hub, count: int) -> None:
    """Wait until `count` subscribers are registered with the hub and past their catch-up."""
    while sum(1 for s in hub.subscribers if not s.buffering) < count:
        await asyncio.sleep(0.01)


async def update_row(api, job_id: int) -> dict:
    """The job's row from GET /jobs/updates/, the shape every live message must match."""
    status, body, _ = await api.get(f"/jobs/updates/?job_id={job_id}")
    assert status == 200 and body["count"] == 1, body
    return body["results"][0]


class Collected:
    """The feed's batches, with a wait for one job's status."""

    def __init__(self):
        self.jobs: list[dict] = []
        self.arrived = asyncio.Event()

    async def on_jobs(self, batch: list[dict]) -> None:
        self.jobs.extend(batch)
        self.arrived.set()

    async def until(self, job_id: int, status: str, within: float = 5.0) -> None:
        async def wait():
            while not any(j["id"] == job_id and j["status"] == status for j in self.jobs):
                self.arrived.clear()
                await self.arrived.wait()
        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(f"job {job_id} {status} not handed out within {within} s") \
                from None


async def submit(store, job_type: dict) -> dict:
    job, _ = await store.jobs.submit_job(job_type, {}, await store.jobs.create_event("USER", {}),
                                         "")
    return job
