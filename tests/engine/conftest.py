"""Engine fixtures: the app with its data folder (tests/fixtures.py `data_dir`; engines come
from its `start_engine`), and the gate gated jobs wait on."""

import pytest

from tests.engine.processes import Gate


@pytest.fixture
def app_settings(data_dir):
    return {"data_dir": str(data_dir)}


@pytest.fixture
def gate(data_dir, io_loop):
    """A gate the test opens for its gated jobs (tests/engine/processes.py), closed before the
    loop is."""
    gate = Gate(data_dir)
    yield gate
    io_loop.run_sync(gate.close)
