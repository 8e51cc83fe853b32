"""Issue 14's defects that a handler test shows: the pages and API answers a new operator hit."""

import re

import pytest
from tornado.httpclient import HTTPClientError

from tests.responses import assert_plain_error
from tests.tokens import OPERATOR_HEADERS


def value(text: str = "x") -> list[dict]:
    return [{"name": "value", "value": text}]


async def fetch_raw(http_client, base_url, path, method="GET", body=None):
    """One request without following redirects: (status, headers, text)."""
    try:
        response = await http_client.fetch(base_url + path, method=method, body=body,
                                           headers=OPERATOR_HEADERS, follow_redirects=False)
    except HTTPClientError as exc:
        response = exc.response
    return response.code, response.headers, response.body.decode()


# -- defect 7: the memory floor is documented where the job type shows its memory -----------

@pytest.mark.gen_test
async def test_job_type_page_names_the_memory_floor_its_jobs_get(api, make):
    small = await make.posted_type("small", mem_required=32, cpus_required=0.1)
    job = await make.submit(small, value())
    assert (job["mem_required"], job["cpus_required"]) == (128.0, 0.25)
    status, body, _ = await api.get(f"/dashboard/job-types/{small['id']}")
    assert status == 200
    assert ("Each job gets at least 0.25 CPU and 128 MiB memory (Scale's floor), so its "
            "jobs ask for 0.25 CPU and 128.0 MiB.") in body
    big = await make.posted_type("big", mem_required=512, cpus_required=2)
    _, body, _ = await api.get(f"/dashboard/job-types/{big['id']}")
    assert "data-resource-floor" not in body
    _, doc, _ = await api.get("/openapi.json")
    described = doc["components"]["schemas"]["JobType"]["properties"]["mem_required"]
    assert "at least 128 MiB" in described["description"]


# -- defect 9: POST /queue/new-job/ names the job it answers with ------------------------------

@pytest.mark.gen_test
async def test_new_job_answer_names_the_job_in_content_location(api, make):
    jt = await make.posted_type("located")
    status, body, headers = await api.post("/queue/new-job/", {
        "job_type_id": jt["id"], "job_data": {"version": "1.0", "input_data": value()}})
    assert status == 201
    assert headers["Location"] == f"/job-executions/{body['job_exes'][0]['id']}/"  # Scale's
    assert headers["Content-Location"] == f"/jobs/{body['id']}/"
    _, fetched, _ = await api.get(headers["Content-Location"])
    assert fetched["id"] == body["id"]


# -- defect 10: a refused cancel says why in plain words ---------------------------------------

@pytest.mark.gen_test
async def test_second_cancel_says_the_job_is_already_canceled(api, make):
    jt = await make.posted_type("twice")
    job = await make.submit(jt, value())
    status, body, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert (status, body["status"]) == (200, "CANCELED")
    status, body, headers = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert_plain_error(status, body, headers, 400)
    assert body == f"Job {job['id']} is already canceled.\n"


@pytest.mark.gen_test
async def test_job_page_offers_cancel_exactly_where_the_api_allows_it(api, make, store):
    jt = await make.posted_type("buttons")
    queued = await make.submit(jt, value())
    failed = await make.submit(jt, value())
    await make.start(failed)
    exe = (await store.jobs.get_job(failed["id"]))["latest_exe_id"]
    await store.jobs.fail_execution(exe, await store.errors.by_name("algorithm-unknown"))
    done = await make.submit(jt, value())
    await make.start(done)
    await make.complete(done)
    canceled = await make.submit(jt, value())
    await make.cancel(canceled)
    for job, cancel, requeue in ((queued, True, False), (failed, True, True),
                                 (done, False, False), (canceled, False, True)):
        _, html, _ = await api.get(f"/dashboard/jobs/{job['id']}")
        toolbar = html.split('<div class="toolbar">', 1)[1].split("</div>", 1)[0]
        shown = {action: re.search(rf'data-action="{action}"[^>]*\shidden[\s>]', toolbar) is None
                 for action in ("cancel", "requeue")}
        assert shown == {"cancel": cancel, "requeue": requeue}, job["id"]
        code, _, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
        assert (code == 200) == cancel, job["id"]


# -- defect 11: a URL missing its trailing slash -----------------------------------------------

@pytest.mark.gen_test
async def test_get_without_trailing_slash_is_redirected(http_client, base_url):
    status, headers, _ = await fetch_raw(http_client, base_url, "/jobs?status=RUNNING&page=1")
    assert (status, headers["Location"]) == (301, "/jobs/?status=RUNNING&page=1")
    status, headers, _ = await fetch_raw(http_client, base_url, "/job-types/12")
    assert (status, headers["Location"]) == (301, "/job-types/12/")
    status, headers, _ = await fetch_raw(http_client, base_url, "/dashboard/jobs/")
    assert (status, headers["Location"]) == (301, "/dashboard/jobs")


@pytest.mark.gen_test
async def test_other_methods_and_unknown_paths_get_a_404_naming_the_url(http_client, base_url):
    status, _, body = await fetch_raw(http_client, base_url, "/queue/new-job", "POST", "{}")
    assert (status, body) == (404, ("No such endpoint: /queue/new-job; did you mean "
                                    "/queue/new-job/?\n"))
    status, _, body = await fetch_raw(http_client, base_url, "/nothing-here")
    assert (status, body) == (404, "No such endpoint: /nothing-here\n")
    status, _, body = await fetch_raw(http_client, base_url, "//example.com")
    assert (status, body) == (404, "No such endpoint: //example.com\n")
