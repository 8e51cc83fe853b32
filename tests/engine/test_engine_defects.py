"""Issue 14's engine defects: what an execution shows it ran, and a log that says only what is
true."""

import asyncio
import logging
import time

import pytest

from engine.runner import ExecutionRunner
from tests.waiting import PY, wait_job


@pytest.mark.gen_test(timeout=120)
async def test_execution_shows_the_resolved_arguments_it_ran(api, make, store, start_engine):
    job_type = await make.command_type(
        "sleeper", PY, "-c pass ${secs} '${label} x'",
        inputs=[{"name": "secs", "type": "property"}, {"name": "label", "type": "property"}])
    job = await make.submit(job_type, inputs=[{"name": "secs", "value": "0"},
                                              {"name": "label", "value": "two words"}])
    await start_engine()
    await wait_job(store, job["id"], "COMPLETED")
    exe_id = job["job_exes"][0]["id"]
    _, exe, _ = await api.get(f"/job-executions/{exe_id}/")
    assert exe["command_arguments"] == "-c pass 0 'two words x'"
    _, details, _ = await api.get(f"/jobs/{job['id']}/")
    assert details["job_exes"][0]["command_arguments"] == "-c pass 0 'two words x'"
    _, jt, _ = await api.get(f"/job-types/{job_type['id']}/")
    assert jt["interface"]["command_arguments"] == "-c pass ${secs} '${label} x'"


@pytest.mark.gen_test(timeout=120)
async def test_a_job_that_finishes_normally_is_not_logged_as_stopped(api, make, store,
                                                                     start_engine, caplog,
                                                                     monkeypatch):
    # Clean-up after a job ends takes a moment; the cancel watcher must not mistake the
    # execution's own COMPLETED for a cancel in that time.
    clean_up = ExecutionRunner._clean_up

    def slow_clean_up(self):
        time.sleep(0.5)
        clean_up(self)
    monkeypatch.setattr(ExecutionRunner, "_clean_up", slow_clean_up)
    job_type = await make.command_type("quick", PY, "-c pass")
    jobs = [await make.submit(job_type) for _ in range(3)]
    caplog.set_level(logging.INFO, logger="jobdeck")
    engine = await start_engine(poll_interval=0.05)
    for job in jobs:
        await wait_job(store, job["id"], "COMPLETED")
    while engine.runners:
        await asyncio.sleep(0.05)
    assert [r.getMessage() for r in caplog.records if "stopping it" in r.getMessage()] == []
