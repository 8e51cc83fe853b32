"""PATCH /jobs/{id}/: only {"status": "CANCELED"}, from the statuses that can be canceled."""

import pytest

from tests.responses import JOB_DETAILS_KEYS, assert_plain_error

CANCEL = {"status": "CANCELED"}


async def job_in(make, status: str) -> tuple[dict, dict | None]:
    """A job in `status`, reached through the store's transitions, and its latest execution."""
    job_type = await make.job_type()
    if status == "PENDING":
        return await make.pending(job_type), None
    if status == "BLOCKED":
        canceled = await make.pending(job_type)
        await make.store.jobs.cancel_job(canceled["id"])
        return await make.store.jobs.requeue_job(canceled["id"]), None
    if status == "QUEUED":
        return await make.queued(job_type)
    if status == "RUNNING":
        return await make.running(job_type)
    if status == "FAILED":
        return await make.failed(job_type)
    return await make.completed(job_type)


@pytest.mark.gen_test
@pytest.mark.parametrize("status", ["PENDING", "BLOCKED", "QUEUED", "RUNNING", "FAILED"])
async def test_cancel_works_from_every_unfinished_status(api, make, status):
    job, _ = await job_in(make, status)
    assert job["status"] == status
    code, body, headers = await api.patch(f"/jobs/{job['id']}/", CANCEL)
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    assert list(body) == JOB_DETAILS_KEYS
    assert body["id"] == job["id"] and body["status"] == "CANCELED"
    assert body["ended"] is not None
    assert body["last_status_change"] == body["last_modified"]
    stored = await make.store.jobs.get_job(job["id"])
    assert stored["status"] == "CANCELED"
    _, again, _ = await api.get(f"/jobs/{job['id']}/")
    assert again == body


@pytest.mark.gen_test
@pytest.mark.parametrize("status", ["QUEUED", "RUNNING"])
async def test_cancel_also_cancels_the_unfinished_execution(api, make, status):
    job, exe = await job_in(make, status)
    _, body, _ = await api.patch(f"/jobs/{job['id']}/", CANCEL)
    assert [(e["id"], e["status"]) for e in body["job_exes"]] == [(exe["id"], "CANCELED")]
    stored = await make.store.jobs.get_exe(exe["id"])
    assert stored["status"] == "CANCELED" and stored["ended"] is not None


@pytest.mark.gen_test
async def test_cancel_leaves_a_finished_execution_alone(api, make):
    job, exe = await job_in(make, "FAILED")
    _, body, _ = await api.patch(f"/jobs/{job['id']}/", CANCEL)
    assert body["status"] == "CANCELED"
    assert [(e["id"], e["status"]) for e in body["job_exes"]] == [(exe["id"], "FAILED")]


@pytest.mark.gen_test
@pytest.mark.parametrize("status", ["COMPLETED", "CANCELED"])
async def test_finished_jobs_cannot_be_canceled(api, make, status):
    job, _ = await job_in(make, "COMPLETED" if status == "COMPLETED" else "PENDING")
    if status == "CANCELED":
        await make.store.jobs.cancel_job(job["id"])
    before = await make.store.jobs.get_job(job["id"])
    code, body, headers = await api.patch(f"/jobs/{job['id']}/", CANCEL)
    # Plain words, without the list of statuses (issue 14 defect 10).
    assert (code, body) == (400, {
        "COMPLETED": f"Job {job['id']} has already completed, so it cannot be canceled.\n",
        "CANCELED": f"Job {job['id']} is already canceled.\n"}[status])
    assert_plain_error(code, body, headers, 400)
    assert await make.store.jobs.get_job(job["id"]) == before


@pytest.mark.gen_test
async def test_other_fields_are_named_in_a_400(api, make):
    job, _ = await job_in(make, "PENDING")
    code, body, headers = await api.patch(f"/jobs/{job['id']}/",
                                          {"status": "CANCELED", "priority": 1, "data": {}})
    assert_plain_error(code, body, headers, 400, "Unexpected fields: data, priority")
    assert (await make.store.jobs.get_job(job["id"]))["status"] == "PENDING"


@pytest.mark.gen_test
@pytest.mark.parametrize("payload, fragment", [
    ({}, 'Missing field "status"'),
    ({"status": "QUEUED"}, "status 'QUEUED' is not allowed"),
    ({"status": "canceled"}, "status 'canceled' is not allowed"),
    ({"status": None}, "status None is not allowed"),
    ({"status": 5}, "status 5 is not allowed"),
])
async def test_missing_or_invalid_status_is_a_400(api, make, payload, fragment):
    job, _ = await job_in(make, "PENDING")
    code, body, headers = await api.patch(f"/jobs/{job['id']}/", payload)
    assert_plain_error(code, body, headers, 400, fragment)


@pytest.mark.gen_test
@pytest.mark.parametrize("raw, fragment", [
    (b"", "must be a JSON object"), (b"[]", "must be a JSON object"),
    (b'"CANCELED"', "must be a JSON object"), (b"{status", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"), (b"[" * 100_000, "nested too deeply"),
    (b'{"status": NaN}', "status nan is not allowed"),
])
async def test_bodies_that_are_not_json_objects_are_400s(api, make, raw, fragment):
    job, _ = await job_in(make, "PENDING")
    code, body, headers = await api.call("PATCH", f"/jobs/{job['id']}/", raw=raw)
    assert_plain_error(code, body, headers, 400, fragment)


@pytest.mark.gen_test
async def test_unknown_job_is_a_404(api):
    code, body, headers = await api.patch("/jobs/777/", CANCEL)
    assert_plain_error(code, body, headers, 404, "Job 777 does not exist")
