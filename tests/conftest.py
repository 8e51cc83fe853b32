"""Fixtures: one real embedded store per test session, a fresh database and a real app on a real
port per test (pytest-tornado's `http_server`)."""

import json
import os
import uuid

import pytest
from tornado.httpclient import HTTPClientError

from live.hub import LiveHub
from server import make_app
from store import Store
from store.embedded import EmbeddedMongo
from tests.isolation import assert_databases_isolated
from tests.tokens import OPERATOR_HEADERS, TEST_SETTINGS


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    """MONGO_URL points the tests at a real MongoDB; otherwise an embedded nx-27017. Each test
    drops its own database there, so the store must keep databases apart (checked once)."""
    if os.environ.get("MONGO_URL"):
        assert_databases_isolated(os.environ["MONGO_URL"])
        yield os.environ["MONGO_URL"]
        return
    embedded = EmbeddedMongo(tmp_path_factory.mktemp("store"))
    try:
        url = embedded.start()
        assert_databases_isolated(url)
        yield url
    finally:
        embedded.stop()


@pytest.fixture
def store(mongo_url, io_loop):
    store = Store(mongo_url, f"test_{uuid.uuid4().hex[:12]}")
    io_loop.run_sync(store.open)
    yield store
    io_loop.run_sync(lambda: store.db.client.drop_database(store.db.db.name))
    io_loop.run_sync(store.close)


@pytest.fixture
def hub(store, io_loop):
    """The test app's live hub (server.serve makes one per server), stopped before the test's
    database is dropped."""
    hub = LiveHub(store)
    yield hub
    io_loop.run_sync(hub.stop)


@pytest.fixture
def app(store, hub):
    """Auth on, with the operator and viewer tokens of tests/tokens.py."""
    return make_app(store, TEST_SETTINGS, hub)


class API:
    """Small JSON client over pytest-tornado's http_client: returns (status, body, headers)."""

    def __init__(self, http_client, base_url):
        self.http_client = http_client
        self.base_url = base_url

    async def call(self, method: str, path: str, body=None, raw: bytes | None = None,
                   headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is None and method in ("POST", "PATCH", "PUT"):
            data = b""
        hdrs = {"Content-Type": "application/json", **OPERATOR_HEADERS, **(headers or {})}
        try:
            response = await self.http_client.fetch(self.base_url + path, method=method,
                                                    body=data, headers=hdrs)
        except HTTPClientError as exc:
            response = exc.response
        text = response.body.decode()
        content_type = response.headers.get("Content-Type", "")
        parsed = json.loads(text) if content_type.startswith("application/json") else text
        return response.code, parsed, response.headers

    async def get(self, path, **kw):
        return await self.call("GET", path, **kw)

    async def post(self, path, body=None, **kw):
        return await self.call("POST", path, body, **kw)

    async def patch(self, path, body=None, **kw):
        return await self.call("PATCH", path, body, **kw)


@pytest.fixture
def api(http_client, base_url):
    return API(http_client, base_url)
