"""Issue 14's logs on the job page, in headless Chromium against the real app and store: each log
downloads whole as raw text, and a search marks, counts and steps through the matches while the
tail keeps growing."""

from pathlib import Path

import pytest

from tests.browser.browser_helpers import chromium

pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect


async def running_job_with_logs(make, store, folder, stdout: str, stderr: str) -> tuple:
    """A RUNNING job whose execution writes these logs; the job and the log files."""
    jt = await make.posted_type("logged")
    job = await make.submit(jt)
    exe_id = job["job_exes"][0]["id"]
    await store.jobs.start_execution(exe_id, None)
    out, err = folder / "stdout.log", folder / "stderr.log"
    out.write_text(stdout)
    err.write_text(stderr)
    await store.jobs.update_execution(exe_id, stdout_file=str(out), stderr_file=str(err))
    return job, out, err


@pytest.mark.gen_test(timeout=60)
async def test_log_search_marks_counts_steps_and_keeps_the_tail_live(base_url, make, store,
                                                                      tmp_path, artifacts):
    job, out, _ = await running_job_with_logs(
        make, store, tmp_path, "tick 1\nok\ntick 2\nTICK 3 <b>\n", "warning: slow\nwarning: late\n")
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        stdout = page.locator("#log-stdout")
        await expect(stdout).to_have_text("tick 1\nok\ntick 2\nTICK 3 <b>\n")
        count = page.locator("[data-log-count]")
        search = page.get_by_label("Search the log")
        await page.keyboard.press("/")  # the search shortcut finds the log's search here
        await expect(search).to_be_focused()
        await page.keyboard.type("tick")
        await expect(count).to_have_text("1 of 3 matches")
        await expect(stdout.locator("mark")).to_have_text(["tick", "tick", "TICK"])
        await expect(stdout.locator("mark.current")).to_have_count(1)
        assert await stdout.locator("mark").nth(0).get_attribute("class") == "current"
        await search.press("Enter")
        await expect(count).to_have_text("2 of 3 matches")
        await page.get_by_role("button", name="Previous match").click()
        await page.get_by_role("button", name="Previous match").click()
        await expect(count).to_have_text("3 of 3 matches")  # wraps round
        assert await stdout.locator("mark").nth(2).get_attribute("class") == "current"
        await search.press("Shift+Enter")
        await expect(count).to_have_text("2 of 3 matches")
        # The tail stays live while searching: new lines arrive, marked and counted.
        with out.open("a") as handle:
            handle.write("tick 4\n")
        await expect(count).to_have_text("2 of 4 matches")
        await expect(stdout).to_have_text("tick 1\nok\ntick 2\nTICK 3 <b>\ntick 4\n")
        await expect(page.locator("[data-log-state]")).to_have_text(
            "Following the log as it grows…")
        assert await search.input_value() == "tick"
        await page.screenshot(path=str(artifacts / "job-log-search.png"), full_page=True)

        await page.get_by_role("tab", name="stderr").click()
        await expect(count).to_have_text("No matches")
        await expect(page.get_by_role("button", name="Next match")).to_be_disabled()
        await search.fill("warning")
        await expect(count).to_have_text("1 of 2 matches")
        await expect(page.locator("#log-stderr mark")).to_have_count(2)
        await search.fill("")
        await expect(count).to_have_text("")
        await expect(page.locator("[data-log] mark")).to_have_count(0)
        await expect(page.locator("#log-stderr")).to_have_text("warning: slow\nwarning: late\n")


@pytest.mark.gen_test(timeout=60)
async def test_each_log_downloads_as_raw_text(base_url, make, store, tmp_path):
    job, _, _ = await running_job_with_logs(make, store, tmp_path, "out <i>1</i>\n", "err ü\n")
    exe_id = job["job_exes"][0]["id"]
    async with chromium(base_url, accept_downloads=True) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        await expect(page.locator("#log-stdout")).to_have_text("out <i>1</i>\n")
        for stream, text in (("stdout", "out <i>1</i>\n"), ("stderr", "err ü\n")):
            async with page.expect_download() as info:
                await page.get_by_role("link", name=f"Download {stream}").click()
            download = await info.value
            assert download.suggested_filename == f"execution-{exe_id}-{stream}.log"
            path = await download.path()
            assert Path(path).read_text(encoding="utf-8") == text
        assert page.url == f"{base_url}/dashboard/jobs/{job['id']}"  # the page stays


@pytest.mark.gen_test(timeout=60)
async def test_log_tools_fit_360_px(base_url, make, store, tmp_path, artifacts):
    job, _, _ = await running_job_with_logs(make, store, tmp_path, "a long line " * 50, "")
    async with chromium(base_url, viewport={"width": 360, "height": 740},
                        is_mobile=True) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        await page.get_by_label("Search the log").fill("long")
        await expect(page.locator("[data-log-count]")).to_have_text("1 of 50 matches")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.locator("[data-log]").screenshot(
            path=str(artifacts / "narrow-360-job-log-search.png"))
