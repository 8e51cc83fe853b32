"""The benchmark report's accounting: the summary reads each benchmark's rows right, and the load
benchmark's lost-update count flags a change a subscriber did not see."""

from bench.engine_bench import ratio_row
from bench.load_bench import Latencies, endpoint_row, growth_rows
from bench.report import lost_updates, render, summary_rows

API_ROWS = [
    {"bench": "api", "case": "page 1 (default order)", "jobs": 100_000, "e2e_ms": 15.9,
     "store_ms": 12.0, "ratio": 1.325, "target": "<= 1.5", "met": True},
    {"bench": "api", "case": "page 1: 1M over 100k", "jobs": 1_000_000, "e2e_ms": 40.6,
     "ratio": 2.55, "target": "<= 2.0", "met": False},
]
LIVE_ROWS = [
    {"bench": "live", "subscribers": 1, "p99_ms": 50.0, "lost": 0},
    {"bench": "live", "subscribers": 1000, "p99_ms": 400.0, "lost": 2},
]
ENGINE_ROWS = [{"bench": "engine", **row} for row in (
    {"case": "Celery (prefork, Redis): 1000 trivial jobs, 8 at a time", "jobs": 1000,
     "seconds": 2.0, "jobs_per_s": 500.0},
    ratio_row("Jobdeck (sandbox off) over Celery", 1000, 3.0, 2.0, 1.0),
    ratio_row("Jobdeck (sandbox on) over Celery", 1000, 4.0, 2.0, None),
    ratio_row("Jobdeck (sandbox on) over direct spawn", 1000, 4.0, 1.0, 3.0))]
DASHBOARD_ROWS = [
    {"bench": "dashboard", "jobs": 100_000, "case": "status=RUNNING", "api_ms": 20.0,
     "page_ms": 25.0, "page_ratio": 1.25, "target": "<= 2.0", "met": True},
    {"bench": "dashboard", "jobs": 100_000, "case": "browser: complete jobs page (load event)",
     "api_ms": 20.0, "page_ms": 110.0, "page_ratio": 5.5},
    {"bench": "dashboard", "jobs": 100_000, "case": "browser: 50 changes/s for 5 s",
     "updates": 250, "update_median_ms": 3.24, "update_p95_ms": 9.5, "update_max_ms": 20.0,
     "long_tasks": 1, "cpu_per_change_ms": 12.34, "target": "<= 4.0", "met": True},
    {"bench": "dashboard", "jobs": 100_000, "case": "browser", "note": "chromium is missing"},
]


def load_rows(size: int, lost: int, server_errors: int, latency: float) -> list[dict]:
    rows = []
    for name in ("list", "detail", "updates", "submit", "cancel"):
        stats = Latencies()
        for _ in range(9):
            stats.add(latency, 200)
        stats.add(latency * 3, 503 if server_errors else 200)
        rows.append({"bench": "load", **endpoint_row(name, size, stats, 2.0)})
    rows.append({"bench": "load", "case": "ws delivery", "jobs": size, "subscribers": 100,
                 "changes": 900, "median_ms": latency, "p99_ms": latency * 2, "lost": lost,
                 "target": "lost = 0", "met": lost == 0})
    rows.append({"bench": "load", "case": "resources", "jobs": size,
                 "server_rss_peak_mb": 60.0, "store_rss_peak_mb": 45.0})
    return rows


def test_lost_updates_flags_a_change_one_subscriber_missed():
    expected = {(1, "QUEUED"), (1, "CANCELED"), (2, "QUEUED")}
    everything = set(expected)
    short = {(1, "QUEUED"), (2, "QUEUED"), (3, "QUEUED")}
    counted = lost_updates(expected, [everything, short, everything])
    assert counted == {"lost": 1, "subscribers_missing": 1, "unexpected": 1,
                       "examples": [(1, "CANCELED")], "unexpected_examples": [(3, "QUEUED")]}
    assert lost_updates(expected, [everything, everything])["lost"] == 0


def test_endpoint_row_counts_5xx_and_fails_its_target():
    stats = Latencies()
    for seconds, status in ((0.010, 200), (0.020, 201), (0.030, 404), (0.040, 503)):
        stats.add(seconds, status)
    stats.errors = 1
    row = endpoint_row("detail", 1000, stats, 2.0)
    assert row["requests"] == 4
    assert row["req_per_s"] == 2.0
    assert row["median_ms"] == 25.0
    assert row["p99_ms"] == 40.0
    assert (row["5xx"], row["4xx"], row["no_response"]) == (1, 1, 1)
    assert row["met"] is False


def test_growth_rows_divide_the_large_run_by_the_small_one():
    rows = load_rows(1000, 0, 0, 10.0) + load_rows(10_000, 0, 0, 15.0)
    grown = {row["case"]: row for row in growth_rows(rows, 1000, 10_000)}
    assert grown["list: 10x jobs over 1x"]["median_ratio"] == 1.5
    assert grown["ws delivery: 10x jobs over 1x"]["p99_ratio"] == 1.5
    assert grown["server RSS: 10x jobs over 1x"]["rss_ratio"] == 1.0


def test_load_summary_bounds_live_delivery_and_list_and_detail_growth_at_the_larger_size():
    small, large = load_rows(1000, 0, 0, 10.0), load_rows(10_000, 0, 0, 15.0)
    large[1] = {**large[1], "p99_ms": large[1]["p99_ms"] * 2}  # detail p99: 90 ms over 30 ms
    large[5] = {**large[5], "median_ms": 900.0, "p99_ms": 3100.0}  # ws delivery
    rows = small + large
    summary = summary_rows(rows + [{"bench": "load", **row}
                                   for row in growth_rows(rows, 1000, 10_000)])
    got = {r["what"]: (r["figure"], r["target"], r["met"]) for r in summary}
    assert got["live delivery median / p99 (ms), 10,000 jobs"] == (
        "900 / 3100", "<= 1000 / <= 3000", False)
    assert not any(what.startswith("live delivery") and "1,000 jobs" in what for what in got)
    assert got["list: 10x jobs / 1x: latency (median, p99)"] == ("1.50, 1.50", "p99 <= 2", True)
    assert got["detail: 10x jobs / 1x: latency (median, p99)"] == (
        "1.50, 3.00", "p99 <= 2", False)
    assert got["submit: 10x jobs / 1x: latency (median, p99)"] == ("1.50, 1.50", "(report)", None)


def test_summary_has_one_row_per_figure_with_target_and_met():
    rows = API_ROWS + DASHBOARD_ROWS + LIVE_ROWS + ENGINE_ROWS + \
        load_rows(1000, 0, 0, 10.0) + load_rows(10_000, 3, 1, 15.0)
    summary = summary_rows(rows)
    got = [(r["bench"], r["what"], r["figure"], r["target"], r["met"]) for r in summary]
    assert got == [
        ("api", "page 1 (default order), 100,000 jobs: end-to-end / store time", 1.325,
         "<= 1.5", True),
        ("api", "page 1: 1M over 100k", 2.55, "<= 2.0", False),
        ("dashboard", "status=RUNNING, 100,000 jobs: whole jobs page / GET /jobs/", 1.25,
         "<= 2.0", True),
        ("dashboard", ("browser: complete jobs page (load event), 100,000 jobs: whole jobs "
                      "page / GET /jobs/"), 5.5, "(report)", None),
        ("dashboard", ("browser: 50 changes/s for 5 s: main-thread ms per change (median / "
                      "p95), long tasks"), "3.2 / 9.5, 1", "<= 4.0 (median)", True),
        ("dashboard", ("browser: 50 changes/s for 5 s: main-thread CPU ms per change, frames "
                      "included"), "12.3", "(report)", None),
        ("dashboard", "browser", "chromium is missing", "(report)", None),
        ("live", "p99 delivery, 1,000 subscribers / 1 (400 ms / 50 ms)", 8.0, "<= 10", True),
        ("live", "messages lost (1, 1,000 subscribers)", 2, "= 0", False),
        ("engine", "Jobdeck (sandbox off) over Celery", 1.5, "<= 1", False),
        ("engine", "Jobdeck (sandbox on) over Celery", 2.0, "(report)", None),
        ("engine", "Jobdeck (sandbox on) over direct spawn", 4.0, "<= 3", False),
        ("load", "5xx / no response, of 50 requests, 1,000 jobs", "0 / 0", "0 / 0", True),
        ("load", "lost updates, 100 subscribers x 900 changes, 1,000 jobs", 0, "= 0", True),
        ("load", "peak RSS server / store (MB), 1,000 jobs", "60 / 45", "(report)", None),
        ("load", "5xx / no response, of 50 requests, 10,000 jobs", "5 / 0", "0 / 0", False),
        ("load", "lost updates, 100 subscribers x 900 changes, 10,000 jobs", 3, "= 0", False),
        ("load", "peak RSS server / store (MB), 10,000 jobs", "60 / 45", "(report)", None),
        ("load", "live delivery median / p99 (ms), 10,000 jobs", "15 / 30",
         "<= 1000 / <= 3000", True),
    ]


def test_render_prints_the_summary_then_each_benchmarks_details():
    rows = API_ROWS + ENGINE_ROWS + [{"bench": "live", "case": "FAILED", "error": "boom"}]
    text = render(rows, summary_rows(rows))
    lines = text.splitlines()
    assert lines[0].startswith("== summary")
    assert lines[1].split() == ["bench", "what", "figure", "target", "met"]
    assert "MISSED" in lines[4] and "page 1: 1M over 100k" in lines[4]
    assert [line for line in lines if line.startswith("== ") and "details" in line] == [
        "== api details", "== engine details", "== live details"]
    assert any(line.startswith("live") and "FAILED" in line and "boom" in line
               for line in lines)
