"""The one report of `python -m bench`: a summary table (benchmark, what, figure, target, met)
read off the rows each benchmark returns, then each benchmark's own rows as a details table.

A benchmark's rows keep their own keys; the summary knows which of them carries the figure an
issue asked for (a ratio where it asked for a ratio). A module may instead expose
`summary(rows) -> list[dict]` with the keys of SUMMARY_COLUMNS but `bench`.
"""

from collections.abc import Iterable

SUMMARY_COLUMNS = ("bench", "what", "figure", "target", "met")
REPORT_ONLY = "(report)"


# -- text tables -----------------------------------------------------------------------------

def format_cell(value) -> str:
    if isinstance(value, bool):
        return "met" if value else "MISSED"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(rows: list[dict]) -> str:
    """One text table over the union of the rows' keys, in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[format_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) if v[:1].isdigit() or v[:1] == "-" else v.ljust(w)
                        for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


# -- accounting ------------------------------------------------------------------------------

def lost_updates(expected: set, received: Iterable[set]) -> dict:
    """Compare every subscriber's received (job id, status) pairs with the acknowledged changes.

    lost: expected pairs missing, summed over subscribers; subscribers_missing: how many
    subscribers missed at least one; unexpected: the most pairs one subscriber got that nobody
    acknowledged (a change whose answer was lost); examples: a few missing and unexpected pairs."""
    missing = [expected - got for got in received]
    extra = [got - expected for got in received]
    return {"lost": sum(len(m) for m in missing),
            "subscribers_missing": sum(1 for m in missing if m),
            "unexpected": max(map(len, extra), default=0),
            "examples": sorted(set().union(*missing))[:5],
            "unexpected_examples": sorted(set().union(*extra))[:5]}


# -- the summary -----------------------------------------------------------------------------

def _jobs(row: dict) -> str:
    return f", {row['jobs']:,} jobs" if isinstance(row.get("jobs"), int) else ""


def _failed(row: dict) -> dict:
    """The error, cut short: the details table and the JSON keep all of it."""
    error = str(row.get("error"))
    return {"what": f"FAILED{_jobs(row)}",
            "figure": error if len(error) <= 100 else error[:97] + "...", "target": "runs",
            "met": False}


def _ratio_rows(rows: list[dict], key: str, meaning: str) -> list[dict]:
    out = []
    for row in rows:
        if row.get("case") == "FAILED":
            out.append(_failed(row))
        elif key in row:
            label = row["case"] if " over " in str(row["case"]) else \
                f"{row['case']}{_jobs(row)}: {meaning}"
            out.append({"what": label, "figure": row[key],
                        "target": row.get("target", REPORT_ONLY), "met": row.get("met")})
    return out


def api_summary(rows: list[dict]) -> list[dict]:
    return _ratio_rows(rows, "ratio", "end-to-end / store time")


def engine_summary(rows: list[dict]) -> list[dict]:
    return _ratio_rows(rows, "ratio", "engine time / spawning directly")


def dashboard_summary(rows: list[dict]) -> list[dict]:
    out = _ratio_rows(rows, "page_ratio", "whole jobs page / GET /jobs/")
    for row in rows:
        if "update_median_ms" in row:
            out.append({"what": f"{row['case']}: main-thread ms per change (median / p95), "
                                f"long tasks",
                        "figure": f"{row['update_median_ms']:.1f} / {row['update_p95_ms']:.1f}, "
                                  f"{row['long_tasks']}",
                        "target": f"{row['target']} (median)", "met": row["met"]})
            out.append({"what": f"{row['case']}: main-thread CPU ms per change, frames included",
                        "figure": f"{row['cpu_per_change_ms']:.1f}", "target": REPORT_ONLY,
                        "met": None})
        elif "note" in row:
            out.append({"what": row["case"], "figure": row["note"], "target": REPORT_ONLY,
                        "met": None})
    return out


def live_summary(rows: list[dict]) -> list[dict]:
    """Issue 4: p99 delivery at the most subscribers within 10x of one subscriber, none lost."""
    out = [_failed(row) for row in rows if row.get("case") == "FAILED"]
    levels = {row["subscribers"]: row for row in rows if "subscribers" in row}
    if 1 in levels and len(levels) > 1:
        top = levels[max(levels)]
        ratio = top["p99_ms"] / levels[1]["p99_ms"]
        out.append({"what": f"p99 delivery, {max(levels):,} subscribers / 1 "
                            f"({top['p99_ms']:.0f} ms / {levels[1]['p99_ms']:.0f} ms)",
                    "figure": ratio, "target": "<= 10", "met": ratio <= 10})
    if levels:
        lost = sum(row["lost"] for row in levels.values())
        out.append({"what": f"messages lost ({', '.join(f'{n:,}' for n in levels)} subscribers)",
                    "figure": lost, "target": "= 0", "met": lost == 0})
    return out


# Issue 13, "under load", for the larger run: live delivery median and p99 (ms), and how much
# the list and detail p99 may grow over the smaller run.
LOAD_DELIVERY_MS = (1000, 3000)
LOAD_P99_GROWTH = {"list": 2.0, "detail": 2.0}


def load_summary(rows: list[dict]) -> list[dict]:
    """Issue 6's load run: no 5xx, no lost update, peak memory, and how latency grows; issue
    13's bounds on live delivery and on the growth of list and detail p99."""
    out = [_failed(row) for row in rows if row.get("case") == "FAILED"]
    sizes = sorted({row["jobs"] for row in rows if "5xx" in row})
    for size in sizes:
        endpoints = [row for row in rows if row["jobs"] == size and "5xx" in row]
        failures = sum(row["5xx"] for row in endpoints)
        silent = sum(row["no_response"] for row in endpoints)
        total = sum(row["requests"] for row in endpoints)
        out.append({"what": f"5xx / no response, of {total:,} requests, {size:,} jobs",
                    "figure": f"{failures} / {silent}", "target": "0 / 0",
                    "met": failures == 0 and silent == 0})
        for row in rows:
            if row["jobs"] == size and row["case"] == "ws delivery":
                out.append({"what": f"lost updates, {row['subscribers']} subscribers x "
                                    f"{row['changes']:,} changes, {size:,} jobs",
                            "figure": row["lost"], "target": "= 0", "met": row["met"]})
                if "answer_anomalies" in row:
                    out.append({"what": f"answers that are not the change made (201 not "
                                        f"QUEUED, 200 not CANCELED, 4xx), {size:,} jobs",
                                "figure": row["answer_anomalies"], "target": "= 0",
                                "met": row["answer_anomalies"] == 0})
            if row["jobs"] == size and row["case"] == "resources":
                out.append({"what": f"peak RSS server / store (MB), {size:,} jobs",
                            "figure": f"{row['server_rss_peak_mb']:.0f} / "
                                      f"{row['store_rss_peak_mb']:.0f}",
                            "target": REPORT_ONLY, "met": None})
    if len(sizes) == 2:
        out += delivery_summary(rows, sizes[-1])
    for row in rows:
        if "median_ratio" in row:
            bound = LOAD_P99_GROWTH.get(row["case"].split(":")[0])
            out.append({"what": f"{row['case'].replace(' over ', ' / ')}: latency "
                                f"(median, p99)",
                        "figure": f"{row['median_ratio']:.2f}, {row['p99_ratio']:.2f}",
                        "target": REPORT_ONLY if bound is None else f"p99 <= {bound:g}",
                        "met": None if bound is None else row["p99_ratio"] <= bound})
    return out


def delivery_summary(rows: list[dict], size: int) -> list[dict]:
    """Issue 13's bound on live delivery in the larger load run."""
    median, p99 = LOAD_DELIVERY_MS
    return [{"what": f"live delivery median / p99 (ms), {size:,} jobs",
             "figure": f"{row['median_ms']:.0f} / {row['p99_ms']:.0f}",
             "target": f"<= {median} / <= {p99}",
             "met": row["median_ms"] <= median and row["p99_ms"] <= p99}
            for row in rows
            if row["jobs"] == size and row["case"] == "ws delivery" and row.get("p99_ms")]


SUMMARIES = {"api": api_summary, "dashboard": dashboard_summary, "engine": engine_summary,
             "live": live_summary, "load": load_summary}


def generic_summary(rows: list[dict]) -> list[dict]:
    """A benchmark the report does not know: its rows that state a target."""
    return [{"what": row.get("case", ""), "figure": row.get("ratio", row.get("figure")),
             "target": row["target"], "met": row.get("met")}
            for row in rows if "target" in row] or \
        [_failed(row) for row in rows if row.get("case") == "FAILED"]


def summary_rows(rows: list[dict], modules: dict | None = None) -> list[dict]:
    """One summary row per figure an issue asked for, benchmark by benchmark in run order."""
    out = []
    for bench, bench_rows in by_bench(rows).items():
        module = (modules or {}).get(bench)
        summarize = getattr(module, "summary", None) or SUMMARIES.get(bench, generic_summary)
        out += [{"bench": bench, **{k: row.get(k) for k in SUMMARY_COLUMNS[1:]}}
                for row in summarize(bench_rows)]
    return out


def by_bench(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["bench"], []).append(
            {k: v for k, v in row.items() if k != "bench"})
    return grouped


def shapes(rows: list[dict]) -> list[list[dict]]:
    """Rows grouped by their set of keys, so each details table has only its own columns."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def render(rows: list[dict], summary: list[dict]) -> str:
    """The summary table, then each benchmark's details."""
    legend = ("== summary (met: the figure meets the issue's target; (report): the issue sets "
              "no target, the figure is shown to read)")
    parts = [legend, table(summary)]
    for bench, bench_rows in by_bench(rows).items():
        parts += ["", f"== {bench} details"]
        parts += [table(group) for group in shapes(bench_rows)]
    return "\n".join(parts)
