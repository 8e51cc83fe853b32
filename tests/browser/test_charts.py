"""Issue 14's time charts on the overview, in headless Chromium against the real app and store:
the drawn bars and lines against known data, the range selector, the empty states and the
width at 360 px."""

import pytest

from core.times import format_ms, now_ms
from tests.browser.browser_helpers import chromium

pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect

MINUTE = 60_000


async def finished_at(make, job_type, status: str, at: int) -> None:
    """A job that became `status` (COMPLETED or FAILED) at `at` (ms)."""
    job, _ = await (make.completed(job_type) if status == "COMPLETED" else make.failed(job_type))
    await make.touch(job["id"], at, at)


async def known_activity(make, store, now: int) -> dict:
    """3 completed and 1 failed 10 minutes ago, 2 failed 5 minutes ago; a queue sample of 2
    queued 8 minutes ago; now 2 queued and 1 running. The minutes, by name, and the job type's
    id."""
    minute = now - now % MINUTE
    jt = await make.job_type("charted")
    ten, five, eight = minute - 10 * MINUTE, minute - 5 * MINUTE, minute - 8 * MINUTE
    for _ in range(3):
        await finished_at(make, jt, "COMPLETED", ten + 5000)
    await finished_at(make, jt, "FAILED", ten + 7000)
    for _ in range(2):
        await finished_at(make, jt, "FAILED", five + 1000)
    await make.queued(jt)
    await make.queued(jt)
    assert await store.samples.take(eight + 30_000) == {"_id": eight, "queued": 2, "running": 0}
    await make.running(jt)
    return {"ten": ten, "five": five, "eight": eight, "job_type_id": jt["id"]}


async def drawn_bars(page) -> dict[str, tuple[int, int, float, float]]:
    """Per interval start: completed, failed and the heights of their drawn bars."""
    rows = await page.locator('[data-chart="finished"] g[data-point]').evaluate_all(
        """gs => gs.map(g => {
             const h = c => { const r = g.querySelector(c); return r ? +r.getAttribute('height') : 0; };
             return [g.dataset.time, +g.dataset.completed, +g.dataset.failed,
                     h('.bar-completed'), h('.bar-failed')]; })""")
    return {time: (done, bad, done_h, bad_h) for time, done, bad, done_h, bad_h in rows}


async def drawn_dots(page, chart: str) -> dict[str, int]:
    rows = await page.locator(f'[data-chart="{chart}"] circle[data-point]').evaluate_all(
        "cs => cs.map(c => [c.dataset.time, +c.dataset.value])")
    return dict(rows)


@pytest.mark.gen_test(timeout=90)
async def test_charts_draw_known_counts_and_follow_the_range(base_url, make, store, artifacts):
    now = now_ms()
    at = await known_activity(make, store, now)
    async with chromium(base_url, viewport={"width": 1280, "height": 900}) as page:
        await page.goto(base_url + "/")
        charts = page.locator("[data-charts]")
        await expect(charts).to_have_attribute("data-drawn", "1h")
        bars = await drawn_bars(page)
        assert len(bars) == 60
        shown = {t: b[:2] for t, b in bars.items() if b[:2] != (0, 0)}
        assert shown == {format_ms(at["ten"]): (3, 1), format_ms(at["five"]): (0, 2)}
        done_h, bad_h = bars[format_ms(at["ten"])][2:]
        assert done_h == pytest.approx(3 * bad_h)  # the bars' heights follow the counts
        assert bars[format_ms(at["five"])][3] == pytest.approx(2 * bad_h)
        await expect(page.locator('[data-chart="finished"] [data-chart-summary]')).to_have_text(
            "3 completed, 3 failed")
        queued = await drawn_dots(page, "queued")
        running = await drawn_dots(page, "running")
        newest = list(bars)[-1]
        assert queued == {format_ms(at["eight"]): 2, newest: 2}
        assert running == {format_ms(at["eight"]): 0, newest: 1}
        assert await page.locator(".line-queued").count() == 2  # no samples between: a gap
        await expect(page.locator('[data-chart="running"] [data-chart-summary]')).to_have_text(
            "now 1, at most 1")
        # The axes are labelled, and the chart fills its card.
        labels = await page.locator('[data-chart="finished"] .axis-label').all_text_contents()
        assert labels == ["time (UTC), 1 min intervals", "jobs per 1 min"]
        widths = await page.locator('[data-chart="finished"]').evaluate(
            "f => [f.querySelector('svg').getBoundingClientRect().width, "
            "f.querySelector('[data-chart-body]').clientWidth, f.clientWidth]")
        assert widths[0] == widths[1] and widths[1] >= widths[2] - 20
        await page.screenshot(path=str(artifacts / "overview-charts-1h.png"), full_page=True)
        # It follows the live feed: a job finishing now is counted in the newest interval.
        await expect(page.locator("[data-live]")).to_have_attribute("data-state", "live",
                                                                   timeout=15000)
        job, _ = await make.completed(await store.job_types.get(at["job_type_id"]))
        await expect(page.locator('[data-chart="finished"] [data-chart-summary]')).to_have_text(
            "4 completed, 3 failed", timeout=20000)
        done = job["last_status_change"]
        assert (await drawn_bars(page))[format_ms(done - done % MINUTE)][:2] == (1, 0)

        await page.get_by_role("button", name="24 hours").click()
        await expect(charts).to_have_attribute("data-drawn", "24h")
        assert "range=24h" in page.url
        await expect(page.get_by_role("button", name="24 hours")).to_have_attribute(
            "aria-pressed", "true")
        bars = await drawn_bars(page)
        assert len(bars) == 48
        half_hour = 30 * MINUTE
        expected: dict[str, list[int]] = {}
        for t, ok, bad in ((at["ten"], 3, 1), (at["five"], 0, 2), (done, 1, 0)):
            entry = expected.setdefault(format_ms(t - t % half_hour), [0, 0])
            entry[0] += ok
            entry[1] += bad
        assert {t: b[:2] for t, b in bars.items() if b[:2] != (0, 0)} == \
            {t: tuple(v) for t, v in expected.items()}
        await expect(page.locator('[data-chart="finished"] .axis-label').first).to_have_text(
            "time (UTC), 30 min intervals")

        await page.get_by_role("button", name="7 days").click()
        await expect(charts).to_have_attribute("data-drawn", "7d")
        assert len(await drawn_bars(page)) == 56
        await page.reload()  # the range is kept in the URL
        await expect(charts).to_have_attribute("data-drawn", "7d")


@pytest.mark.gen_test(timeout=60)
async def test_charts_say_when_there_is_nothing_to_draw(base_url, api):
    async with chromium(base_url, viewport={"width": 1280, "height": 900}) as page:
        await page.goto(base_url + "/")
        await expect(page.locator("[data-charts]")).to_have_attribute("data-drawn", "1h")
        empty = page.locator("[data-chart-empty]")
        await expect(empty).to_have_text([
            "No job finished in the last hour.", "No job was queued in the last hour.",
            "No job was running in the last hour."])
        assert await page.locator("[data-charts] svg").count() == 0
        await page.get_by_role("button", name="7 days").click()
        await expect(empty.first).to_have_text("No job finished in the last 7 days.")


@pytest.mark.gen_test(timeout=60)
async def test_charts_fit_360_px(base_url, make, store, artifacts):
    await known_activity(make, store, now_ms())
    async with chromium(base_url, viewport={"width": 360, "height": 740},
                        is_mobile=True) as page:
        await page.goto(base_url + "/")
        await expect(page.locator("[data-charts]")).to_have_attribute("data-drawn", "1h")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        widths = await page.locator("[data-charts] svg").evaluate_all(
            "svgs => svgs.map(s => [s.getBoundingClientRect().right, "
            "s.parentElement.clientWidth, s.getBoundingClientRect().width])")
        assert len(widths) == 3
        for right, body, width in widths:
            assert right <= 360 and width == body and width > 250
        await page.locator("[data-charts]").screenshot(
            path=str(artifacts / "narrow-360-overview-charts.png"))
