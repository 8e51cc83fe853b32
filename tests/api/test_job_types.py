"""/job-types/ and /job-types/{id}/: create, list, read, edit (with revisions)."""

import pytest

from tests.responses import (
    JOB_TYPE_DETAILS_KEYS,
    JOB_TYPE_KEYS,
    TIME_FORMAT,
    assert_plain_error,
)

INTERFACE = {"command": "run.sh", "command_arguments": "${x}",
             "input_data": [{"name": "x", "type": "property"}]}


def new_type(**extra):
    return {"name": "my-type", "version": "1.0", "interface": INTERFACE, **extra}


@pytest.mark.gen_test
async def test_create_returns_201_location_and_details(api, store):
    status, body, headers = await api.post("/job-types/", new_type(
        title="My Type", category="tests", priority=7, timeout=60, cpus_required=2,
        error_mapping={"exit_codes": {"3": "timeout"}}, is_system=True))
    assert status == 201
    assert headers["Location"] == f"/job-types/{body['id']}/"
    assert list(body) == JOB_TYPE_DETAILS_KEYS
    assert (body["name"], body["version"], body["title"], body["category"]) == (
        "my-type", "1.0", "My Type", "tests")
    assert (body["priority"], body["timeout"], body["max_tries"]) == (7, 60, 3)
    assert (body["cpus_required"], body["mem_required"]) == (2.0, 64.0)
    assert body["is_system"] is False  # uneditable fields are dropped, as in Scale
    assert body["revision_num"] == 1
    assert body["interface"] == {**INTERFACE, "version": "1.0", "output_data": [],
                                 "shared_resources": [],
                                 "input_data": [{"name": "x", "type": "property",
                                                 "required": True}]}
    assert body["error_mapping"] == {"version": "1.0", "exit_codes": {"3": "timeout"}}
    assert [e["name"] for e in body["errors"]] == ["timeout"]
    assert body["trigger_rule"] is None
    assert body["job_counts_6h"] == body["job_counts_12h"] == body["job_counts_24h"] == []
    for key in ("created", "last_modified"):
        assert TIME_FORMAT.match(body[key])
    _, fetched, _ = await api.get(headers["Location"])
    assert fetched == body


@pytest.mark.gen_test
@pytest.mark.parametrize("payload, fragment", [
    ({"version": "1.0", "interface": INTERFACE}, 'Missing required parameter: "name"'),
    ({"name": "a", "interface": INTERFACE}, 'Missing required parameter: "version"'),
    ({"name": "a", "version": "1"}, 'Missing required parameter: "interface"'),
    (new_type(name=""), "name must be a non-empty string"),
    (new_type(interface={"command": "x"}), "Job type interface invalid"),
    (new_type(interface=[]), "interface must be a JSON object"),
    (new_type(timeout=0), "timeout must be greater than zero"),
    (new_type(max_tries=-1), "max_tries must be greater than zero"),
    (new_type(priority="high"), "priority must be an integer"),
    (new_type(priority=99999999999999999999), "priority 99999999999999999999 is out of range"),
    (new_type(is_paused="yes"), "is_paused must be true or false"),
    (new_type(title=5), "title must be a string"),
    (new_type(bogus=1), "Unknown job type fields: bogus"),
    (new_type(error_mapping={"exit_codes": {"1": "no-such-error"}}),
     "Job type error mapping invalid"),
    (new_type(trigger_rule={"type": "PARSE"}), "trigger_rule is not supported"),
])
async def test_create_errors_are_400_with_messages(api, payload, fragment):
    status, body, headers = await api.post("/job-types/", payload)
    assert_plain_error(status, body, headers, 400, fragment)
    _, listed, _ = await api.get("/job-types/")
    assert listed["count"] == 0


@pytest.mark.gen_test
async def test_duplicate_name_and_version_is_a_400(api):
    await api.post("/job-types/", new_type(name="Dup"))
    status, body, headers = await api.post("/job-types/", new_type(name="Dup"))
    assert_plain_error(status, body, headers, 400, 'A job type "Dup" version "1.0" already exists')


@pytest.mark.gen_test
async def test_non_json_bodies(api):
    status, body, headers = await api.call("POST", "/job-types/", raw=b"name=x",
                                           headers={"Content-Type": "text/plain"})
    assert_plain_error(status, body, headers, 415, "Content-Type: application/json")
    status, body, headers = await api.call("POST", "/job-types/", raw=b"{nope")
    assert_plain_error(status, body, headers, 400, "not valid JSON")


@pytest.mark.gen_test
async def test_patch_makes_a_revision_only_when_the_interface_changes(api):
    _, created, _ = await api.post("/job-types/", new_type())
    url = f"/job-types/{created['id']}/"
    status, body, _ = await api.patch(url, {"title": "Renamed", "interface": INTERFACE})
    assert status == 200 and list(body) == JOB_TYPE_DETAILS_KEYS
    assert body["title"] == "Renamed" and body["revision_num"] == 1
    changed = {**INTERFACE, "command": "run2.sh"}
    _, body, _ = await api.patch(url, {"interface": changed})
    assert body["revision_num"] == 2 and body["interface"]["command"] == "run2.sh"
    _, body, _ = await api.patch(url, {"is_paused": True})
    assert body["revision_num"] == 2 and body["is_paused"] is True
    assert TIME_FORMAT.match(body["paused"])
    _, fetched, _ = await api.get(url)
    assert fetched["revision_num"] == 2 and fetched["title"] == "Renamed"
    assert fetched["is_paused"] is True and fetched["is_operational"] is True
    _, types, _ = await api.get("/job-types/")
    assert types["results"][0]["is_paused"] is True


@pytest.mark.gen_test
async def test_new_revision_is_used_by_new_jobs_old_jobs_keep_theirs(api):
    _, created, _ = await api.post("/job-types/", new_type())
    _, old_job, _ = await api.post("/queue/new-job/", {
        "job_type_id": created["id"], "job_data": {"input_data": [{"name": "x", "value": "1"}]}})
    await api.patch(f"/job-types/{created['id']}/", {"interface": {
        "command": "v2", "command_arguments": ""}})
    _, new_job, _ = await api.post("/queue/new-job/", {"job_type_id": created["id"]})
    assert old_job["job_type_rev"]["revision_num"] == 1
    assert new_job["job_type_rev"]["revision_num"] == 2
    _, again, _ = await api.get(f"/jobs/{old_job['id']}/")
    assert again["job_type_rev"]["interface"]["command"] == "run.sh"


@pytest.mark.gen_test
async def test_patch_errors(api):
    _, created, _ = await api.post("/job-types/", new_type())
    url = f"/job-types/{created['id']}/"
    for payload, fragment in (({"name": "other"}, "name cannot be changed"),
                              ({"timeout": 0}, "timeout must be greater than zero"),
                              ({"interface": {"command_arguments": ""}}, "interface invalid"),
                              ({"nope": True}, "Unknown job type fields: nope")):
        status, body, headers = await api.patch(url, payload)
        assert_plain_error(status, body, headers, 400, fragment)
    status, body, headers = await api.patch("/job-types/999/", {"title": "x"})
    assert_plain_error(status, body, headers, 404, "Job type 999 does not exist")
    status, body, headers = await api.get("/job-types/999/")
    assert_plain_error(status, body, headers, 404, "Job type 999 does not exist")
    _, fetched, _ = await api.get(url)
    assert fetched["revision_num"] == 1 and fetched["timeout"] == 1800


@pytest.mark.gen_test
async def test_list_filters_and_order(api):
    for name, version, category in (("b", "1", "x"), ("a", "2", "y"), ("a", "1", "x")):
        await api.post("/job-types/", new_type(name=name, version=version, category=category))
    status, body, _ = await api.get("/job-types/")
    assert status == 200 and body["count"] == 3
    assert all(list(r) == JOB_TYPE_KEYS for r in body["results"])
    assert [(r["name"], r["version"]) for r in body["results"]] == [("b", "1"), ("a", "2"),
                                                                   ("a", "1")]
    _, body, _ = await api.get("/job-types/?name=a&order=version")
    assert [(r["name"], r["version"]) for r in body["results"]] == [("a", "1"), ("a", "2")]
    _, body, _ = await api.get("/job-types/?category=x&order=-name")
    assert [r["name"] for r in body["results"]] == ["b", "a"]
    _, body, _ = await api.get("/job-types/?started=PT1H&page_size=1")
    assert body["count"] == 3 and len(body["results"]) == 1 and body["next"]
    _, body, _ = await api.get("/job-types/?ended=PT1H")
    assert body["count"] == 0
    for query, code in (("order=interface", 400), ("page=0", 400), ("page=9", 404),
                        ("started=2020-01-01", 400), ("page=99999999999999999999", 404)):
        status, body, headers = await api.get(f"/job-types/?{query}")
        assert_plain_error(status, body, headers, code)
