"""Fixtures of the live-update tests."""

import pytest

from store import Store


@pytest.fixture
def other_process(store, mongo_url, io_loop):
    """A second Store on the test's database, as another server process has: its status writes
    reach this process's feed only through the store (no change listener joins them)."""
    other = Store(mongo_url, store.db.db.name)
    io_loop.run_sync(other.open)
    yield other
    io_loop.run_sync(other.close)
