"""/queue/new-job/, /queue/status/ and /queue/requeue-jobs/."""

import pytest

from core.times import format_ms
from tests.responses import JOB_DETAILS_KEYS, JOB_KEYS, assert_plain_error

INTERFACE = {"command": "run", "command_arguments": "${level} ${scene}",
             "input_data": [{"name": "level", "type": "property"},
                            {"name": "scene", "type": "file", "media_types": ["image/png"]}]}


async def scene_type(make):
    job_type = await make.job_type("scenes", interface=INTERFACE)
    workspace = await make.store.files.create_workspace("raw", "Raw", "/raw")
    scene = await make.store.files.create_file(workspace["id"], "s.png", "image/png",
                                               3 * 1024 * 1024, "s.png")
    return job_type, scene


@pytest.mark.gen_test
async def test_new_job_is_queued_with_one_queued_execution(api, make):
    job_type, scene = await scene_type(make)
    data = {"input_data": [{"name": "level", "value": "2"},
                           {"name": "scene", "file_id": scene["id"]}]}
    status, body, headers = await api.post("/queue/new-job/",
                                           {"job_type_id": job_type["id"], "job_data": data})
    assert status == 201
    assert list(body) == JOB_DETAILS_KEYS
    assert body["status"] == "QUEUED" and body["num_exes"] == 1
    assert len(body["job_exes"]) == 1 and body["job_exes"][0]["status"] == "QUEUED"
    exe_id = body["job_exes"][0]["id"]
    assert headers["Location"] == f"/job-executions/{exe_id}/"
    assert body["job_exes"][0]["command_arguments"] == "${level} ${scene}"
    assert body["event"]["type"] == "USER"
    assert body["event"]["description"] == {"user": "Anonymous"}
    assert body["data"] == {"version": "1.0", "input_data": data["input_data"],
                            "output_data": []}
    assert body["disk_in_required"] == 3.0
    assert body["queued"] == body["last_status_change"]
    assert [i["value"] if i["type"] == "property" else i["value"]["id"]
            for i in body["inputs"]] == ["2", scene["id"]]
    stored = await make.store.jobs.get_job(body["id"])
    assert stored["status"] == "QUEUED" and stored["latest_exe_id"] == exe_id
    exes = await make.store.jobs.exes_for_job(body["id"])
    assert [(e["id"], e["status"]) for e in exes] == [(exe_id, "QUEUED")]
    _, exe_body, _ = await api.get(headers["Location"])
    assert exe_body["job"]["id"] == body["id"]


@pytest.mark.gen_test
async def test_new_job_without_data_defaults_to_empty(api, make):
    job_type = await make.job_type()
    status, body, _ = await api.post("/queue/new-job/", {"job_type_id": job_type["id"]})
    assert status == 201 and body["data"] == {"version": "1.0", "input_data": [],
                                              "output_data": []}


@pytest.mark.gen_test
async def test_new_job_validation(api, make):
    job_type, scene = await scene_type(make)
    type_id = job_type["id"]
    cases = [
        ({}, 'Missing required parameter: "job_type_id"'),
        ({"job_type_id": "BAD"}, 'Parameter must be an integer: "job_type_id"'),
        ({"job_type_id": True}, "job_type_id"),
        ({"job_type_id": 99999999999999999999}, "job_type_id 99999999999999999999 is out of"),
        ({"job_type_id": type_id, "job_data": []},
         'Parameter must be a valid JSON object: "job_data"'),
        ({"job_type_id": type_id, "job_data": {}}, 'required input "level" is missing'),
        ({"job_type_id": type_id, "job_data": {"input_data": [
            {"name": "level", "value": "1"}, {"name": "scene", "file_id": 4040}]}},
         "file 4040 does not exist"),
        ({"job_type_id": type_id, "job_data": {"input_data": [
            {"name": "level", "value": "1"},
            {"name": "scene", "file_id": 99999999999999999999}]}}, "file_id"),
        ({"job_type_id": type_id, "job_data": {"input_data": [
            {"name": "level", "value": "1"}, {"name": "scene", "file_id": scene["id"]},
            {"name": "extra", "value": "x"}]}}, 'unknown input "extra"'),
    ]
    for payload, fragment in cases:
        status, body, headers = await api.post("/queue/new-job/", payload)
        assert_plain_error(status, body, headers, 400, fragment)
    assert (await api.get("/jobs/"))[1]["count"] == 0


@pytest.mark.gen_test
async def test_new_job_unknown_type_is_404_and_form_data_is_415(api):
    status, body, headers = await api.post("/queue/new-job/", {"job_type_id": 12345})
    assert_plain_error(status, body, headers, 404, "Job type 12345 does not exist")
    status, body, headers = await api.call(
        "POST", "/queue/new-job/", raw=b"job_type_id=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_plain_error(status, body, headers, 415, "application/json")


@pytest.mark.gen_test
async def test_queue_status_groups_queued_jobs_by_type(api, make):
    slow = await make.job_type("slow", "1.0", priority=50)
    fast = await make.job_type("fast", "2.0", priority=10)
    paused = await make.job_type("paused", "1.0", priority=1, is_paused=True)
    first, _ = await make.queued(slow)
    await make.queued(slow)
    await make.queued(fast)
    await make.queued(paused)
    await make.running(fast)
    await make.pending(slow)
    status, body, _ = await api.get("/queue/status/")
    assert status == 200
    assert body == {"queue_status": [
        {"count": 1, "longest_queued": body["queue_status"][0]["longest_queued"],
         "highest_priority": 10, "job_type_name": "fast", "job_type_version": "2.0",
         "is_job_type_paused": False},
        {"count": 2, "longest_queued": format_ms(first["queued"]), "highest_priority": 50,
         "job_type_name": "slow", "job_type_version": "1.0", "is_job_type_paused": False},
        {"count": 1, "longest_queued": body["queue_status"][2]["longest_queued"],
         "highest_priority": 1, "job_type_name": "paused", "job_type_version": "1.0",
         "is_job_type_paused": True}]}


@pytest.mark.gen_test
async def test_queue_status_empty(api):
    assert (await api.get("/queue/status/"))[:2] == (200, {"queue_status": []})


@pytest.mark.gen_test
async def test_requeue_requeues_failed_and_canceled_jobs(api, make):
    job_type = await make.job_type()
    failed, _ = await make.failed(job_type)
    canceled, _ = await make.running(job_type)
    await make.store.jobs.cancel_job(canceled["id"])
    never_ran = await make.pending(job_type)
    await make.store.jobs.cancel_job(never_ran["id"])
    done, _ = await make.completed(job_type)
    status, body, _ = await api.post("/queue/requeue-jobs/", {
        "job_ids": [failed["id"], canceled["id"], never_ran["id"], done["id"]], "priority": 3})
    assert status == 200 and body["count"] == 4
    assert all(list(r) == JOB_KEYS for r in body["results"])
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        (failed["id"], "QUEUED"), (canceled["id"], "QUEUED"), (never_ran["id"], "BLOCKED"),
        (done["id"], "COMPLETED")]
    assert body["results"][0]["priority"] == 3 and body["results"][0]["num_exes"] == 2
    assert body["results"][0]["max_tries"] == 2
    exes = await make.store.jobs.exes_for_job(failed["id"])
    assert [e["status"] for e in exes] == ["QUEUED", "FAILED"]


@pytest.mark.gen_test
async def test_requeue_by_status_and_type(api, make):
    type1 = await make.job_type("test1")
    type2 = await make.job_type("test2")
    failed1, _ = await make.failed(type1)
    failed2, _ = await make.failed(type2)
    status, body, _ = await api.post("/queue/requeue-jobs/",
                                     {"status": "FAILED", "job_type_names": ["test2"]})
    assert status == 200 and [r["id"] for r in body["results"]] == [failed2["id"]]
    assert (await make.store.jobs.get_job(failed1["id"]))["status"] == "FAILED"


@pytest.mark.gen_test
async def test_requeue_errors(api, make):
    status, body, headers = await api.post("/queue/requeue-jobs/", {"job_ids": [1]})
    assert_plain_error(status, body, headers, 404, "No jobs match")
    for payload, fragment in (({"job_ids": "1"}, "job_ids must be a list of integers"),
                              ({"job_ids": [99999999999999999999]}, "out of range"),
                              ({"status": "DONE"}, "status 'DONE' is not valid"),
                              ({"priority": "high"}, "priority must be an integer"),
                              ({"started": "2020-01-01T00:00:00"}, "started:"),
                              ({"started": "P99999999999Y"}, "started:"),
                              ({"started": "P1D", "ended": "P2D"}, "started must be before")):
        status, body, headers = await api.post("/queue/requeue-jobs/", payload)
        assert_plain_error(status, body, headers, 400, fragment)
