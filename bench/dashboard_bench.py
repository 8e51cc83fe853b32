"""The jobs dashboard against the GET /jobs/ call it wraps, at 100,000 seeded jobs.

A fresh embedded nx-27017 under /tmp is seeded with `store.seed.seed_jobs` (documents from
`JobStore.new_job_doc`, written with `insert_many`), then `server.py --mongo-url` runs as a child
process. For each view, over one keep-alive connection and interleaved so both see the same
store state:

- api_ms: median time of GET /jobs/?<view> (whole response);
- ttfb_ms / page_ms: median time to the first response byte (status line and headers) and to
  the whole HTML of /dashboard/jobs?<view>; the ratios divide them by api_ms (target <= 2).

With Chromium available (Playwright, Debian's /usr/bin/chromium) it also measures, for the
default view, the browser's navigation timing to a complete page (load event, CSS and scripts
included), and the main-thread cost of live updates: 50 status changes per second applied to the
100-row table for 5 s through the page's own `JobdeckJobs.applyUpdates` (each change timed from
the call to a forced style and layout; target: median <= 4 ms), plus the long tasks (> 50 ms)
seen meanwhile and the main thread's whole CPU time per change (DevTools' ThreadTime over the
run and 1.5 s after it: the frames' paint and the rows' highlight animation included).
"""

import asyncio
import http.client
import shutil
import statistics
import time
from pathlib import Path

from bench.api_bench import fresh_store, start_server, stop_server
from store import Store
from store.seed import seed_jobs

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_RATIO = 2.0
VIEWS = (
    ("page 1 (default order)", ""),
    ("status=RUNNING", "?status=RUNNING"),
    ("job_type_name=convert-image", "?job_type_name=convert-image"),
    ("order=-last_modified", "?order=-last_modified"),
)
UPDATES_PER_SECOND = 50
UPDATE_SECONDS = 5
TARGET_UPDATE_MS = 4.0
SETTLE_MS = 1500

# Runs in the page: applies one status change per tick to a row on the page, timing each from
# the call to a forced style and layout (the page's real work per change), and counts long tasks.
UPDATE_SCRIPT = """async ([perSecond, seconds]) => {
  const rows = (await (await fetch('/jobs/' + location.search)).json()).results;
  const statuses = ['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELED'];
  const costs = [];
  let longTasks = 0;
  const observer = new PerformanceObserver(list => { longTasks += list.getEntries().length; });
  observer.observe({entryTypes: ['longtask']});
  const total = perSecond * seconds;
  await new Promise(resolve => {
    let i = 0;
    const timer = setInterval(() => {
      const row = Object.assign({}, rows[i % rows.length]);
      row.status = statuses[i % statuses.length];
      row.last_modified = row.last_status_change = new Date().toISOString();
      const t0 = performance.now();
      window.JobdeckJobs.applyUpdates([row]);
      window.JobdeckJobs.flushNow();
      document.body.offsetHeight;
      costs.push(performance.now() - t0);
      i += 1;
      if (i >= total) { clearInterval(timer); resolve(); }
    }, 1000 / perSecond);
  });
  observer.disconnect();
  costs.sort((a, b) => a - b);
  return {count: costs.length, median: costs[Math.floor(costs.length / 2)],
          p95: costs[Math.floor(costs.length * 0.95)], max: costs[costs.length - 1], longTasks};
}"""


def add_arguments(parser) -> None:
    parser.add_argument("--dashboard-requests", type=int, default=30,
                        help="timed requests per dashboard view (at least 10)")
    parser.add_argument("--dashboard-jobs", type=int, default=None,
                        help="seed this many jobs instead of 100,000")


def run(args) -> list[dict]:
    size = getattr(args, "dashboard_jobs", None) or (10_000 if args.quick else 100_000)
    requests = max(10, getattr(args, "dashboard_requests", 30))
    return asyncio.run(measure(size, requests))


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[float, float, int]:
    """(seconds to the status line and headers, seconds to the whole body, status)."""
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    first = time.perf_counter()
    response.read()
    return first - started, time.perf_counter() - started, response.status


def measure_views(port: int, requests: int, size: int) -> list[dict]:
    """Each view, plus a deep page: 500 at 100,000 jobs (the middle of the list)."""
    deep = max(2, size // 200)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    rows = []
    for name, query in (*VIEWS, (f"page {deep}", f"?page={deep}")):
        for path in ("/jobs/" + query, "/dashboard/jobs" + query):
            status = timed_get(conn, path)[2]
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
        api, ttfb, page = [], [], []
        for _ in range(requests):
            api.append(timed_get(conn, "/jobs/" + query)[1])
            first, whole, _ = timed_get(conn, "/dashboard/jobs" + query)
            ttfb.append(first)
            page.append(whole)
        api_ms = statistics.median(api) * 1000
        ttfb_ms = statistics.median(ttfb) * 1000
        page_ms = statistics.median(page) * 1000
        rows.append({"case": name, "api_ms": api_ms, "ttfb_ms": ttfb_ms, "page_ms": page_ms,
                     "ttfb_ratio": ttfb_ms / api_ms, "page_ratio": page_ms / api_ms,
                     "target": f"<= {TARGET_RATIO}", "met": page_ms / api_ms <= TARGET_RATIO})
    conn.close()
    return rows


async def thread_seconds(cdp) -> float:
    """The page's main-thread CPU time so far (DevTools Performance metrics), in seconds."""
    metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "ThreadTime")


async def measure_browser(port: int, api_ms: float) -> list[dict]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return [{"case": "browser", "note": "playwright is not installed; skipped"}]
    if not shutil.which(CHROMIUM):
        return [{"case": "browser", "note": f"{CHROMIUM} is missing; skipped"}]
    base = f"http://127.0.0.1:{port}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            loads = []
            for _ in range(5):
                await page.goto(base + "/dashboard/jobs", wait_until="load")
                timing = await page.evaluate(
                    "JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")
                loads.append(timing["loadEventEnd"] - timing["startTime"])
            load_ms = statistics.median(loads)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            before = await thread_seconds(cdp)
            updates = await page.evaluate(UPDATE_SCRIPT, [UPDATES_PER_SECOND, UPDATE_SECONDS])
            # The frames that follow the last change (paint, the highlight's animation) count.
            await page.wait_for_timeout(SETTLE_MS)
            cpu_ms = (await thread_seconds(cdp) - before) * 1000 / updates["count"]
        finally:
            await browser.close()
    return [
        {"case": "browser: complete jobs page (load event)", "api_ms": api_ms,
         "page_ms": load_ms, "page_ratio": load_ms / api_ms},
        {"case": f"browser: {UPDATES_PER_SECOND} changes/s for {UPDATE_SECONDS} s",
         "updates": updates["count"], "update_median_ms": updates["median"],
         "update_p95_ms": updates["p95"], "update_max_ms": updates["max"],
         "long_tasks": updates["longTasks"], "cpu_per_change_ms": cpu_ms,
         "target": f"<= {TARGET_UPDATE_MS}", "met": updates["median"] <= TARGET_UPDATE_MS},
    ]


async def measure(size: int, requests: int) -> list[dict]:
    async with fresh_store("jobdeck-dashboard-bench-") as (url, work_dir, _):
        store = await Store(url, "jobdeck").open()
        try:
            # Small batches: a long insert blocks nx-27017, and a heartbeat that waits past the
            # driver's 5 s connect timeout clears the pool and cancels the insert.
            await seed_jobs(store, size, batch=1000, progress=None)
        finally:
            await store.close()
        server, port = start_server(url, work_dir)
        try:
            rows = await asyncio.to_thread(measure_views, port, requests, size)
            rows += await measure_browser(port, rows[0]["api_ms"])
        finally:
            stop_server(server)
    return [{"jobs": size, **row} for row in rows]
