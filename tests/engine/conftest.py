"""Engine fixtures: the app with its data folder (tests/fixtures.py `data_dir`), and engines a
test starts explicitly (the shared `app` fixture never runs one), stopped before the test's
database is dropped."""

import pytest

from engine.scheduler import Engine
from tests.engine.processes import Gate


@pytest.fixture
def app_settings(data_dir):
    return {"data_dir": str(data_dir)}


@pytest.fixture
def start_engine(store, data_dir, io_loop):
    """`await start_engine(cpus=..., ...)`: a running engine on this test's store."""
    engines = []

    async def start(**options):
        settings = {"cpus": 4, "mem": 4096, "cancel_grace": 2.0, "poll_interval": 0.05}
        settings.update(options)
        engine = Engine(store, data_dir, **settings)
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        io_loop.run_sync(engine.stop, timeout=60)


@pytest.fixture
def gate(data_dir, io_loop):
    """A gate the test opens for its gated jobs (tests/engine/processes.py), closed before the
    loop is."""
    gate = Gate(data_dir)
    yield gate
    io_loop.run_sync(gate.close)
