"""static/js/live.js in headless Chromium against the real app: updates, resume after a forced
close without a gap or a duplicate, pause/resume and hidden-tab catch-up."""

import shutil
from urllib.parse import urlencode

import pytest

from core.times import format_ms, now_ms
from tests.live_client import until_live
from tests.tokens import VIEWER_TOKEN

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api")
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

CONNECT = """started => {
  window.got = []; window.states = [];
  window.live = JobdeckLive.connect({
    params: {status: ['QUEUED', 'RUNNING', 'CANCELED']}, started: started,
    onUpdates: rows => window.got.push(...rows),
    onState: (state, detail) => window.states.push([state, detail]),
  });
}"""
SET_HIDDEN = """hidden => {
  Object.defineProperty(document, 'hidden', {get: () => hidden, configurable: true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


async def got_keys(page) -> list[tuple[int, str]]:
    rows = await page.evaluate("window.got.map(r => [r.id, r.last_status_change])")
    return [tuple(row) for row in rows]


async def wait_for_job(page, job_id: int, status: str) -> None:
    await page.wait_for_function(
        f"window.got.some(r => r.id === {job_id} && r.status === '{status}')")


def key(job: dict) -> tuple[int, str]:
    changed = job["last_status_change"]
    return job["id"], changed if isinstance(changed, str) else format_ms(changed)


@pytest.mark.gen_test(timeout=90)
async def test_live_client_resumes_without_gap_or_duplicate(base_url, hub, make):
    job_type = await make.job_type("live", category="live")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                           args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            # The test drives live.js from evaluated snippets, which the CSP rightly forbids;
            # the dashboard tests (tests/browser) run under the CSP.
            page = await browser.new_page(bypass_csp=True)
            page.set_default_timeout(20000)
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(base_url + "/login?" + urlencode(
                {"token": VIEWER_TOKEN, "next": "/health"}))
            await page.add_script_tag(url="/static/js/live.js")
            made = [await make.submit(job_type)]
            await page.evaluate(CONNECT, format_ms(now_ms() - 60_000))
            await until_live(hub, 1)
            made += [await make.submit(job_type) for _ in range(3)]
            await wait_for_job(page, made[-1]["id"], "QUEUED")

            # The server drops it (as it drops one that falls behind); changes meanwhile.
            (subscriber,) = hub.subscribers
            hub.unsubscribe(subscriber)
            subscriber.on_overflow("forced by the test")
            made.append(await make.start(made[0]))
            made.append(await make.cancel(made[1]))
            made.append(await make.submit(job_type))
            await wait_for_job(page, made[-1]["id"], "QUEUED")
            await wait_for_job(page, made[1]["id"], "CANCELED")
            states = [s for s, _ in await page.evaluate("window.states")]
            assert states[:3] == ["connecting", "live", "offline"] and states[-1] == "live"
            detail = dict(await page.evaluate("window.states"))["offline"]
            assert detail.startswith("Too far behind: forced by the test; reconnect with started=")

            # Paused: disconnected; resumed: catches up.
            await page.evaluate("window.live.pause()")
            while hub.subscribers:
                await page.wait_for_timeout(20)
            made.append(await make.submit(job_type))
            await page.evaluate("window.live.resume()")
            await wait_for_job(page, made[-1]["id"], "QUEUED")

            # Hidden tab: disconnected and 'paused'; shown again: catches up.
            await until_live(hub, 1)
            await page.evaluate(SET_HIDDEN, True)
            while hub.subscribers:
                await page.wait_for_timeout(20)
            made.append(await make.start(made[2]))
            await page.evaluate(SET_HIDDEN, False)
            await wait_for_job(page, made[2]["id"], "RUNNING")

            keys = await got_keys(page)
            assert len(keys) == len(set(keys)), "a change was delivered twice"
            assert {key(job) for job in made} <= set(keys)
            states = [s for s, _ in await page.evaluate("window.states")]
            assert states.count("paused") == 2 and states[-1] == "live"
            await page.evaluate("window.live.close()")
            assert errors == []
        finally:
            await browser.close()
