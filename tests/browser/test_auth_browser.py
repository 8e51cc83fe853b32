"""Logging in through the real login page, an operator action carrying the XSRF token, a viewer
refused, and every page under the Content-Security-Policy without a violation."""

import pytest

from tests.browser.browser_helpers import chromium
from tests.tokens import OPERATOR_TOKEN, VIEWER_TOKEN

# Each test drives its own Chromium, which wants both cores: `make test` runs these after the
# parallel phase, one at a time (on three workers they timed out on a loaded two-core machine).
pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect


@pytest.mark.gen_test(timeout=60)
async def test_login_redirect_then_operator_cancel_carries_the_xsrf_token(base_url, make, store):
    job = await make.submit(await make.posted_type("guarded"))
    async with chromium() as page:
        changes = []
        page.on("request", lambda r: changes.append(r) if r.method == "PATCH" else None)
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(base_url + "/dashboard/jobs?status=QUEUED")
        await page.wait_for_url("**/login?next=%2Fdashboard%2Fjobs%3Fstatus%3DQUEUED")
        await page.get_by_label("Token").fill("not-the-right-token")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "That token is not valid on this server.")
        await page.get_by_label("Token").fill(OPERATOR_TOKEN)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(base_url + "/dashboard/jobs?status=QUEUED")
        await expect(page.locator("header .session")).to_contain_text("token (operator)")

        await page.get_by_role("button", name=f"Cancel job {job['id']}").click()
        await expect(page.locator("[data-message]")).to_have_text(f"Job {job['id']} canceled.")
        assert (await store.jobs.get_job(job["id"]))["status"] == "CANCELED"
        (patch,) = changes
        headers = await patch.all_headers()
        assert "authorization" not in headers and len(headers["x-xsrftoken"]) > 20

        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(base_url + "/login")
        await page.goto(base_url + "/dashboard/queue")
        await page.wait_for_url("**/login?next=%2Fdashboard%2Fqueue")


@pytest.mark.gen_test(timeout=60)
async def test_viewer_sees_the_dashboards_but_actions_are_refused(base_url, make, store):
    job = await make.submit(await make.posted_type("watched"))
    async with chromium(base_url, token=VIEWER_TOKEN) as page:
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(base_url + "/dashboard/jobs")
        await page.get_by_role("button", name=f"Cancel job {job['id']}").click()
        await expect(page.locator("[data-message]")).to_have_text(
            "This needs the operator role; you have the viewer role")
        assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"


@pytest.mark.gen_test(timeout=90)
async def test_every_page_renders_under_the_csp_without_violations(base_url, make, store):
    job_type = await make.posted_type("csp")
    job = await make.submit(job_type)
    exe_id = job["job_exes"][0]["id"]
    await store.jobs.start_execution(exe_id, None)
    started = (await store.jobs.get_exe(exe_id))["started"]
    await store.jobs.update_execution(exe_id, pre_started=started, pre_completed=started + 1000,
                                      pre_exit_code=0, job_started=started + 1000)
    paths = ["/", "/dashboard/jobs", f"/dashboard/jobs/{job['id']}", "/dashboard/job-types",
             f"/dashboard/job-types/{job_type['id']}", "/dashboard/queue"]
    async with chromium(base_url) as page:  # fails on any "Content Security Policy" console error
        for path in paths:
            response = await page.goto(base_url + path)
            assert response.status == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            await page.wait_for_load_state("networkidle")
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        bars = await page.locator(".phase[data-left]").all()
        assert len(bars) == 2  # pre done, job running; placed by job.js, not a style attribute
        for bar in bars:
            # Both at one instant: job.js moves a running execution's bars as time passes.
            left, placed = await bar.evaluate("el => [el.dataset.left, el.style.left]")
            assert placed.endswith("%") and float(placed[:-1]) == float(left)
    async with chromium() as page:
        response = await page.goto(base_url + "/login")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        await expect(page.get_by_label("Token")).to_be_visible()
