"""Builders for API tests: job types and jobs made through the store's own transitions, so every
status a test sees was reached the way the job engine reaches it."""

import re

import pytest

from core.interface import validate_interface

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

SIMPLE_INTERFACE = {"command": "run", "command_arguments": ""}

JOB_TYPE_BASE_KEYS = ["id", "name", "version", "title", "description", "category",
                      "author_name", "author_url", "is_system", "is_long_running", "is_active",
                      "is_operational", "is_paused", "icon_code"]
JOB_TYPE_KEYS = JOB_TYPE_BASE_KEYS + [
    "uses_docker", "docker_privileged", "docker_image", "revision_num", "priority",
    "max_scheduled", "timeout", "max_tries", "cpus_required", "mem_required",
    "disk_out_const_required", "disk_out_mult_required", "created", "archived", "paused",
    "last_modified"]
JOB_TYPE_DETAILS_KEYS = JOB_TYPE_KEYS + ["interface", "error_mapping", "errors", "trigger_rule",
                                         "job_counts_6h", "job_counts_12h", "job_counts_24h"]
JOB_KEYS = ["id", "job_type", "job_type_rev", "event", "error", "status", "priority", "num_exes",
            "timeout", "max_tries", "cpus_required", "mem_required", "disk_in_required",
            "disk_out_required", "created", "queued", "started", "ended", "last_status_change",
            "last_modified"]
JOB_DETAILS_KEYS = JOB_KEYS + ["data", "results", "recipes", "job_exes", "inputs", "outputs",
                               "input_files", "products"]
EXE_BASE_KEYS = ["id", "status", "command_arguments", "timeout", "pre_started", "pre_completed",
                 "pre_exit_code", "job_started", "job_completed", "job_exit_code", "post_started",
                 "post_completed", "post_exit_code", "created", "queued", "started", "ended",
                 "last_modified", "job", "node", "error"]
EXE_DETAILS_KEYS = EXE_BASE_KEYS + [
    "environment", "cpus_scheduled", "mem_scheduled", "disk_in_scheduled", "disk_out_scheduled",
    "disk_total_scheduled", "results", "current_stdout_url", "current_stderr_url",
    "results_manifest"]
FILE_KEYS = ["id", "workspace", "file_name", "media_type", "file_size", "data_type", "is_deleted",
             "uuid", "url", "created", "deleted", "data_started", "data_ended", "geometry",
             "center_point", "meta_data", "countries", "last_modified"]
PRODUCT_KEYS = FILE_KEYS + ["is_operational", "is_published", "published", "unpublished",
                            "job_type", "job", "job_exe"]
ERROR_BASE_KEYS = ["id", "name", "title", "description", "category"]
ERROR_KEYS = ERROR_BASE_KEYS + ["created", "last_modified"]


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
