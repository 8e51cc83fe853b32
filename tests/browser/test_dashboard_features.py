"""Issue 14's operator features in headless Chromium against the real app and store: bulk
actions, search, the Started/Ended/Duration/Failure columns, keyboard shortcuts, timeout bars
and the time display."""

import asyncio
import re

import pytest

from core.times import now_ms, parse_instant
from tests.browser.browser_helpers import chromium

# Each test drives its own Chromium: `make test` runs these one at a time.
pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect


async def shown_ids(page) -> list[int]:
    return [int(i) for i in await page.locator("table.jobs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)")]


def accept_dialogs(page) -> list[str]:
    """Accept every confirm; the messages, in order."""
    messages: list[str] = []
    pending: set = set()

    def on_dialog(dialog):
        messages.append(dialog.message)
        task = asyncio.ensure_future(dialog.accept())
        pending.add(task)
        task.add_done_callback(pending.discard)
    page.on("dialog", on_dialog)
    return messages


async def statuses(api, ids) -> list[str]:
    out = []
    for job_id in ids:
        status, body, _ = await api.get(f"/jobs/{job_id}/")
        assert status == 200
        out.append(body["status"])
    return out


# -- bulk actions ------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_bulk_cancel_of_selected_rows_states_the_count(base_url, make, api):
    jt = await make.job_type("bulk-cancel")
    queued = [(await make.queued(jt))[0]["id"] for _ in range(3)]
    done = (await make.completed(jt))[0]["id"]
    async with chromium(base_url) as page:
        dialogs = accept_dialogs(page)
        await page.goto(f"{base_url}/dashboard/jobs")
        state = page.locator("[data-bulk-state]")
        await expect(state).to_have_text("No jobs selected")
        await expect(page.locator('[data-bulk-action="cancel"]')).to_be_disabled()
        await page.get_by_label("Select all jobs on this page").check()
        await expect(state).to_have_text("4 jobs selected")
        await page.get_by_role("button", name="Cancel selected").click()
        await expect(page.locator("[data-message]")).to_have_text("Canceled 3 jobs.")
        assert dialogs == [("Cancel 3 jobs? 1 of the 4 selected cannot be canceled and stay as "
                            "they are. Running executions are stopped.")]
        await expect(state).to_have_text("No jobs selected")
        assert await statuses(api, [*queued, done]) == ["CANCELED"] * 3 + ["COMPLETED"]
        # The rows follow: canceled jobs offer Requeue, no longer Cancel.
        row = page.locator(f'tr[data-job-id="{queued[0]}"]')
        await expect(row).to_have_attribute("data-status", "CANCELED")
        await expect(row.get_by_role("button", name=f"Requeue job {queued[0]}")).to_be_visible()


@pytest.mark.gen_test(timeout=90)
async def test_bulk_requeue_of_all_jobs_matching_the_filter(base_url, make, api):
    jt = await make.job_type("bulk-requeue")
    failed = [(await make.failed(jt))[0]["id"] for _ in range(5)]
    other = (await make.queued(jt))[0]["id"]
    async with chromium(base_url) as page:
        dialogs = accept_dialogs(page)
        await page.goto(f"{base_url}/dashboard/jobs?status=FAILED&page_size=2")
        assert len(await shown_ids(page)) == 2
        all_matching = page.get_by_role("button", name="Select all 5 matching the filter")
        await expect(all_matching).to_be_hidden()
        await page.get_by_label("Select all jobs on this page").check()
        await expect(page.locator("[data-bulk-state]")).to_have_text("2 jobs selected")
        await all_matching.click()
        await expect(page.locator("[data-bulk-state]")).to_have_text(
            "All 5 jobs matching the filter selected")
        await page.get_by_role("button", name="Requeue selected").click()
        await expect(page.locator("[data-message]")).to_have_text("Requeued 5 jobs.")
        assert dialogs == ["Requeue 5 jobs?"]
    assert await statuses(api, [*failed, other]) == ["QUEUED"] * 6


@pytest.mark.gen_test(timeout=90)
async def test_requeue_all_failed_on_the_job_type_and_jobs_pages(base_url, make, api):
    a = await make.job_type("requeue-a")
    b = await make.job_type("requeue-b")
    a_failed = [(await make.failed(a))[0]["id"] for _ in range(2)]
    a_done = (await make.completed(a))[0]["id"]
    b_failed = (await make.failed(b))[0]["id"]
    async with chromium(base_url) as page:
        dialogs = accept_dialogs(page)
        await page.goto(f"{base_url}/dashboard/job-types/{a['id']}")
        await page.get_by_role("button", name="Requeue all failed").click()
        await expect(page.locator("[data-message]")).to_have_text("Requeued 2 of 2 failed jobs.")
        assert dialogs == ["Requeue all 2 failed jobs?"]
        assert await statuses(api, [*a_failed, a_done, b_failed]) == [
            "QUEUED", "QUEUED", "COMPLETED", "FAILED"]
        await page.goto(f"{base_url}/dashboard/jobs")
        await page.get_by_role("button", name="Requeue all failed").click()
        await expect(page.locator("[data-message]")).to_have_text("Requeued 1 of 1 failed job.")
        assert dialogs[1:] == ["Requeue all 1 failed job?"]
        assert await statuses(api, [b_failed]) == ["QUEUED"]
        await page.get_by_role("button", name="Requeue all failed").click()
        await expect(page.locator("[data-message]")).to_have_text("No failed jobs match.")
        assert len(dialogs) == 2


# -- search ------------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_search_over_type_title_id_inputs_and_errors_is_in_the_url(base_url, make):
    resample = await make.job_type("resample", title="Resample imagery",
                                   interface=make.interface("input"))
    ingest = await make.job_type("ingest", interface=make.interface("input"))
    data = {"version": "1.0", "input_data": [{"name": "input", "value": "tile-xy"}]}
    r1 = (await make.queued(resample))[0]["id"]
    i1 = (await make.queued(ingest, data))[0]["id"]
    i2 = (await make.failed(ingest, error_name="timeout"))[0]["id"]
    i3 = (await make.queued(ingest))[0]["id"]
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs")
        await page.locator("h1").click()
        await page.keyboard.press("/")
        search = page.get_by_label("Search")
        await expect(search).to_be_focused()
        await page.keyboard.type("IMAGERY")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"[?&]q=IMAGERY(&|$)"))
        assert await shown_ids(page) == [r1]
        await expect(search).to_have_value("IMAGERY")
        for q, expected in (("resample", [r1]), ("TILE-X", [i1]), ("timeout", [i2]),
                            (str(i3), [i3]), ("ingest", sorted([i1, i2, i3]))):
            await page.goto(f"{base_url}/dashboard/jobs?q={q}")
            assert sorted(await shown_ids(page)) == expected, q
        await page.goto(f"{base_url}/dashboard/jobs?q=ingest&status=FAILED")
        assert await shown_ids(page) == [i2]
        await page.goto(f"{base_url}/dashboard/jobs?q=nothing-like-this")
        await expect(page.locator("[data-summary] [data-empty]")).to_have_text(
            "No jobs match these filters.")


# -- columns and timeout bars ------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_started_ended_duration_and_failure_reason_columns(base_url, make, store):
    jt = await make.job_type("columns", timeout=120)
    job, exe = await make.running(jt)
    await store.jobs.update_execution(exe["id"], job_started=now_ms(), job_exit_code=3)
    error = await store.errors.by_name("algorithm-unknown")
    await store.jobs.fail_execution(exe["id"], error)
    started = parse_instant("2026-03-04T05:06:07Z")
    await store.db["jobs"].update_one({"id": job["id"]}, {"$set": {
        "started": started, "ended": started + 90_500}})
    run_job, _ = await make.running(jt)
    await store.db["jobs"].update_one({"id": run_job["id"]},
                                      {"$set": {"started": now_ms() - 30_000}})
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs")
        headings = await page.locator("table.jobs thead th").all_inner_texts()
        assert [h.replace("▼", "").strip() for h in headings][1:] == [
            "ID", "Job type", "Status", "Priority", "Runs", "Created", "Started", "Ended",
            "Status changed", "Last modified", "Duration", "Failure", "Actions"]
        row = page.locator(f'tr[data-job-id="{job["id"]}"]')
        await expect(row.locator(".col-started")).to_have_text("2026-03-04 05:06:07")
        await expect(row.locator(".col-ended")).to_have_text("2026-03-04 05:07:37")
        await expect(row.locator(".col-duration")).to_have_text("1 min 30 s")
        await expect(row.locator(".col-error")).to_have_text("algorithm-unknown · exit 3")
        running = page.locator(f'tr[data-job-id="{run_job["id"]}"]')
        await expect(running.locator(".col-ended")).to_have_text("—")
        duration = running.locator("[data-duration]")
        await expect(duration).to_have_text(re.compile(r"^3\d\.\d s$"))
        bar = running.locator("progress[data-timeout-bar]")
        assert await bar.get_attribute("max") == "120"
        await expect(bar).to_have_attribute("aria-label",
                                            re.compile(r"^3\d s of the 120 s timeout$"))
        first = await duration.inner_text()
        await expect(duration).not_to_have_text(first, timeout=3000)
        value = float(await bar.evaluate("b => b.value"))
        assert 30 <= value <= 40


@pytest.mark.gen_test(timeout=90)
async def test_job_page_shows_elapsed_time_against_the_timeout(base_url, make, store):
    jt = await make.job_type("bar", timeout=60)
    job, exe = await make.running(jt)
    await store.db["job_exes"].update_one({"id": exe["id"]},
                                          {"$set": {"started": now_ms() - 45_000}})
    done, _ = await make.completed(jt)
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        bar = page.locator("li.exe progress[data-timeout-bar]")
        assert await bar.get_attribute("max") == "60"
        await expect(bar).to_have_attribute("aria-label",
                                            re.compile(r"^4[5-9] s of the 60 s timeout$"))
        assert 45 <= float(await bar.evaluate("b => b.value")) <= 50
        await page.goto(f"{base_url}/dashboard/jobs/{done['id']}")
        await expect(page.locator("li.exe")).to_have_count(1)
        await expect(page.locator("progress[data-timeout-bar]")).to_have_count(0)


# -- keyboard ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_keyboard_moves_between_rows_opens_a_job_and_lists_shortcuts(base_url, make):
    jt = await make.job_type("keys")
    ids = [(await make.queued(jt))[0]["id"] for _ in range(3)]
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs?order=id")
        assert await shown_ids(page) == ids
        current = page.locator("tr.row-current")
        await page.keyboard.press("j")
        await expect(current).to_have_attribute("data-job-id", str(ids[0]))
        await page.keyboard.press("j")
        await page.keyboard.press("j")
        await page.keyboard.press("j")
        await expect(current).to_have_attribute("data-job-id", str(ids[2]))
        await page.keyboard.press("k")
        await expect(current).to_have_attribute("data-job-id", str(ids[1]))
        await expect(current).to_have_count(1)
        help_box = page.locator("[data-shortcuts]")
        await expect(help_box).to_be_hidden()
        await page.keyboard.press("?")
        await expect(help_box).to_be_visible()
        assert await help_box.locator("dt").all_inner_texts() == ["/", "j / k", "Enter", "?"]
        await page.keyboard.press("Escape")
        await expect(help_box).to_be_hidden()
        # Typing in a field is not a shortcut.
        await page.get_by_label("Search").focus()
        await page.keyboard.press("j")
        await expect(page.get_by_label("Search")).to_have_value("j")
        await expect(current).to_have_attribute("data-job-id", str(ids[1]))
        await page.locator("h1").click()
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{base_url}/dashboard/jobs/{ids[1]}")


# -- time display ------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_time_display_local_or_relative_is_remembered(base_url, make, store):
    jt = await make.job_type("clock")
    old = (await make.queued(jt))[0]["id"]
    recent = (await make.queued(jt))[0]["id"]
    await store.db["jobs"].update_one({"id": old}, {"$set": {
        "created": parse_instant("2026-01-02T03:04:05Z")}})
    await store.db["jobs"].update_one({"id": recent}, {"$set": {"created": now_ms() - 185_000}})
    async with chromium(base_url, timezone_id="Asia/Kolkata") as page:
        await page.goto(f"{base_url}/dashboard/jobs")
        created = page.locator(f'tr[data-job-id="{old}"] .col-created time')
        await expect(created).to_have_text("2026-01-02 03:04:05")
        await expect(created).to_have_attribute("title", "2026-01-02 08:34:05 local")
        await expect(page.locator("[data-time-note]")).to_have_text("Times are UTC.")
        await page.get_by_label("Show times as").select_option("local")
        await expect(created).to_have_text("2026-01-02 08:34:05")
        await expect(created).to_have_attribute("title", "2026-01-02 03:04:05 UTC")
        await expect(page.locator("[data-time-note]")).to_have_text(
            "Times are local; UTC on hover.")
        await page.reload()
        await expect(created).to_have_text("2026-01-02 08:34:05")
        await expect(page.get_by_label("Show times as")).to_have_value("local")
        await page.get_by_label("Show times as").select_option("relative")
        await expect(page.locator(f'tr[data-job-id="{recent}"] .col-created time')).to_have_text(
            "3 min ago")
        await expect(created).to_have_attribute(
            "title", "2026-01-02 08:34:05 local · 2026-01-02 03:04:05 UTC")
        await page.goto(f"{base_url}/dashboard/jobs/{old}")
        await expect(page.locator("[data-time-note]")).to_have_text(
            "Times are relative; local and UTC on hover.")
        # The page keeps the choice in memory (live updates render often), yet follows a
        # choice made in another tab.
        other = await page.context.new_page()
        await other.goto(f"{base_url}/dashboard/jobs")
        await other.get_by_label("Show times as").select_option("utc")
        await expect(page.locator("[data-time-note]")).to_have_text("Times are UTC.")
        await expect(page.get_by_label("Show times as")).to_have_value("utc")


# -- per job type run statistics ---------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_job_type_run_count_failure_rate_and_percentiles_over_a_window(base_url, make,
                                                                             store):
    jt = await make.job_type("stats")
    now = now_ms()
    hour, day = 3600_000, 24 * 3600_000

    async def run(seconds: float, ended_ago: int, failed: bool = False) -> None:
        _, exe = await (make.failed(jt) if failed else make.completed(jt))
        ended = now - ended_ago
        await store.db["job_exes"].update_one({"id": exe["id"]}, {"$set": {
            "started": ended - int(seconds * 1000), "ended": ended, "last_modified": ended}})

    for seconds in (10, 20, 30, 40):
        await run(seconds, 2 * hour)
    await run(100, 2 * hour, failed=True)
    await run(5, 2 * day)
    stats = {}
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/job-types/{jt['id']}")
        section = page.locator("[data-run-stats]")
        for window, heading in (("24 hours", "Runs in the last 24 hours"),
                                ("7 days", "Runs in the last 7 days")):
            await section.get_by_role("link", name=window).click()
            await expect(section.locator("h2")).to_have_text(heading)
            stats[window] = dict(zip(
                await section.locator("dt").all_inner_texts(),
                await section.locator("dd").all_inner_texts(), strict=True))
        await section.get_by_role("link", name="1 hour").click()
        await expect(section.locator("[data-stat=empty]")).to_have_text(
            "No runs finished in the last 1 hour.")
    assert stats["24 hours"] == {"Runs": "5", "Failed": "1", "Failure rate": "20.0%",
                                 "Median duration (p50)": "30.0 s",
                                 "95th percentile (p95)": "1 min 40 s"}
    assert stats["7 days"] == {"Runs": "6", "Failed": "1", "Failure rate": "16.7%",
                               "Median duration (p50)": "20.0 s",
                               "95th percentile (p95)": "1 min 40 s"}


# -- mobile ------------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_filters_collapse_behind_a_button_at_360px(base_url, make):
    jt = await make.job_type("narrow")
    await make.queued(jt)
    async with chromium(base_url, viewport={"width": 360, "height": 740}, is_mobile=True) as page:
        await page.goto(f"{base_url}/dashboard/jobs?status=QUEUED&q=narrow")
        form = page.locator("form[data-filters]")
        toggle = page.get_by_role("button", name="Filters (2 active)")
        await expect(form).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await toggle.click()
        await expect(form).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await toggle.click()
        await expect(form).to_be_hidden()
        # `/` opens them to reach the search.
        await page.keyboard.press("/")
        await expect(page.get_by_label("Search")).to_be_focused()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        # A bad value keeps them open, next to its error.
        await page.goto(f"{base_url}/dashboard/jobs?started=yesterday")
        await expect(form).to_be_visible()
    async with chromium(base_url, viewport={"width": 1366, "height": 800}) as page:
        await page.goto(f"{base_url}/dashboard/jobs")
        await expect(page.locator("[data-filters-toggle]")).to_be_hidden()
        await expect(page.locator("form[data-filters]")).to_be_visible()
