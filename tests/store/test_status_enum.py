"""Statuses are core.model StrEnums in the code and plain strings everywhere else: in the store
(written, matched and read back as BSON strings), in the API's JSON and in the pages."""

import json

import bson
import pytest

from core.model import EXE_STATUSES, JOB_STATUSES, ExeStatus, JobStatus
from presentation.templates import ENV


def test_statuses_are_their_names():
    for status in (*JOB_STATUSES, *EXE_STATUSES):
        assert status == status.name
        assert str(status) == f"{status}" == status.name
        assert json.dumps(status) == json.dumps(status.name)
        assert json.dumps({status: [status]}) == json.dumps({status.name: [status.name]})
        assert bson.encode({"s": status, "q": {"$in": [status]}}) == \
            bson.encode({"s": status.name, "q": {"$in": [status.name]}})
    assert ExeStatus.CANCELED == JobStatus.CANCELED
    assert hash(JobStatus.RUNNING) == hash("RUNNING")
    assert {"RUNNING": 1}.get(JobStatus.RUNNING) == 1


def test_templates_render_statuses_as_their_names():
    template = ENV.from_string("{{ s }}|{{ s|e }}|{{ s|lower }}|{{ s|capitalize }}|{{ s|tojson }}"
                               "|{{ s == 'FAILED' }}|{{ counts[s] }}|{{ 'FAILED' in statuses }}")
    assert template.render(s=JobStatus.FAILED, counts={"FAILED": 3}, statuses=JOB_STATUSES) == \
        template.render(s="FAILED", counts={JobStatus.FAILED: 3}, statuses=("FAILED",)) == \
        'FAILED|FAILED|failed|Failed|"FAILED"|True|3|True'


@pytest.mark.gen_test
async def test_the_store_keeps_statuses_as_strings(store, make):
    job_type = await make.job_type("scan")
    job, exe = await make.queued(job_type)
    assert job["status"] is JobStatus.QUEUED and exe["status"] is ExeStatus.QUEUED
    stored = await store.jobs.get_job(job["id"])
    assert type(stored["status"]) is str and stored["status"] == JobStatus.QUEUED
    stored_exe = await store.jobs.get_exe(exe["id"])
    assert type(stored_exe["status"]) is str and stored_exe["status"] == ExeStatus.QUEUED
    jobs = store.db["jobs"]
    assert await jobs.count_documents({"status": JobStatus.QUEUED}) == 1
    assert await jobs.count_documents({"status": {"$in": list(JOB_STATUSES)}}) == 1
    assert await store.db.count("jobs", {"status": JobStatus.QUEUED}) == 1
    assert await store.jobs.count_queued([job_type["id"]]) == 1
    started = await store.jobs.start_execution(exe["id"], 1)
    assert started is not None
    assert (await store.jobs.get_job(job["id"]))["status"] == "RUNNING"
    assert await store.jobs.exe_statuses([exe["id"]]) == {exe["id"]: "RUNNING"}
