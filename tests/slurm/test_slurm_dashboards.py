"""The dashboards with Slurm jobs, in headless Chromium: the job page follows a Slurm job and
shows its Slurm job id and node; the overview's node card shows the cluster's nodes."""

import pytest

from tests.browser.browser_helpers import chromium
from tests.slurm.slurm_helpers import slurm_job_of, wait_slurm
from tests.waiting import PY

pytestmark = pytest.mark.alone
expect = pytest.importorskip("playwright.async_api").expect


@pytest.mark.gen_test(timeout=120)
async def test_the_job_page_shows_the_slurm_job_and_node_and_the_overview_the_nodes(
        base_url, make, store, start_engine, slurm_cluster):
    job_type = await make.command_type("shown", PY, "-c 'import time; time.sleep(3)'")
    job = await make.submit(job_type)
    await start_engine()
    _, slurm_id = await slurm_job_of(store, job["id"])
    node = (await wait_slurm(slurm_cluster, slurm_id, "RUNNING", "COMPLETED"))["NodeList"]
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/jobs/{job['id']}")
        card = page.locator(f'li.exe[data-exe-id="{job["job_exes"][0]["id"]}"]')
        await expect(card.locator("[data-cluster]")).to_have_text(
            f"Slurm job {slurm_id} on {node}", timeout=15000)
        # The page follows the job to its end without a reload.
        await expect(page.locator('[data-field="status"]')).to_have_text("COMPLETED",
                                                                          timeout=30000)
        await expect(card.locator("[data-cluster]")).to_have_text(f"Slurm job {slurm_id} on {node}")

        await page.goto(base_url + "/")
        for name in ("n1", "n2"):
            row = page.locator("table.nodes tr", has=page.locator(f'th:text-is("{name}")'))
            await expect(row.locator("[data-slurm-state]")).to_have_text("(Slurm: idle)",
                                                                        timeout=15000)
