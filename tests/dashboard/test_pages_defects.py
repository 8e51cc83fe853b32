"""Issue 14's defects that a handler test shows: the pages and API answers a new operator hit."""

import re

import pytest
from tornado.httpclient import HTTPClientError

from core.times import now_ms
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


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job-id="(\d+)"', html)]


# -- defect 1: a running execution's phases are proportional and inside the bar ----------------

@pytest.mark.gen_test
async def test_running_execution_phases_fit_the_bar_and_its_span_stays_open(api, make, store):
    jt = await make.posted_type("phased")
    job = await make.submit(jt, value())
    await make.start(job)
    exe_id = (await store.jobs.get_job(job["id"]))["latest_exe_id"]
    now = now_ms()
    # An 8 ms pre phase, and a job phase that started just now: it must not spill past 100%.
    await store.jobs.update_execution(exe_id, pre_started=now - 10, pre_completed=now - 2,
                                      pre_exit_code=0, job_started=now - 1)
    await store.db["job_exes"].update_one({"id": exe_id}, {"$set": {"started": now - 10}})
    _, html, _ = await api.get(f"/dashboard/jobs/{job['id']}")
    bars = {name: (float(left), float(width)) for name, left, width in re.findall(
        r'data-phase="(\w+)" data-left="([\d.]+)" data-width="([\d.]+)"', html)}
    assert set(bars) == {"pre", "job"}
    for left, width in bars.values():
        assert left + width <= 100, bars
    card = re.search(r'<li class="exe" [^>]*>', html).group(0)
    assert f'data-span-start="{now - 10}"' in card and "data-span-end" not in card
    assert re.search(r"<span data-elapsed>running for \d+\.\d s</span>", html)


@pytest.mark.gen_test
async def test_finished_phases_are_proportional_to_their_durations(api, make, store):
    jt = await make.posted_type("proportional")
    job = await make.submit(jt, value())
    await make.start(job)
    exe_id = (await store.jobs.get_job(job["id"]))["latest_exe_id"]
    t = now_ms() - 10_000
    await store.jobs.update_execution(exe_id, pre_started=t, pre_completed=t + 1000,
                                      pre_exit_code=0, job_started=t + 1000,
                                      job_completed=t + 9000, job_exit_code=0,
                                      post_started=t + 9000, post_completed=t + 10_000,
                                      post_exit_code=0)
    await store.db["job_exes"].update_one({"id": exe_id}, {"$set": {"started": t}})
    await make.complete(job)
    await store.db["job_exes"].update_one({"id": exe_id}, {"$set": {"ended": t + 10_000}})
    _, html, _ = await api.get(f"/dashboard/jobs/{job['id']}")
    bars = re.findall(r'data-phase="(\w+)" data-left="([\d.]+)" data-width="([\d.]+)"', html)
    assert [(n, float(left), float(w)) for n, left, w in bars] == [
        ("pre", 0, 10), ("job", 10, 80), ("post", 90, 10)]
    assert "<span data-elapsed>10.0 s</span>" in html


# -- defect 4: newest work first on the dashboard; the API keeps Scale's order -----------------

@pytest.mark.gen_test
async def test_dashboard_lists_the_latest_status_change_first(api, make):
    jt = await make.posted_type("fresh")
    ids = [(await make.submit(jt, value()))["id"] for _ in range(3)]
    await make.start({"id": ids[0]})
    _, html, _ = await api.get("/dashboard/jobs")
    assert row_ids(html) == [ids[0], ids[2], ids[1]]
    assert 'aria-sort="descending" class="col-last_status_change"' in html
    _, body, _ = await api.get("/jobs/")
    assert [r["id"] for r in body["results"]] == [ids[1], ids[2], ids[0]]  # oldest modified first


# -- defect 5: memory in human units -----------------------------------------------------------

@pytest.mark.gen_test
async def test_node_memory_is_written_in_human_units(api, store):
    await store.nodes.register("worker-1", None, 8, 24105.12890625)
    _, html, _ = await api.get("/")
    cell = re.search(r"<td [^>]*data-node-mem>(.*?)</td>", html).group(1)
    assert cell == "0 MiB of 23.5 GiB"


# -- defect 12: a bad date keeps the form and says what is wrong next to the field --------------

@pytest.mark.gen_test
async def test_bad_date_is_shown_next_to_the_field_and_the_form_stays(api, make):
    jt = await make.posted_type("filtered", category="cat")
    await make.submit(jt, value())
    status, html, headers = await api.get(
        "/dashboard/jobs?started=yesterday&job_type_name=filtered&status=QUEUED")
    assert status == 400 and headers["Content-Type"] == "text/html; charset=UTF-8"
    assert '<form class="filters"' in html
    assert ('<p class="field-error" id="e-started" role="alert">started: &#39;yesterday&#39; '
            "is not an ISO-8601 datetime or duration</p>") in html
    assert re.search(r'id="f-from" name="started" type="datetime-local"[^>]*aria-invalid="true"',
                     html)
    assert '<option value="filtered" selected>' in html
    assert 'value="QUEUED" checked' in html
    assert row_ids(html) == []
    assert "data-invalid" in html


@pytest.mark.gen_test
async def test_a_preset_and_a_custom_from_together_are_refused_not_dropped(api):
    status, html, _ = await api.get("/dashboard/jobs?started=PT1H&started=2026-01-01T00:00")
    assert status == 400
    assert ("Choose either a range (Last hour) or a custom From (2026-01-01T00:00), not both."
            in html)


@pytest.mark.gen_test
async def test_date_time_input_values_are_read_as_utc(api, make):
    jt = await make.posted_type("dated")
    job = await make.submit(jt, value())
    created = job["last_modified"]
    later = created[:16]  # the minute the job was modified, as a datetime-local input sends it
    status, html, _ = await api.get(f"/dashboard/jobs?started={later}")
    assert status == 200 and row_ids(html) == [job["id"]]
    assert f'type="datetime-local" step="1" autocomplete="off" value="{later}"' in html


# -- defect 13: a failed job opens on stderr and its summary gives the exit code ----------------

@pytest.mark.gen_test
async def test_failed_job_opens_on_stderr_with_the_exit_code_in_the_summary(api, make, store):
    jt = await make.posted_type("boom")
    job = await make.submit(jt, value())
    await make.start(job)
    exe_id = (await store.jobs.get_job(job["id"]))["latest_exe_id"]
    now = now_ms()
    await store.jobs.update_execution(exe_id, pre_started=now - 3, pre_completed=now - 2,
                                      pre_exit_code=0, job_started=now - 2,
                                      job_completed=now - 1, job_exit_code=3)
    await store.jobs.fail_execution(exe_id, await store.errors.by_name("algorithm-unknown"))
    _, html, _ = await api.get(f"/dashboard/jobs/{job['id']}")
    assert re.search(r'id="tab-stderr" aria-controls="log-stderr" aria-selected="true"', html)
    assert re.search(r'<pre id="log-stdout"[^>]*hidden>', html)
    summary = html.split('data-field="error">', 1)[1].split("</dd>", 1)[0]
    assert "Exit code 3 in the job phase." in summary
    assert "data-error-tail" in summary
