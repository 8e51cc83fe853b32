"""Builders for API tests: job types and jobs made through the store's own transitions, so every
status a test sees was reached the way the job engine reaches it."""

import re

import pytest

from core.interface import validate_interface
from presentation import models

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

SIMPLE_INTERFACE = {"command": "run", "command_arguments": ""}

# Field lists in order, from the response models (presentation/models.py) the serializers and the
# OpenAPI document are built from.
JOB_TYPE_BASE_KEYS = list(models.JobTypeBase.keys)
JOB_TYPE_KEYS = list(models.JobType.keys)
JOB_TYPE_DETAILS_KEYS = list(models.JobTypeDetails.keys)
JOB_KEYS = list(models.Job.keys)
JOB_DETAILS_KEYS = list(models.JobDetails.keys)
EXE_BASE_KEYS = list(models.JobExecutionBase.keys)
EXE_DETAILS_KEYS = list(models.JobExecutionDetails.keys)
FILE_KEYS = list(models.ScaleFile.keys)
PRODUCT_KEYS = list(models.ProductFile.keys)
ERROR_BASE_KEYS = list(models.ErrorBase.keys)
ERROR_KEYS = list(models.Error.keys)


def assert_plain_error(status, body, headers, code: int, *fragments: str) -> None:
    """A client error: the code, text/plain, one line, naming what went wrong."""
    assert status == code, body
    assert headers["Content-Type"].startswith("text/plain"), headers["Content-Type"]
    assert isinstance(body, str) and body.endswith("\n") and body.count("\n") == 1, body
    assert "Traceback" not in body
    for fragment in fragments:
        assert fragment in body, (fragment, body)


class Maker:
    """Creates records through the store, the same functions the job engine calls."""

    def __init__(self, store):
        self.store = store

    async def job_type(self, name="test1", version="1.0", category="test-1", interface=None,
                       **fields) -> dict:
        return await self.store.job_types.create(
            name, version, validate_interface(interface or SIMPLE_INTERFACE),
            {"category": category, **fields})

    async def event(self) -> dict:
        return await self.store.jobs.create_event("USER", {"user": "Anonymous"})

    async def pending(self, job_type: dict, data=None) -> dict:
        return await self.store.jobs.create_job(job_type, data or {}, await self.event())

    async def queued(self, job_type: dict, data=None, input_file_ids=()) -> tuple[dict, dict]:
        return await self.store.jobs.submit_job(job_type, data or {}, await self.event(),
                                                "args", input_file_ids=input_file_ids)

    async def running(self, job_type: dict, data=None, input_file_ids=()) -> tuple[dict, dict]:
        _, exe = await self.queued(job_type, data, input_file_ids)
        return await self.store.jobs.start_execution(exe["id"], None)

    async def completed(self, job_type: dict, results=None) -> tuple[dict, dict]:
        job, exe = await self.running(job_type)
        job = await self.store.jobs.complete_execution(exe["id"], results)
        return job, await self.store.jobs.get_exe(exe["id"])

    async def failed(self, job_type: dict, error_name="algorithm-unknown") -> tuple[dict, dict]:
        job, exe = await self.running(job_type)
        error = await self.store.errors.by_name(error_name)
        job = await self.store.jobs.fail_execution(exe["id"], error)
        return job, await self.store.jobs.get_exe(exe["id"])

    async def touch(self, job_id: int, last_modified: int, last_status_change=None) -> None:
        """Pin a job's times so range and order tests do not depend on the clock."""
        fields = {"last_modified": last_modified}
        if last_status_change is not None:
            fields["last_status_change"] = last_status_change
        await self.store.db["jobs"].update_one({"id": job_id}, {"$set": fields})


@pytest.fixture
def make(store):
    return Maker(store)
