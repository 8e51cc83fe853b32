"""GET /jobs/executions/ (jobs with their newest execution) and /job-executions/[{id}/]."""

import pytest

from core.times import format_ms
from tests.responses import (
    EXE_BASE_KEYS,
    EXE_DETAILS_KEYS,
    JOB_KEYS,
    JOB_TYPE_BASE_KEYS,
    TIME_FORMAT,
    assert_plain_error,
)


async def retried_job(make, job_type):
    """A job whose first execution failed with a SYSTEM error and whose second is RUNNING."""
    job, first = await make.running(job_type)
    error = await make.store.errors.by_name("node-lost")
    job = await make.store.jobs.fail_execution(first["id"], error)
    job, second = await make.store.jobs.start_execution(job["latest_exe_id"], None)
    return job, first, second


@pytest.mark.gen_test
async def test_each_job_comes_with_its_newest_execution(api, make):
    job_type = await make.job_type()
    retried, first, second = await retried_job(make, job_type)
    once, only = await make.completed(job_type)
    never = await make.pending(job_type)
    status, body, _ = await api.get("/jobs/executions/?order=id")
    assert status == 200 and body["count"] == 3
    rows = body["results"]
    assert [list(r) for r in rows] == [[*JOB_KEYS, "latest_job_exe"]] * 3
    assert [r["id"] for r in rows] == [retried["id"], once["id"], never["id"]]
    latest = rows[0]["latest_job_exe"]
    assert list(latest) == EXE_BASE_KEYS
    assert (latest["id"], latest["status"]) == (second["id"], "RUNNING")
    assert latest["job"] == {"id": retried["id"]} and latest["error"] is None
    assert latest["started"] == format_ms(second["started"])
    assert (rows[1]["latest_job_exe"]["id"], rows[1]["latest_job_exe"]["status"]) == (
        only["id"], "COMPLETED")
    assert rows[2]["latest_job_exe"] is None
    assert first["id"] != second["id"]


@pytest.mark.gen_test
async def test_jobs_executions_filters(api, make):
    type1 = await make.job_type("test1", category="test-1")
    type2 = await make.job_type("test2", category="test-2")
    running, _ = await make.running(type1)
    pending = await make.pending(type2)
    for query, want in (("status=RUNNING", running), ("status=PENDING", pending),
                        (f"job_id={running['id']}", running),
                        (f"job_type_id={type2['id']}", pending),
                        ("job_type_name=test1", running), ("job_type_category=test-2", pending)):
        _, body, _ = await api.get(f"/jobs/executions/?{query}")
        assert [r["id"] for r in body["results"]] == [want["id"]], query
    status, body, headers = await api.get("/jobs/executions/?order=nope")
    assert_plain_error(status, body, headers, 400, "order 'nope'")
    status, body, headers = await api.get("/jobs/executions/?page=2")
    assert_plain_error(status, body, headers, 404)


@pytest.mark.gen_test
async def test_execution_list_rows(api, make):
    job_type = await make.job_type("test1", category="test-1")
    retried, first, second = await retried_job(make, job_type)
    node_lost = await make.store.errors.by_name("node-lost")
    status, body, _ = await api.get("/job-executions/?order=id")
    assert status == 200 and body["count"] == 2
    rows = body["results"]
    assert [list(r) for r in rows] == [EXE_BASE_KEYS] * 2
    assert [(r["id"], r["status"]) for r in rows] == [(first["id"], "FAILED"),
                                                      (second["id"], "RUNNING")]
    job = rows[0]["job"]
    assert list(job) == ["id", "job_type", "job_type_rev", "event", "error", "status",
                         "priority", "num_exes"]
    assert list(job["job_type"]) == JOB_TYPE_BASE_KEYS
    assert job["job_type_rev"] == {"id": job_type["job_type_rev_id"]}
    assert job["event"] == {"id": retried["event"]["id"]}
    assert (job["status"], job["num_exes"], job["error"]) == ("RUNNING", 2, None)
    assert rows[0]["error"] == {"id": node_lost["id"], "name": "node-lost",
                                "title": node_lost["title"],
                                "description": node_lost["description"], "category": "SYSTEM"}
    assert rows[0]["node"] is None and rows[1]["error"] is None


@pytest.mark.gen_test
async def test_execution_list_filters(api, make):
    type1 = await make.job_type("test1", category="test-1")
    type2 = await make.job_type("test2", category="test-2")
    _, exe1 = await make.running(type1)
    _, exe2 = await make.queued(type2)
    for query, want in (("status=RUNNING", exe1), ("status=QUEUED", exe2),
                        (f"job_type_id={type2['id']}", exe2), ("job_type_name=test1", exe1),
                        ("job_type_category=test-2", exe2)):
        _, body, _ = await api.get(f"/job-executions/?{query}")
        assert [r["id"] for r in body["results"]] == [want["id"]], query
    _, body, _ = await api.get("/job-executions/?order=-id")
    assert [r["id"] for r in body["results"]] == [exe2["id"], exe1["id"]]
    for query, fragment in (("status=PENDING", "status 'PENDING'"), ("node_id=x", "node_id"),
                            ("node_id=99999999999999999999", "out of range"),
                            ("order=data", "order 'data'"), ("ended=P1D&started=PT1H", "before")):
        status, body, headers = await api.get(f"/job-executions/?{query}")
        assert_plain_error(status, body, headers, 400, fragment)


@pytest.mark.gen_test
async def test_execution_details(api, make):
    job_type = await make.job_type()
    job, exe = await make.completed(job_type, results={"version": "1.0", "output_data": []})
    status, body, _ = await api.get(f"/job-executions/{exe['id']}/")
    assert status == 200
    assert list(body) == EXE_DETAILS_KEYS
    assert (body["id"], body["status"]) == (exe["id"], "COMPLETED")
    assert list(body["job"]) == JOB_KEYS and body["job"]["id"] == job["id"]
    assert body["job"]["status"] == "COMPLETED"
    assert body["node"] is None and body["error"] is None
    assert body["results"] == {"version": "1.0", "output_data": []}
    assert body["environment"] == {}
    for key in ("created", "queued", "started", "ended", "last_modified"):
        assert TIME_FORMAT.match(body[key]), key
    status, body, headers = await api.get("/job-executions/31337/")
    assert_plain_error(status, body, headers, 404, "Job execution 31337 does not exist")
