"""Polling the store and the engine until something holds, failing with what was awaited."""

import asyncio
import shutil
import sys
import time

# The jobs' Python: sandboxed jobs run as `nobody`, who may not reach the venv's interpreter (e.g.
# under /root), and the tests' job scripts use only the standard library.
PY = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
DEADLINE = 60.0


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
