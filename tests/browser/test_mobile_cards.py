"""The jobs list at 360 px (issue 14, mobile): each job is a card of about three lines, and no
label is shown without a value (a finished job's card has no empty "Actions")."""

import pytest

from core.times import now_ms
from tests.browser.browser_helpers import chromium

pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect

# Per card: its height in lines of its text (padding and borders left out), the number of
# visual lines its shown cells fall on, and the labels shown without a value.
CARD_SHAPE = """tr => {
  const style = getComputedStyle(tr);
  const inner = tr.getBoundingClientRect().height - parseFloat(style.paddingTop) -
    parseFloat(style.paddingBottom) - parseFloat(style.borderTopWidth) -
    parseFloat(style.borderBottomWidth);
  const cells = Array.from(tr.cells).filter(td => td.getClientRects().length);
  const lines = [];
  for (const td of cells) {
    const r = td.getBoundingClientRect();
    const line = lines.find(l => r.top < l.bottom && r.bottom > l.top);
    if (line) { line.top = Math.min(line.top, r.top); line.bottom = Math.max(line.bottom, r.bottom); }
    else lines.push({top: r.top, bottom: r.bottom});
  }
  const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const empty = cells.filter(td => {
    const label = getComputedStyle(td, '::before').content;
    const labelled = label && label !== 'none' && label !== '""';
    const value = td.textContent.trim() ||
      Array.from(td.querySelectorAll('input, button, progress')).some(shown);
    return labelled && !value;
  }).map(td => td.dataset.label);
  return {lines: inner / parseFloat(style.lineHeight), rows: lines.length, empty,
          width: tr.getBoundingClientRect().width};
}"""


@pytest.mark.gen_test(timeout=90)
async def test_job_cards_fit_in_three_lines_at_360px_without_empty_labels(base_url, make, store):
    jt = await make.job_type("a-rather-long-job-type-name-for-a-card", timeout=600)
    queued = (await make.queued(jt))[0]
    running = (await make.running(jt))[0]
    await store.db["jobs"].update_one({"id": running["id"]},
                                      {"$set": {"started": now_ms() - 30_000}})
    failed, exe = await make.running(jt)
    await store.jobs.update_execution(exe["id"], job_started=now_ms(), job_exit_code=3)
    await store.jobs.fail_execution(exe["id"], await store.errors.by_name("algorithm-unknown"))
    completed = (await make.completed(jt))[0]
    canceled = await make.cancel((await make.queued(jt))[0])
    ids = {"QUEUED": queued["id"], "RUNNING": running["id"], "FAILED": failed["id"],
           "COMPLETED": completed["id"], "CANCELED": canceled["id"]}
    async with chromium(base_url, viewport={"width": 360, "height": 740}, is_mobile=True) as page:
        await page.goto(f"{base_url}/dashboard/jobs")
        for status, job_id in ids.items():
            card = page.locator(f'tr[data-job-id="{job_id}"]')
            await expect(card).to_have_attribute("data-status", status)
            shape = await card.evaluate(CARD_SHAPE)
            assert shape["rows"] <= 3, (status, shape)
            assert shape["lines"] <= 3.6, (status, shape)
            assert shape["empty"] == [], (status, shape)
            assert shape["width"] <= 360, (status, shape)
        # What a card keeps: its id, type, status, failure and the actions the API allows.
        card = page.locator(f'tr[data-job-id="{failed["id"]}"]')
        await expect(card.locator(".col-id")).to_be_visible()
        await expect(card.locator(".col-job_type__name")).to_be_visible()
        await expect(card.locator(".col-error")).to_have_text("algorithm-unknown · exit 3")
        await expect(card.get_by_role("button", name=f"Requeue job {failed['id']}")).to_be_visible()
        await expect(page.locator(f'tr[data-job-id="{completed["id"]}"] .col-actions')).to_be_hidden()
        # A live change keeps it so: the queued job is canceled, its Cancel goes, Requeue shows.
        await page.evaluate("""async id => {
          const row = (await (await fetch('/jobs/?job_id=' + id)).json()).results[0];
          row.status = 'CANCELED';
          row.last_modified = row.last_status_change = new Date().toISOString();
          window.JobdeckJobs.applyUpdates([row]);
        }""", queued["id"])
        card = page.locator(f'tr[data-job-id="{queued["id"]}"]')
        await expect(card).to_have_attribute("data-status", "CANCELED")
        shape = await card.evaluate(CARD_SHAPE)
        assert shape["rows"] <= 3 and shape["empty"] == [], shape
        # A new job arriving live, already finished: a card without actions either.
        await page.evaluate("""async id => {
          const row = (await (await fetch('/jobs/?job_id=' + id)).json()).results[0];
          Object.assign(row, {id: 9999, status: 'COMPLETED'});
          row.created = row.last_modified = row.last_status_change = new Date().toISOString();
          window.JobdeckJobs.applyUpdates([row]);
        }""", completed["id"])
        card = page.locator('tr[data-job-id="9999"]')
        await expect(card).to_have_attribute("data-status", "COMPLETED")
        await expect(card.locator(".col-actions")).to_be_hidden()
        assert (await card.evaluate(CARD_SHAPE))["empty"] == []
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
