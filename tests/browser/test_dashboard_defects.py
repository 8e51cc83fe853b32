"""Issue 14's dashboard defects in headless Chromium against the real app and store: what a new
operator hit on the job page, the jobs list and at 360 px."""

import re

import pytest

from core.times import now_ms
from tests.browser.browser_helpers import chromium

# Each test drives its own Chromium: `make test` runs these one at a time (see
# test_jobs_browser.py).
pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect
LIVE_TIMEOUT = 15000


async def shown_ids(page) -> list[int]:
    return [int(i) for i in await page.locator("table.jobs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)")]


async def wait_live(page) -> None:
    await expect(page.locator("[data-live]")).to_have_attribute("data-state", "live",
                                                               timeout=LIVE_TIMEOUT)


async def bar_geometry(page, phase: str) -> tuple[float, float]:
    """(left, width) of a phase bar, in percent of its track, as drawn."""
    return tuple(await page.locator(f".phase-{phase}[data-phase]").first.evaluate(
        """bar => { const track = bar.parentElement.getBoundingClientRect();
                    const box = bar.getBoundingClientRect();
                    return [(box.left - track.left) / track.width * 100,
                            box.width / track.width * 100]; }"""))


async def running_job(make, store, jt, job_started_ago_ms: int = 0) -> tuple[dict, int]:
    """A RUNNING job whose 8 ms pre phase just ended and whose job phase started
    `job_started_ago_ms` ago."""
    job = await make.submit(jt)
    exe_id = job["job_exes"][0]["id"]
    await store.jobs.start_execution(exe_id, None)
    now = now_ms() - job_started_ago_ms
    await store.jobs.update_execution(exe_id, pre_started=now - 8, pre_completed=now,
                                      pre_exit_code=0, job_started=now)
    await store.db["job_exes"].update_one({"id": exe_id}, {"$set": {"started": now - 8}})
    return job, exe_id


# -- defect 1 ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_running_execution_elapsed_time_ticks_and_phases_stay_proportional(base_url, make,
                                                                                 store):
    jt = await make.posted_type("ticking")
    job, _ = await running_job(make, store, jt)
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        elapsed = page.locator("li.exe [data-elapsed]")
        await expect(elapsed).to_have_text(re.compile(r"^running for \d+\.\d s$"))
        await expect(elapsed).to_have_text(re.compile(r"^running for ([2-9]|\d\d+)\.\d s$"),
                                           timeout=6000)
        pre_left, pre_width = await bar_geometry(page, "pre")
        job_left, job_width = await bar_geometry(page, "job")
        # After 2 s the 8 ms pre phase is a sliver and the job phase fills the rest.
        assert pre_width < 2 and job_width > 95, (pre_width, job_width)
        assert job_left + job_width <= 100.5 and pre_left >= 0


# -- defect 2 ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_cancel_updates_the_whole_job_page_from_the_live_feed(base_url, make, store, api):
    jt = await make.posted_type("followed")
    job, exe_id = await running_job(make, store, jt)
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        await wait_live(page)
        card = page.locator(f'li.exe[data-exe-id="{exe_id}"]')
        await expect(card.locator("[data-status-badge]")).to_have_text("RUNNING")
        status, _, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
        assert status == 200
        await expect(page.locator("h1 [data-status-badge]")).to_have_text(
            "CANCELED", timeout=LIVE_TIMEOUT)
        await expect(card.locator("[data-status-badge]")).to_have_text("CANCELED")
        await expect(card.locator("[data-elapsed]")).not_to_contain_text("running")
        await expect(page.locator('dd[data-field="status"]')).to_have_text("CANCELED")
        await expect(page.locator('dd[data-field="ended"] time')).to_have_count(1)
        toolbar = page.locator(".toolbar")
        await expect(toolbar.get_by_role("button", name=f"Cancel job {job['id']}")).to_be_hidden()
        await expect(toolbar.get_by_role("button", name=f"Requeue job {job['id']}")
                     ).to_be_visible()

        # Requeued: a new execution card and its log appear without a reload.
        await page.evaluate("window.notReloaded = true")
        await toolbar.get_by_role("button", name=f"Requeue job {job['id']}").click()
        await expect(page.locator("h1 [data-status-badge]")).to_have_text("QUEUED")
        await expect(page.locator("li.exe")).to_have_count(2, timeout=LIVE_TIMEOUT)
        latest = (await store.jobs.get_job(job["id"]))["latest_exe_id"]
        await expect(page.locator("[data-log]")).to_have_attribute("data-exe-id", str(latest))
        assert await page.evaluate("window.notReloaded") is True


# -- defects 3 and 4 ---------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_new_jobs_appear_at_the_top_and_the_summary_stays_exact(base_url, make, store):
    jt = await make.posted_type("listed")
    ids = [(await make.submit(jt))["id"] for _ in range(3)]
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/jobs")
        assert await shown_ids(page) == ids[::-1]
        await wait_live(page)
        summary = page.locator("[data-summary]")
        await expect(summary).to_contain_text("Showing 1\N{EN DASH}3 of 3 jobs")
        fresh = [(await make.submit(jt))["id"] for _ in range(2)]
        row = page.locator(f'tr[data-job-id="{fresh[1]}"]')
        await expect(row).to_have_count(1, timeout=LIVE_TIMEOUT)
        await expect(page.locator(f'tr[data-job-id="{fresh[0]}"]')).to_have_count(1)
        assert await shown_ids(page) == [*fresh[::-1], *ids[::-1]]
        await expect(row).to_have_class(re.compile(r"\brow-new\b"))
        await expect(summary).to_contain_text("Showing 1\N{EN DASH}5 of 5 jobs")
        await expect(page.locator("[data-new-notice]")).to_be_hidden()

        # The oldest row's status changes: sorted by last status change, it moves to the top.
        await make.start({"id": ids[0]})
        await expect(page.locator(f'tr[data-job-id="{ids[0]}"] [data-status-badge]')
                     ).to_have_text("RUNNING", timeout=LIVE_TIMEOUT)
        assert await shown_ids(page) == [ids[0], *fresh[::-1], ids[2], ids[1]]
        await expect(summary).to_contain_text("Showing 1\N{EN DASH}5 of 5 jobs")


@pytest.mark.gen_test(timeout=60)
async def test_a_full_page_stays_exact_as_rows_arrive(base_url, make, store):
    jt = await make.posted_type("paged")
    ids = [(await make.submit(jt))["id"] for _ in range(4)]
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/jobs?page_size=25&order=id")
        await wait_live(page)
        summary = page.locator("[data-summary]")
        fresh = [(await make.submit(jt))["id"] for _ in range(2)]
        await expect(page.locator(f'tr[data-job-id="{fresh[1]}"]')).to_have_count(
            1, timeout=LIVE_TIMEOUT)
        # Ascending by id: new jobs go to the bottom of the (not full) page.
        assert await shown_ids(page) == [*ids, *fresh]
        await expect(summary).to_contain_text("Showing 1\N{EN DASH}6 of 6 jobs")


# -- defect 5 ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_node_memory_is_readable_and_visible_at_360px(base_url, api, store):
    await store.nodes.register("worker-with-a-long-hostname", None, 8, 24105.12890625)
    async with chromium(base_url, viewport={"width": 360, "height": 740}, is_mobile=True) as page:
        await page.goto(base_url + "/")
        cell = page.locator("[data-node-mem]")
        await expect(cell).to_have_text("0 MiB of 23.5 GiB")
        box = await cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, box
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360


# -- defect 6 ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_nothing_scrolls_sideways_at_360px(base_url, make, store, api):
    jt = await make.posted_type("narrow-type-with-a-rather-long-name", title="Narrow")
    job, exe_id = await running_job(make, store, jt, job_started_ago_ms=5000)
    now = now_ms()
    await store.jobs.update_execution(exe_id, job_completed=now, job_exit_code=0,
                                      post_started=now, post_completed=now, post_exit_code=0)
    await store.jobs.complete_execution(exe_id, {})
    failed, failed_exe = await running_job(make, store, jt)
    await store.jobs.update_execution(failed_exe, job_completed=now_ms(), job_exit_code=3)
    await store.jobs.fail_execution(failed_exe, await store.errors.by_name("algorithm-unknown"))
    paths = ["/", "/dashboard/jobs", f"/dashboard/jobs/{job['id']}",
             f"/dashboard/jobs/{failed['id']}", "/dashboard/job-types",
             f"/dashboard/job-types/{jt['id']}", "/dashboard/queue",
             "/dashboard/jobs?started=yesterday"]
    async with chromium(base_url, viewport={"width": 360, "height": 740}, is_mobile=True) as page:
        for path in paths:
            await page.goto(base_url + path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (path, width)


# -- defect 10 ---------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_cancel_buttons_match_the_api_and_a_refusal_is_plain(base_url, make, store):
    jt = await make.posted_type("refused")
    job = await make.submit(jt)
    async with chromium(base_url) as page:
        await page.route("**/static/js/live.js*", lambda route: route.abort())
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        cancel = page.locator(".toolbar").get_by_role("button", name=f"Cancel job {job['id']}")
        await expect(cancel).to_be_visible()
        await make.cancel(job)  # behind the page's back
        await cancel.click()
        await expect(page.locator("[data-message]")).to_have_text(
            f"Job {job['id']} is already canceled.")


# -- defect 12 ---------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_bad_date_keeps_the_form_and_range_choices_exclude_each_other(base_url, make):
    jt = await make.posted_type("ranged")
    job = await make.submit(jt)
    async with chromium(base_url) as page:
        await page.goto(base_url + "/dashboard/jobs?started=yesterday&job_type_name=ranged")
        error = page.locator("#e-started")
        await expect(error).to_have_text(
            "started: 'yesterday' is not an ISO-8601 datetime or duration")
        await expect(page.get_by_label("From (UTC)")).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Job type")).to_have_value("ranged")
        assert await page.get_by_label("From (UTC)").get_attribute("type") == "datetime-local"

        await page.get_by_label("Modified").select_option("PT24H")
        await page.get_by_label("From (UTC)").fill("2026-01-01T08:00:00")
        await expect(page.get_by_label("Modified")).to_have_value("")
        await page.get_by_label("Modified").select_option("PT1H")
        await expect(page.get_by_label("From (UTC)")).to_have_value("")
        await page.get_by_role("button", name="Apply filters").click()
        await page.wait_for_url("**/dashboard/jobs?job_type_name=ranged&started=PT1H")
        assert await shown_ids(page) == [job["id"]]
        await expect(page.locator(".field-error")).to_have_count(0)


# -- defect 13 ---------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_failed_job_opens_on_stderr_and_summarizes_the_failure(base_url, make, store,
                                                                     tmp_path):
    jt = await make.posted_type("boom")
    job, exe_id = await running_job(make, store, jt)
    stdout_file, stderr_file = tmp_path / "stdout.log", tmp_path / "stderr.log"
    stdout_file.write_text("starting\nworking\n")
    stderr_file.write_text("".join(f"line {i}\n" for i in range(1, 8)) + "boom\n")
    await store.jobs.update_execution(exe_id, stdout_file=str(stdout_file),
                                      stderr_file=str(stderr_file), job_completed=now_ms(),
                                      job_exit_code=3)
    await store.jobs.fail_execution(exe_id, await store.errors.by_name("algorithm-unknown"))
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        await expect(page.get_by_role("tab", name="stderr")).to_have_attribute(
            "aria-selected", "true")
        await expect(page.locator("#log-stderr")).to_be_visible()
        await expect(page.locator("#log-stderr")).to_contain_text("boom")
        error = page.locator('dd[data-field="error"]')
        await expect(error).to_contain_text("Exit code 3 in the job phase.")
        await expect(error.locator("[data-error-tail-text]")).to_have_text(
            "line 4\nline 5\nline 6\nline 7\nboom")
