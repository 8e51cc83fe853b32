"""The dashboards in headless Chromium against the real app and store."""

from pathlib import Path

import pytest

from core.times import format_ms, now_ms
from tests.browser.browser_helpers import chromium

# Each test drives its own Chromium, which wants both cores: `make test` runs these after the
# parallel phase, one at a time (on three workers they timed out on a loaded two-core machine).
pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect
DAY_MS = 24 * 3600 * 1000
LIVE_CLIENT = Path(__file__).resolve().parents[2] / "static" / "js" / "live.js"
needs_live = pytest.mark.skipif(not LIVE_CLIENT.exists(),
                                reason="static/js/live.js (live updates, issue 4) is not there yet")


async def shown_ids(page) -> list[int]:
    return [int(i) for i in await page.locator("table.jobs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)")]


async def without_live(page) -> None:
    """Block the live client, so the page shows only what it rendered and what actions do."""
    await page.route("**/static/js/live.js*", lambda route: route.abort())


@pytest.mark.gen_test(timeout=60)
async def test_jobs_page_filters_and_sorts_change_the_rows(base_url, make, store):
    ingest = await make.posted_type("ingest", category="ingest")
    export = await make.posted_type("export", category="export")
    queued = (await make.submit(ingest))["id"]
    running_job = await make.submit(ingest)
    await store.jobs.start_execution(running_job["job_exes"][0]["id"], None)
    running = running_job["id"]
    exported = (await make.submit(export))["id"]
    old = (await make.bulk_jobs(export, [now_ms() - 3 * DAY_MS]))[0]["id"]
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/jobs")
        # Latest status change first (issue 14): running started after queued was submitted.
        assert await shown_ids(page) == [exported, running, queued, old]

        await page.get_by_label("RUNNING").check()
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?status=RUNNING")
        assert await shown_ids(page) == [running]
        await page.get_by_label("RUNNING").uncheck()

        await page.get_by_label("Job type").select_option("export")
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?job_type_name=export")
        assert await shown_ids(page) == [exported, old]

        await page.get_by_label("Job type").select_option("")
        await page.get_by_label("Category").select_option("ingest")
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?job_type_category=ingest")
        assert await shown_ids(page) == [running, queued]

        await page.get_by_label("Category").select_option("")
        await page.get_by_label("Modified").select_option("PT24H")
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?started=PT24H")
        assert await shown_ids(page) == [exported, running, queued]

        await page.get_by_label("Modified").select_option("")
        # datetime-local inputs, read as UTC
        await page.get_by_label("From").fill(format_ms(now_ms() - 4 * DAY_MS)[:19])
        await page.get_by_label("To (UTC)", exact=True).fill(format_ms(now_ms() - 2 * DAY_MS)[:19])
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?started=*&ended=*")
        assert await shown_ids(page) == [old]
        assert "started=" in page.url and "ended=" in page.url

        await page.goto(base_url + "/dashboard/jobs")
        await page.get_by_role("link", name="ID").click()
        await page.wait_for_url("**/dashboard/jobs?order=id")
        assert await shown_ids(page) == sorted([old, queued, running, exported])
        await page.get_by_role("link", name="ID").click()
        await page.wait_for_url("**/dashboard/jobs?order=-id")
        assert await shown_ids(page) == sorted([old, queued, running, exported], reverse=True)
        await expect(page.locator("th.col-id")).to_have_attribute("aria-sort", "descending")
        await page.get_by_role("link", name="Status", exact=True).click()
        await page.wait_for_url("**/dashboard/jobs?order=status")
        assert await shown_ids(page) == [old, queued, exported, running]  # by name, then id

        await page.goto(base_url + "/dashboard/jobs?page_size=25&order=-id")
        await page.get_by_label("Per page").select_option("25")
        assert await page.locator("[data-count]").text_content() == "4"


@pytest.mark.gen_test(timeout=60)
async def test_cancel_turns_a_running_job_canceled_and_failures_show_the_message(
        base_url, make, store, api):
    jt = await make.posted_type("cancelable")
    job = await make.submit(jt)
    await store.jobs.start_execution(job["job_exes"][0]["id"], None)
    finished = await make.submit(jt)
    exe_id = finished["job_exes"][0]["id"]
    await store.jobs.start_execution(exe_id, None)
    async with chromium(base_url) as page:
        await without_live(page)
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(base_url + "/dashboard/jobs")
        await expect(page.locator("[data-live-text]")).to_have_text("Live updates unavailable")
        row = page.locator(f'tr[data-job-id="{job["id"]}"]')
        await expect(row.locator("[data-status-badge]")).to_have_text("RUNNING")
        await row.get_by_role("button", name=f"Cancel job {job['id']}").click()
        await expect(row.locator("[data-status-badge]")).to_have_text("CANCELED")
        await expect(row.get_by_role("button", name=f"Requeue job {job['id']}")).to_be_visible()
        await expect(page.locator("[data-message]")).to_have_text(f"Job {job['id']} canceled.")
        _, body, _ = await api.get(f"/jobs/{job['id']}/")
        assert body["status"] == "CANCELED"

        # Completed behind the page's back: the API refuses, the row keeps what it showed.
        await store.jobs.complete_execution(exe_id, {})
        other = page.locator(f'tr[data-job-id="{finished["id"]}"]')
        await other.get_by_role("button", name=f"Cancel job {finished['id']}").click()
        status, message, _ = await api.patch(f"/jobs/{finished['id']}/", {"status": "CANCELED"})
        assert status == 400
        await expect(page.locator("[data-message]")).to_have_text(message.strip())
        await expect(other.locator("[data-status-badge]")).to_have_text("RUNNING")
        assert await other.get_by_role("button", name=f"Cancel job {finished['id']}").is_enabled()

        await row.get_by_role("button", name=f"Requeue job {job['id']}").click()
        await expect(row.locator("[data-status-badge]")).to_have_text("QUEUED")


@needs_live
@pytest.mark.gen_test(timeout=60)
async def test_submitted_job_appears_and_moves_to_completed_without_reload(base_url, make, store):
    jt = await make.posted_type("live-type")
    await make.submit(jt)
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/jobs")
        await expect(page.locator("[data-live]")).to_have_attribute("data-state", "live",
                                                                   timeout=15000)
        await page.evaluate("window.notReloaded = true")
        job = await make.submit(jt)
        badge = page.locator(f'tr[data-job-id="{job["id"]}"] [data-status-badge]')
        await expect(badge).to_have_text("QUEUED", timeout=15000)
        await expect(page.locator("[data-count]")).to_have_text("2")
        exe_id = job["job_exes"][0]["id"]
        await store.jobs.start_execution(exe_id, None)
        await expect(badge).to_have_text("RUNNING", timeout=15000)
        await store.jobs.complete_execution(exe_id, {})
        await expect(badge).to_have_text("COMPLETED", timeout=15000)
        assert await page.evaluate("window.notReloaded") is True

        await page.get_by_role("button", name="Pause").click()
        await expect(page.locator("[data-live]")).to_have_attribute("data-state", "paused")
        later = await make.submit(jt)
        await page.get_by_role("button", name="Resume").click()
        await expect(page.locator(f'tr[data-job-id="{later["id"]}"] [data-status-badge]')
                     ).to_have_text("QUEUED", timeout=15000)


@pytest.mark.gen_test(timeout=60)
async def test_controls_are_labelled_and_keyboard_reachable(base_url, make):
    jt = await make.posted_type("labelled")
    job = await make.submit(jt)
    async with chromium(base_url) as page:
        for path in ("/", "/dashboard/jobs", f"/dashboard/jobs/{job['id']}",
                     "/dashboard/job-types", f"/dashboard/job-types/{jt['id']}",
                     "/dashboard/queue"):
            await page.goto(base_url + path)
            unlabelled = await page.evaluate("""() => Array.from(
                document.querySelectorAll('input, select, button, a[href]'))
                .filter(el => !el.hidden && el.offsetParent !== null)
                .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                                || el.textContent.trim()))
                .map(el => el.outerHTML)""")
            assert unlabelled == [], (path, unlabelled)
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.goto(base_url + "/dashboard/jobs")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        for _ in range(2):
            await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.value") == "BLOCKED"


@pytest.mark.gen_test(timeout=60)
async def test_job_type_pause_toggle_calls_the_api(base_url, make, api):
    jt = await make.posted_type("pausable")
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/job-types")
        row = page.locator(f'tr[data-job-type-id="{jt["id"]}"]')
        await row.get_by_role("button", name="Pause job type pausable 1.0").click()
        await expect(row.locator("[data-paused-text]")).to_have_text("Paused")
        _, body, _ = await api.get(f"/job-types/{jt['id']}/")
        assert body["is_paused"]
        await row.get_by_role("button", name="Resume job type pausable 1.0").click()
        await expect(row.locator("[data-paused-text]")).to_have_text("Active")
        _, body, _ = await api.get(f"/job-types/{jt['id']}/")
        assert not body["is_paused"]


async def charts_drawn(page) -> None:
    """Wait for the overview's time charts (static/js/charts.js), when the page has them."""
    if await page.locator("[data-charts]").count():
        await page.wait_for_selector("[data-charts][data-drawn]")


@pytest.mark.gen_test(timeout=90)
async def test_dark_mode_and_narrow_screenshots(base_url, make, store, artifacts):
    jt = await make.posted_type("screenshot", title="Screenshot job", category="demo")
    for i in range(6):
        job = await make.submit(jt)
        if i % 2:
            await store.jobs.start_execution(job["job_exes"][0]["id"], None)
    pages = {"overview": "/", "jobs": "/dashboard/jobs", "job": f"/dashboard/jobs/{job['id']}",
             "job-types": "/dashboard/job-types", "queue": "/dashboard/queue",
             "new-job": f"/dashboard/job-types/{jt['id']}/new-job"}
    async with chromium(base_url, color_scheme="dark",
                        viewport={"width": 1280, "height": 900}) as page:
        for name, path in pages.items():
            await page.goto(base_url + path)
            await charts_drawn(page)
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(15, 19, 24)", (name, background)
            await page.screenshot(path=str(artifacts / f"dark-{name}.png"), full_page=True)
    async with chromium(base_url, viewport={"width": 360, "height": 740}, is_mobile=True) as page:
        for name, path in pages.items():
            await page.goto(base_url + path)
            await charts_drawn(page)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (name, width)
            await page.screenshot(path=str(artifacts / f"narrow-360-{name}.png"), full_page=True)
    for name in pages:
        assert (artifacts / f"dark-{name}.png").stat().st_size > 0
        assert (artifacts / f"narrow-360-{name}.png").stat().st_size > 0


def has_log_route() -> bool:
    from routes import routes

    return any(route[0].endswith("/logs/") for route in routes())


@pytest.mark.skipif(not has_log_route(),
                    reason="GET /job-executions/{id}/logs/ (job engine, issue 3) is not there yet")
@pytest.mark.gen_test(timeout=60)
async def test_details_page_follows_a_growing_log(base_url, make, store, tmp_path):
    jt = await make.posted_type("logged")
    job = await make.submit(jt)
    exe_id = job["job_exes"][0]["id"]
    await store.jobs.start_execution(exe_id, None)
    stdout_file, stderr_file = tmp_path / "stdout.log", tmp_path / "stderr.log"
    stdout_file.write_text("starting\n")
    await store.jobs.update_execution(exe_id, stdout_file=str(stdout_file),
                                      stderr_file=str(stderr_file))
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        stdout = page.locator("#log-stdout")
        await expect(stdout).to_have_text("starting\n")
        await expect(page.locator("[data-log-state]")).to_have_text(
            "Following the log as it grows…")
        with stdout_file.open("a") as out:
            out.write("halfway\n")
        stderr_file.write_text("warning: slow\n")
        await expect(stdout).to_have_text("starting\nhalfway\n")
        await page.get_by_role("tab", name="stderr").click()
        await expect(page.locator("#log-stderr")).to_have_text("warning: slow\n")
        await expect(stdout).to_be_hidden()
        with stdout_file.open("a") as out:
            out.write("done\n")
        await store.jobs.complete_execution(exe_id, {})
        await expect(page.locator("[data-log-state]")).to_have_text(
            "The execution has finished; this is its whole log.")
        await expect(stdout).to_have_text("starting\nhalfway\ndone\n")


@needs_live
@pytest.mark.gen_test(timeout=60)
async def test_overview_and_details_follow_live_updates(base_url, make, store):
    jt = await make.posted_type("watched")
    job = await make.submit(jt)
    async with chromium(base_url) as page:
        await page.goto(base_url + "/")
        await expect(page.locator("[data-live]")).to_have_attribute("data-state", "live",
                                                                   timeout=15000)
        queued = page.locator('[data-count-status="QUEUED"]')
        await expect(queued).to_have_text("1")
        await make.submit(jt)
        await expect(queued).to_have_text("2", timeout=15000)

        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        await expect(page.locator("[data-live]")).to_have_attribute("data-state", "live",
                                                                   timeout=15000)
        await store.jobs.start_execution(job["job_exes"][0]["id"], None)
        await expect(page.locator("h1 [data-status-badge]")).to_have_text("RUNNING",
                                                                         timeout=15000)
        await expect(page.locator('dd[data-field="status"]')).to_have_text("RUNNING")
