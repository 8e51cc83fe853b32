"""Engine fixtures: the app with a data folder, and engines a test starts explicitly (the shared
`app` fixture never runs one), stopped before the test's database is dropped."""

import asyncio
import sys
import time
from urllib.parse import urlencode

import pytest

from core.interface import validate_error_mapping, validate_interface
from engine.scheduler import Engine
from server import make_app
from tests.tokens import TEST_SETTINGS

PY = sys.executable
DEADLINE = 60.0


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def app(store, hub, data_dir):
    return make_app(store, TEST_SETTINGS.replace(data_dir=str(data_dir)), hub)


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


async def wait_for(check, what: str, deadline: float = DEADLINE):
    """Poll the async `check` until it returns something truthy; fail naming `what`."""
    end = time.monotonic() + deadline
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}; last saw {result!r}")
        await asyncio.sleep(0.05)


async def wait_job(store, job_id: int, *statuses: str) -> dict:
    async def check():
        job = await store.jobs.get_job(job_id)
        return job if job["status"] in statuses else None
    return await wait_for(check, f"job {job_id} to become {'/'.join(statuses)}")


async def wait_passes(engine, count: int = 3) -> None:
    """Let the scheduler make `count` more full passes."""
    target = engine.passes + count

    async def check():
        return engine.passes >= target
    await wait_for(check, f"{count} scheduling passes")


async def make_job_type(store, name: str, command: str, arguments: str = "", inputs=(),
                        outputs=(), error_mapping=None, **fields) -> dict:
    interface = validate_interface({"command": command, "command_arguments": arguments,
                                    "input_data": list(inputs), "output_data": list(outputs)})
    if error_mapping is not None:
        fields["error_mapping"] = validate_error_mapping(
            {"version": "1.0", "exit_codes": error_mapping}, await store.errors.names())
    fields.setdefault("cpus_required", 1.0)
    return await store.job_types.create(name, "1.0", interface, {"category": "test", **fields})


async def submit(api, job_type: dict, inputs=(), outputs=()) -> dict:
    status, body, _ = await api.post("/queue/new-job/", {
        "job_type_id": job_type["id"],
        "job_data": {"version": "1.0", "input_data": list(inputs), "output_data": list(outputs)}})
    assert status == 201, body
    return body


async def make_workspace(api, name="products") -> dict:
    status, body, _ = await api.post("/workspaces/", {"name": name})
    assert status == 201, body
    return body


async def upload(api, workspace_id: int, file_name: str, data: bytes,
                 media_type="text/plain") -> dict:
    query = urlencode({"workspace_id": workspace_id, "file_name": file_name,
                       "media_type": media_type})
    status, body, _ = await api.call("POST", f"/files/?{query}", raw=data,
                                     headers={"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return body
