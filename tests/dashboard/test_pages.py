"""Every dashboard page renders from the store, shows what the API returns and escapes what
users wrote."""

import re

import pytest

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


async def page(api, path):
    status, body, headers = await api.get(path)
    return status, body, headers


def value(text: str = "x") -> list[dict]:
    """The job data's `value` input: every job here carries one, "x" unless a test says."""
    return [{"name": "value", "value": text}]


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job-id="(\d+)"', html)]


@pytest.mark.gen_test
async def test_every_page_renders_as_html(api, make):
    jt = await make.posted_type("render", title="Render")
    job = await make.submit(jt, value())
    for path in ("/", "/dashboard/overview/live", "/dashboard/jobs",
                 f"/dashboard/jobs/{job['id']}", "/dashboard/job-types",
                 f"/dashboard/job-types/{jt['id']}", "/dashboard/queue", "/dashboard/queue/live"):
        status, body, headers = await page(api, path)
        assert status == 200, (path, body)
        assert headers["Content-Type"] == "text/html; charset=UTF-8", path
        assert "render" in body, path


@pytest.mark.gen_test
async def test_job_type_named_script_renders_as_text(api, make):
    jt = await make.posted_type(SCRIPT, title=SCRIPT, description=SCRIPT, category=SCRIPT)
    job = await make.submit(jt, value(SCRIPT))
    for path in ("/", "/dashboard/jobs", f"/dashboard/jobs/{job['id']}", "/dashboard/job-types",
                 f"/dashboard/job-types/{jt['id']}", "/dashboard/queue"):
        status, body, _ = await page(api, path)
        assert status == 200, path
        assert SCRIPT not in body, path
        assert ESCAPED in body, path


@pytest.mark.gen_test
async def test_jobs_page_is_the_api_list_rendered(api, make, store):
    first = await make.posted_type("alpha", category="ingest")
    second = await make.posted_type("beta", category="export")
    jobs = [await make.submit(first, value()), await make.submit(second, value()),
            await make.submit(first, value())]
    await make.start(jobs[1])
    queries = ("", "?status=RUNNING", "?status=QUEUED", "?status=QUEUED&status=RUNNING",
               "?job_type_name=alpha", "?job_type_category=export", "?order=-id",
               "?order=job_type__name&order=-id", "?started=PT1H", "?page_size=2&page=2",
               f"?job_id={jobs[2]['id']}")
    for query in queries:
        # The dashboard lists the latest status change first (issue 14); its JSON link says so.
        api_query = query if "order=" in query else (
            query + ("&" if query else "?") + "order=-last_status_change&order=-id")
        _, api_body, _ = await api.get("/jobs/" + api_query)
        status, html, _ = await page(api, "/dashboard/jobs" + query)
        assert status == 200, query
        assert row_ids(html) == [r["id"] for r in api_body["results"]], query
        assert f"<strong data-count>{api_body['count']}</strong>" in html, query
        assert f'<a href="/jobs/{api_query.replace("&", "&amp;")}">as JSON</a>' in html, query
    _, html, _ = await page(api, "/dashboard/jobs?status=RUNNING")
    assert row_ids(html) == [jobs[1]["id"]]
    assert 'value="RUNNING" checked' in html


@pytest.mark.gen_test
async def test_jobs_page_headers_sort_and_pages_count(api, make):
    jt = await make.posted_type("sorted")
    for _ in range(3):
        await make.submit(jt, value())
    _, html, _ = await page(api, "/dashboard/jobs?order=-id&page_size=2")
    assert re.search(r'aria-sort="descending" class="col-id">\s*<a href="/dashboard/jobs\?'
                     r'page_size=2&amp;order=id">', html)
    assert "Showing <span data-first>1</span>\N{EN DASH}<span data-last>2</span> of " \
           "<strong data-count>3</strong> jobs" in html
    assert "Page 1 of 2" in html
    assert 'href="/dashboard/jobs?order=-id&amp;page_size=2&amp;page=2" rel="next"' in html


@pytest.mark.gen_test
async def test_bad_filters_are_explained_on_an_html_page(api):
    status, body, headers = await page(api, "/dashboard/jobs?status=NOPE")
    assert status == 400
    assert headers["Content-Type"] == "text/html; charset=UTF-8"
    assert ("status &#39;NOPE&#39; is not valid; choose from PENDING, BLOCKED, QUEUED, RUNNING, "
            "FAILED, COMPLETED, CANCELED") in body
    status, body, _ = await page(api, "/dashboard/jobs?order=nope")
    assert status == 400 and "order &#39;nope&#39; is not a field you can order by" in body
    status, body, _ = await page(api, "/dashboard/jobs?page=9")
    assert status == 404 and "page 9 is past the last page of 0 results" in body
    status, body, _ = await page(api, "/dashboard/jobs/999")
    assert status == 404 and "Job 999 does not exist" in body
    status, body, _ = await page(api, "/dashboard/job-types/999")
    assert status == 404 and "Job type 999 does not exist" in body
    status, body, _ = await page(api, "/dashboard/job-types?hours=5")
    assert status == 400 and "hours must be one of 6, 12, 24, not 5" in body


@pytest.mark.gen_test
async def test_overview_counts_statuses_and_queue(api, make, store):
    jt = await make.posted_type("counted")
    jobs = [await make.submit(jt, value()) for _ in range(4)]
    await make.start(jobs[0])
    for job in jobs[1:3]:
        await make.start(job)
        await make.complete(job, {"output_data": []})
    _, html, _ = await page(api, "/")
    assert 'data-count-status="QUEUED">1<' in html
    assert 'data-count-status="RUNNING">1<' in html
    assert 'data-count-status="COMPLETED">2<' in html
    assert 'data-count-status="FAILED">0<' in html
    assert '<span data-queue-depth>1</span> queued' in html


@pytest.mark.gen_test
async def test_job_details_show_fields_executions_and_actions(api, make):
    jt = await make.posted_type("detailed", title="Detailed")
    job = await make.submit(jt, value("hello"))
    exe_id = (await make.start(job))["latest_exe_id"]
    _, html, _ = await page(api, f"/dashboard/jobs/{job['id']}")
    assert f'data-job-id="{job["id"]}" data-status="RUNNING"' in html
    assert f"Execution {exe_id}</a>" in html
    assert f'data-exe-id="{exe_id}"' in html
    assert re.search(r'<td data-label="Value">\s*hello\s*</td>', html)
    assert 'data-action="cancel"' in html and 'aria-label="Cancel job' in html
    requeue = re.search(r'<button[^>]*data-action="requeue"[^>]*>', html).group(0)
    assert "hidden" in requeue  # a RUNNING job cannot be requeued
    _, api_body, _ = await api.get(f"/jobs/{job['id']}/")
    assert f'&#34;last_modified&#34;: &#34;{api_body["last_modified"]}&#34;' in html


@pytest.mark.gen_test
async def test_job_types_page_counts_and_pause_state(api, make):
    jt = await make.posted_type("paused-type", is_paused=True)
    await make.submit(jt, value())
    _, html, _ = await page(api, "/dashboard/job-types?hours=6")
    row = html[html.index(f'<tr data-job-type-id="{jt["id"]}">'):]
    row = row[:row.index("</tr>")]
    assert "<td data-label=\"State\" data-paused-text>Paused</td>" in row
    assert '<span class="count status-text-queued">1</span>' in row
    assert 'data-paused="true"' in row and ">Resume</button>" in row
    assert 'aria-current="true">Last 6 h</a>' in html


@pytest.mark.gen_test
async def test_queue_page_lists_queued_per_type(api, make):
    jt = await make.posted_type("queued-type")
    await make.submit(jt, value())
    await make.submit(jt, value())
    _, html, _ = await page(api, "/dashboard/queue")
    assert "<strong data-queue-depth>2</strong> jobs queued across 1 job types." in html
    assert '<td class="num" data-label="Queued">2</td>' in html


@pytest.mark.gen_test
async def test_failed_execution_shows_its_error_in_the_timeline(api, make, store):
    jt = await make.posted_type("failing", max_tries=1)
    job = await make.submit(jt, value())
    exe_id = (await make.start(job))["latest_exe_id"]
    timeout = await store.errors.by_name("timeout")
    await store.jobs.fail_execution(exe_id, timeout)
    _, html, _ = await page(api, f"/dashboard/jobs/{job['id']}")
    assert ('<p class="exe-error"><strong>Timeout</strong> (ALGORITHM): The job ran longer than '
            'its timeout and was killed.</p>') in html
    assert f'data-job-id="{job["id"]}" data-status="FAILED"' in html
    for action in ("cancel", "requeue"):  # a FAILED job can be canceled or requeued
        button = re.search(rf'<button[^>]*data-action="{action}"[^>]*>', html).group(0)
        assert "hidden" not in button, button
