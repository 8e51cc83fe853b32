"""The store's tests run once per backend: nx-27017 and SecantusDB (both embedded), or only the
real MongoDB that MONGO_URL points at."""

import os
import uuid

import pytest
from pymongo import monitoring

from store import Store
from store.embedded import EmbeddedMongo
from tests.isolation import assert_databases_isolated
from tests.store.write_guard import WriteFilterGuard

BACKENDS = ["mongo"] if os.environ.get("MONGO_URL") else ["nx", "secantus"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request, tmp_path_factory):
    """(kind, url) of one running backend, shared by every store test of the session; checked
    to keep its databases apart, since each test drops its own there."""
    if request.param == "mongo":
        assert_databases_isolated(os.environ["MONGO_URL"])
        yield "mongo", os.environ["MONGO_URL"]
        return
    embedded = EmbeddedMongo(tmp_path_factory.mktemp(request.param), kind=request.param)
    url = embedded.start()
    try:
        assert_databases_isolated(url)
        yield request.param, url
    finally:
        embedded.stop()


@pytest.fixture
def store(backend, io_loop):
    """A prepared Store on a database no other test uses, dropped afterwards (on the embedded nx
    its file goes with it)."""
    store = Store(backend[1], f"test_{uuid.uuid4().hex[:12]}")
    io_loop.run_sync(store.open)
    yield store
    io_loop.run_sync(lambda: store.db.client.drop_database(store.db.db.name))
    io_loop.run_sync(store.close)


class Maker:
    """Builds job types and jobs through the store's own functions."""

    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def interface(*inputs: str) -> dict:
        """A Scale job interface with one property input per name."""
        return {"version": "1.0", "command": "run.sh", "command_arguments": "${input}",
                "input_data": [{"name": name, "type": "property", "required": True}
                               for name in inputs],
                "output_data": []}

    async def job_type(self, name: str, version: str = "1.0", **fields) -> dict:
        return await self.store.job_types.create(name, version, self.interface("input"),
                                                 fields)

    async def event(self) -> dict:
        return await self.store.jobs.create_event("USER", {"user": "test"})

    async def pending(self, job_type: dict) -> dict:
        """A PENDING job, as Scale's create_job leaves it."""
        return await self.store.jobs.create_job(job_type, {"version": "1.0", "input_data": []},
                                                await self.event())

    async def queued(self, job_type: dict) -> tuple[dict, dict]:
        """A QUEUED job with its QUEUED execution, as POST /queue/new-job/ makes it."""
        return await self.store.jobs.submit_job(job_type, {"version": "1.0", "input_data": []},
                                                await self.event(), "run.sh")

    async def running(self, job_type: dict, node_id: int = 1) -> tuple[dict, dict]:
        _, exe = await self.queued(job_type)
        return await self.store.jobs.start_execution(exe["id"], node_id)


@pytest.fixture
def make(store):
    return Maker(store)


# Every store client is created after this, so the guard sees every command of the store tests.
WRITE_GUARD = WriteFilterGuard()
monitoring.register(WRITE_GUARD)


@pytest.fixture(autouse=True)
def write_guard():
    """Fails the test if any write filter used `$in`, `$nin` or `$all` (tests/store/write_guard.py
    says why)."""
    WRITE_GUARD.take()
    WRITE_GUARD.armed = True
    yield WRITE_GUARD
    WRITE_GUARD.armed = False
    if flagged := WRITE_GUARD.take():
        pytest.fail(f"write filters nx-27017 may apply to the wrong document: {flagged}")
