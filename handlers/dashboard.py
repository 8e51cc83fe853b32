"""Browser dashboards: server-rendered Jinja2 pages over the same store calls and serializers as
the API, so each page shows exactly what its REST endpoint returns; small scripts in static/js
add live updates and the actions (which call the REST API)."""

import json
import math
import re
from pathlib import Path
from urllib.parse import urlencode

from pymongo.errors import PyMongoError

from core.model import MIN_CPUS, MIN_MEM, JobStatus
from core.times import format_ms, now_ms, parse_instant
from handlers.base import BaseHandler
from handlers.jobs import LIST_PROJECTION
from presentation.errors import APIError
from presentation.filters import job_filter, job_order
from presentation.serializers import (
    Serializer,
    job_type_details,
    job_type_full,
    queue_table,
    queued_reason,
)
from presentation.templates import ENV
from store.search import SEARCH_LIMIT
from store.stats import StatsStore

ROOT = Path(__file__).resolve().parent.parent
LIVE_CLIENT = ROOT / "static" / "js" / "live.js"
HOUR_MS = 3600 * 1000

# Time range presets of the jobs page (ISO-8601 durations, as `started` accepts them).
TIME_PRESETS = (("PT1H", "Last hour"), ("PT6H", "Last 6 hours"), ("PT24H", "Last 24 hours"),
                ("P7D", "Last 7 days"))
# Sortable columns of the jobs table: (heading, API order name).
JOB_COLUMNS = (("ID", "id"), ("Job type", "job_type__name"), ("Status", "status"),
               ("Priority", "priority"), ("Runs", "num_exes"), ("Created", "created"),
               ("Started", "started"), ("Ended", "ended"),
               ("Status changed", "last_status_change"), ("Last modified", "last_modified"))
# The jobs page's filters (the narrow screen's Filters button counts those in use).
FILTER_NAMES = ("q", "status", "job_id", "job_type_id", "job_type_name", "job_type_category",
                "started", "ended")
# The longest search text the jobs page accepts.
MAX_SEARCH = 200
COUNT_WINDOWS = (6, 12, 24)
# The job type page's run statistics windows: name -> (ms, label).
STATS_WINDOWS = {"1h": (HOUR_MS, "1 hour"), "24h": (24 * HOUR_MS, "24 hours"),
                 "7d": (7 * 24 * HOUR_MS, "7 days")}
DEFAULT_STATS_WINDOW = "24h"
PAGE_SIZES = (25, 50, 100, 250, 1000)


class DashboardPage(BaseHandler):
    """Renders templates; errors become an HTML page carrying the API's message."""

    nav = ""
    login_redirect = True

    def initialize(self, partial: bool = False):
        """`partial`: render only the page's live region, which the page refetches."""
        self.partial = partial

    async def prepare(self):
        await super().prepare()
        # Live updates start from before the page's queries, so no change falls in between.
        self.started_at = now_ms()

    def render_page(self, template: str, **context) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(ENV.get_template(template).render(
            static_url=self.static_url, nav=self.nav, live_client=LIVE_CLIENT.exists(),
            rendered_at=format_ms(self.started_at), xsrf_token=self.xsrf_token.decode(),
            identity=self.current_user, **context))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, APIError):
            message = exc.message
        elif isinstance(exc, PyMongoError):
            message = self.store_unavailable(exc)
        else:
            message = self._reason
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(ENV.get_template("error.html").render(
            static_url=self.static_url, nav=self.nav, live_client=False,
            status=self.get_status(), message=message))

    def url_with(self, **changes) -> str:
        """This page's URL with some query arguments replaced (None removes one)."""
        args = [(k, v.decode("utf-8", "replace")) for k, values in
                self.request.query_arguments.items() if k not in changes for v in values
                if v != b""]
        for key, value in changes.items():
            if value is None:
                continue
            for item in value if isinstance(value, list | tuple) else [value]:
                args.append((key, str(item)))
        query = urlencode(args)
        return f"{self.request.path}?{query}" if query else self.request.path

    @property
    def stats(self) -> StatsStore:
        return self.store.stats


class OverviewPage(DashboardPage):
    """Counts by status, busiest types, queue and nodes; the time charts below them load
    GET /jobs/series/ (static/js/charts.js), so the page's own store budget stays the same.

    With `partial=True` it renders only the live region, which the page refetches."""

    nav = "overview"

    async def get(self):
        """Four store commands whatever the store's size: the kept counts (two), the job types
        shown and the nodes."""
        now = now_ms()
        kept = await self.store.counts.read()
        counts = kept.by_status()
        by_type = kept.changed_since(now - HOUR_MS)
        queued = kept.of_status(JobStatus.QUEUED)
        job_types = await self.store.job_types.by_ids(set(by_type) | set(queued))
        busiest = sorted(({"job_type": job_types[type_id], "counts": c,
                           "total": sum(c.values())}
                          for type_id, c in by_type.items() if type_id in job_types),
                         key=lambda row: (-row["total"], row["job_type"]["id"]))[:8]
        oldest = kept.oldest_queued(now)
        queue = queue_table(sorted(
            ({"job_type": job_types[type_id], "count": n, "longest_queued": oldest.get(type_id)}
             for type_id, n in queued.items() if type_id in job_types),
            key=lambda q: (q["job_type"]["is_paused"], q["longest_queued"] or 0)))
        running = kept.node_use()
        nodes = [{"node": node, "use": running.get(node["id"], {})}
                 for node in await self.store.nodes.all()]
        self.render_page("overview_live.html" if self.partial else "overview.html",
                         counts=counts, total=sum(counts.values()), busiest=busiest,
                         queue=queue, queue_depth=sum(r["count"] for r in queue), nodes=nodes,
                         unassigned=running.get(None, {}).get("running", 0))



async def queue_rows(store) -> list[dict]:
    """GET /queue/status/ rows with the job type attached, paused types last."""
    return queue_table(await store.jobs.queue_status())


class QueuePage(DashboardPage):
    """GET /queue/status/ rendered; with `partial=True` only its live region."""

    nav = "queue"

    async def get(self):
        queue = await queue_rows(self.store)
        nodes = await self.cluster_nodes()
        for row in queue:
            job_type = row["job_type"]
            row["queued_reason"] = queued_reason(
                "QUEUED", max(float(job_type["cpus_required"]), MIN_CPUS),
                max(float(job_type["mem_required"]), MIN_MEM), nodes)
        self.render_page("queue_live.html" if self.partial else "queue.html", queue=queue,
                         queue_depth=sum(r["count"] for r in queue))


# The dashboard lists the most recently changed jobs first; GET /jobs/ keeps Scale's order.
DEFAULT_JOBS_ORDER = ("-last_status_change", "-id")
# What a datetime-local input submits (no zone): the dashboard reads it as UTC, as it shows times.
LOCAL_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,3})?)?")


class JobsPage(DashboardPage):
    """GET /jobs/ rendered: same filters, paging and rows; newest status change first unless
    an `order` is given. A bad filter value is shown next to its field, with the form kept."""

    nav = "jobs"

    def filter_arguments(self, name: str) -> list[str]:
        values = self.get_query_arguments(name)
        if name in ("started", "ended"):
            values = [v + "Z" if LOCAL_DATETIME.fullmatch(v) else v for v in values]
        return values

    def order_arguments(self, name: str) -> list[str]:
        values = self.get_query_arguments(name)
        return values if name != "order" or any(values) else list(DEFAULT_JOBS_ORDER)

    async def get(self):
        started = self.query_strings("started")
        presets = [p for p, _ in TIME_PRESETS]
        preset = next((v for v in started if v in presets), "")
        custom = [v for v in started if v not in presets]
        ended = self.query_strings("ended")
        field_errors: dict[str, str] = {}
        count, rows = 0, []
        if preset and custom:
            field_errors["started"] = (
                f"Choose either a range ({dict(TIME_PRESETS)[preset]}) or a custom From "
                f"({custom[-1]}), not both.")
        else:
            try:
                flt = job_filter(self.filter_arguments)
            except APIError as exc:
                name = exc.message.split(":", 1)[0].split(" ", 1)[0]
                field_errors[name if name in ("started", "ended") else "form"] = exc.message
        page, page_size = self.parse_page()
        order = job_order(self.order_arguments)
        q = self.get_query_argument("q", "").strip()
        truncated = False
        if len(q) > MAX_SEARCH:
            field_errors["q"] = f"Search text is {len(q)} characters; at most {MAX_SEARCH}."
        elif q and not field_errors:
            found = await self.store.search.job_ids(q)
            truncated = found.truncated
        filter_body = None
        if not field_errors:
            if q:
                count, jobs = await self.store.search.list_matches(
                    found.job_ids, flt, order, page, page_size, LIST_PROJECTION)
                ids = set(found.job_ids)
                flt.job_ids = [i for i in flt.job_ids if i in ids] if flt.job_ids \
                    else found.job_ids
            else:
                count, jobs = await self.store.jobs.list_jobs(flt, order, page, page_size,
                                                              LIST_PROJECTION, kept_total=True)
            if page > 1 and (page - 1) * page_size >= count:
                raise APIError(404, f"page {page} is past the last page of {count} results")
            # Exit codes: only a failed job's latest execution is read (few rows, usually none).
            exes = await self.store.jobs.exes_by_ids(
                j.get("latest_exe_id") for j in jobs if j["status"] == JobStatus.FAILED)
            rows = [row_cells(r, j, self.started_at, exes.get(j.get("latest_exe_id")))
                    for r, j in zip(await Serializer(self.store, self.base_url).job_rows(jobs),
                                    jobs, strict=True)]
            filter_body = requeue_body(flt) if count else None
        else:
            self.set_status(400)
        all_types = await self.store.job_types.all_job_types()
        orders = self.query_strings("order") or list(DEFAULT_JOBS_ORDER)
        last_page = max(1, -(-count // page_size))
        query = self.request.uri[len(self.request.path):]
        if not self.query_strings("order"):
            query += ("&" if query else "?") + urlencode([("order", o) for o in DEFAULT_JOBS_ORDER])
        self.render_page(
            "jobs.html", rows=rows, count=count, page=page, page_size=page_size,
            last_page=last_page, first_index=(page - 1) * page_size + 1 if rows else 0,
            last_index=(page - 1) * page_size + len(rows),
            statuses=set(self.query_strings("status")),
            type_names=sorted({jt["name"] for jt in all_types}),
            categories=sorted({jt["category"] for jt in all_types if jt["category"]}),
            selected_names=set(self.query_strings("job_type_name")),
            selected_categories=set(self.query_strings("job_type_category")),
            job_type_ids=self.query_strings("job_type_id"), job_ids=self.query_strings("job_id"),
            presets=TIME_PRESETS, preset=preset,
            custom_started=local_input(custom[-1]) if custom else "",
            custom_ended=local_input(ended[-1]) if ended else "", ended=bool(ended),
            field_errors=field_errors, raw_started=custom[-1] if custom else "",
            raw_ended=ended[-1] if ended else "",
            active_filters=sum(bool(self.query_strings(name)) for name in FILTER_NAMES),
            page_sizes=PAGE_SIZES, columns=self.columns(orders), order=orders, q=q,
            truncated=truncated, search_limit=SEARCH_LIMIT,
            filter_json=json.dumps(filter_body) if filter_body else "",
            explicit_order=self.query_strings("order"),
            page_url=lambda p: self.url_with(page=p), api_url="/jobs/" + query)

    def columns(self, orders: list[str]) -> list[dict]:
        """Each sortable heading with its current direction and the link that flips it."""
        first = orders[0] if orders else DEFAULT_JOBS_ORDER[0]
        columns = []
        for label, name in JOB_COLUMNS:
            direction = None
            if first == name:
                direction = "ascending"
            elif first == f"-{name}":
                direction = "descending"
            target = f"-{name}" if direction == "ascending" else name
            columns.append({"label": label, "name": name, "direction": direction,
                            "url": self.url_with(order=target, page=None)})
        return columns


def requeue_body(flt) -> dict:
    """The filter as POST /queue/requeue-jobs/ reads it (GET /jobs/ reads the same names,
    singular): what the page's bulk actions send for "all matching the filter"."""
    body: dict = {}
    for name, values in (("status", flt.statuses), ("job_ids", flt.job_ids),
                         ("job_type_ids", flt.job_type_ids),
                         ("job_type_names", flt.job_type_names),
                         ("job_type_categories", flt.job_type_categories)):
        if values:
            body[name] = list(values)
    if flt.started is not None:
        body["started"] = format_ms(flt.started)
    if flt.ended is not None:
        body["ended"] = format_ms(flt.ended)
    return body


def row_cells(row: dict, job: dict, now: int, exe: dict | None = None) -> dict:
    """A /jobs/ row with what the jobs table shows beyond it: the duration (ticking while it
    runs), the running job's elapsed seconds against its timeout, and the failing exit code of
    its latest execution `exe` (the stored document, given for FAILED jobs). `job` is the
    stored document, whose times are ms."""
    started, ended = job.get("started"), job.get("ended")
    running = row["status"] == "RUNNING" and started is not None
    duration = None
    if started is not None and (ended is not None or running):
        duration = elapsed_text(max(0, (ended if ended is not None else now) - started) / 1000)
    exe = exe or {}
    codes = [exe.get(f"{p}_exit_code") for p in ("pre", "job", "post")]
    exit_code = next((c for c in codes if c not in (None, 0)), None)
    elapsed = round((now - started) / 1000) if running and started is not None else None
    return {**row, "duration": duration, "running": running, "exit_code": exit_code,
            "elapsed_s": elapsed}


def percentile(sorted_ms: list[int], fraction: float) -> int:
    """Nearest-rank percentile of sorted values."""
    return sorted_ms[max(0, math.ceil(len(sorted_ms) * fraction) - 1)]


def run_summary(stats: dict) -> dict:
    """Run count, failure rate (of finished runs) and p50/p95 durations, as the page prints."""
    runs, durations = stats["runs"], stats["durations"]
    return {"runs": runs, "failed": stats["failed"], "capped": stats["capped"],
            "failure_rate": f"{stats['failed'] / runs * 100:.1f}%" if runs else "—",
            "p50": elapsed_text(percentile(durations, 0.5) / 1000) if durations else "—",
            "p95": elapsed_text(percentile(durations, 0.95) / 1000) if durations else "—"}


def local_input(value: str) -> str:
    """A `started`/`ended` value as a datetime-local input shows it (UTC, to the second); ""
    when it is not a datetime (a duration, or text that does not parse)."""
    if LOCAL_DATETIME.fullmatch(value):
        return value
    if value.upper().startswith("P"):
        return ""
    try:
        return format_ms(parse_instant(value))[:19]
    except (ValueError, OverflowError):
        return ""


class JobPage(DashboardPage):
    """GET /jobs/{id}/ rendered, with its executions as a timeline and the latest log."""

    nav = "jobs"

    async def get(self, job_id):
        job = await self.store.jobs.get_job(int(job_id))
        if job is None:
            raise APIError(404, f"Job {job_id} does not exist")
        details = await Serializer(self.store, self.base_url).job_details(
            job, cluster=await self.cluster_nodes())
        errors = await self.store.errors.by_ids(
            e["error"]["id"] for e in details["job_exes"] if e["error"])
        exes = [timeline(e, self.started_at) for e in details["job_exes"]]
        latest = exes[0] if exes else None
        # A failed execution's page opens on the log that holds the failure.
        log_stream = "stderr" if latest and latest["status"] == "FAILED" else "stdout"
        self.render_page("job.html", job=details, exes=exes, latest_exe=latest,
                         exe_errors=errors, log_stream=log_stream, elapsed_text=elapsed_text)


def timeline(exe: dict, now: int | None = None) -> dict:
    """An execution with its pre/job/post phases placed on its span (percentages whose widths
    are proportional to the phases' durations and stay inside the bar), its span in ms (open at
    the end while it runs: the page ticks it on), its elapsed seconds and a failing exit code."""
    def ms(value):
        return parse_instant(value) if value else None

    now = now_ms() if now is None else now
    phases = []
    for phase in ("pre", "job", "post"):
        phases.append({"name": phase, "started": exe[f"{phase}_started"],
                       "completed": exe[f"{phase}_completed"],
                       "exit_code": exe[f"{phase}_exit_code"],
                       "start_ms": ms(exe[f"{phase}_started"]),
                       "end_ms": ms(exe[f"{phase}_completed"])})
    starts = [p["start_ms"] for p in phases if p["start_ms"] is not None]
    span_start = ms(exe["started"]) or (min(starts) if starts else None)
    if span_start is not None and starts:
        span_start = min([span_start, *starts])
    ends = [p["end_ms"] for p in phases if p["end_ms"] is not None]
    finished = exe["status"] not in ("QUEUED", "RUNNING")
    span_end = (ms(exe["ended"]) or (max(ends) if ends else None)) if finished else None
    place_phases(phases, span_start, span_end if span_end is not None else now)
    elapsed = None
    if span_start is not None:
        elapsed = max(0, (span_end if span_end is not None else now) - span_start) / 1000
    failing = next((p for p in phases if p["exit_code"] not in (None, 0)), None)
    return {**exe, "phases": phases, "span_start_ms": span_start, "span_end_ms": span_end,
            "elapsed": elapsed, "duration_s": round(elapsed, 1) if elapsed is not None else None,
            "failed_phase": failing}


def place_phases(phases: list[dict], span_start: int | None, span_end: int) -> None:
    """`left` and `width` (percent) of each phase on [span_start, span_end]; a phase still
    running ends at span_end; every shown phase is at least 0.5% wide and ends by 100%."""
    total = max(1, span_end - span_start) if span_start is not None else None
    for p in phases:
        if total is None or span_start is None or p["start_ms"] is None:
            p.update(left=0, width=0)
            continue
        end = p["end_ms"] if p["end_ms"] is not None else span_end
        width = min(100.0, max(0.5, round((end - p["start_ms"]) / total * 100, 2)))
        left = max(0.0, min(round((p["start_ms"] - span_start) / total * 100, 2), 100 - width))
        p.update(left=round(left, 2), width=width)


def elapsed_text(seconds: float | None) -> str:
    """`12.3 s`, `2 min 05 s`, `1 h 02 min`: the same words as static/js/job.js writes."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class JobTypesPage(DashboardPage):
    """Every job type with its counts by status over the chosen 6/12/24 h window."""

    nav = "job-types"

    async def get(self):
        hours = self.query_int("hours", 24)
        if hours not in COUNT_WINDOWS:
            raise APIError(400, f"hours must be one of {', '.join(map(str, COUNT_WINDOWS))}, "
                                f"not {hours}")
        counts = await self.stats.counts_by_type_and_status(now_ms() - hours * HOUR_MS)
        job_types = await self.store.job_types.all_job_types()
        rows = [{"job_type": job_type_full(jt), "counts": counts.get(jt["id"], {})}
                for jt in job_types]
        self.render_page("job_types.html", rows=rows, hours=hours, windows=COUNT_WINDOWS,
                         window_url=lambda h: self.url_with(hours=h))


class JobTypePage(DashboardPage):
    """GET /job-types/{id}/ rendered: fields, interface, error mapping and 6/12/24 h counts."""

    nav = "job-types"

    async def get(self, type_id):
        job_type = await self.store.job_types.get(int(type_id))
        if job_type is None:
            raise APIError(404, f"Job type {type_id} does not exist")
        now = now_ms()
        counts = {f"job_counts_{h}h": await self.store.job_types.job_counts(
            job_type["id"], now - h * HOUR_MS) for h in COUNT_WINDOWS}
        names = job_type["error_mapping"].get("exit_codes", {}).values()
        errors = await self.store.errors.by_names(names)
        details = job_type_details(job_type, errors, counts)
        by_name = {e["name"]: e for e in details["errors"]}
        mapping = sorted(((code, by_name.get(name), name) for code, name in
                          details["error_mapping"].get("exit_codes", {}).items()),
                         key=lambda row: int(row[0]) if row[0].lstrip("-").isdigit() else 0)
        window = self.get_query_argument("window", DEFAULT_STATS_WINDOW)
        if window not in STATS_WINDOWS:
            raise APIError(400, f"window must be one of {', '.join(STATS_WINDOWS)}, "
                                f"not '{window}'")
        stats = run_summary(await self.store.job_types.run_stats(
            job_type["id"], now - STATS_WINDOWS[window][0]))
        self.render_page("job_type.html", job_type=details, mapping=mapping,
                         windows=COUNT_WINDOWS, stats=stats, window=window,
                         stats_windows=STATS_WINDOWS)


class NewJobPage(DashboardPage):
    """A form for POST /queue/new-job/ made from the job type's interface: a field per property
    input, a choice of files (or an upload on the spot, POST /files/) per file input and a
    workspace per output. static/js/new_job.js sends it to the API, so the same roles and XSRF
    rules apply, and shows a refusal next to the field it names."""

    nav = "job-types"

    async def get(self, type_id):
        job_type = await self.store.job_types.get(int(type_id))
        if job_type is None:
            raise APIError(404, f"Job type {type_id} does not exist")
        interface = job_type["interface"]
        files = {spec["name"]: await self.store.files.newest_files(
                     spec.get("media_types") or [])
                 for spec in interface["input_data"] if spec["type"] != "property"}
        self.render_page("new_job.html", job_type=job_type_full(job_type),
                         inputs=interface["input_data"], outputs=interface["output_data"],
                         files=files, workspaces=await self.store.files.list_workspaces())
