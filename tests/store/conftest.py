"""The store's tests run once per backend: nx-27017 and SecantusDB (both embedded), or only the
real MongoDB that MONGO_URL points at. Their `store` is tests/fixtures.py's, on the `mongo_url`
overridden here; every write filter they send is checked by the write guard."""

import os

import pytest
from pymongo import monitoring

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


@pytest.fixture(scope="session")
def mongo_url(backend):
    """The store tests' `store` opens its database on the backend of the run."""
    return backend[1]


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
