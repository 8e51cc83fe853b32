"""Store documents → Scale's JSON shapes. Each body is built by `shape` from its model in
presentation/models.py, which gives the fields and their order (Scale's serializers' order)."""

from typing import Any

from core.interface import merge_inputs, merge_outputs, referenced_file_ids
from core.model import FINAL_EXE_STATUSES
from core.times import format_ms as t
from engine.executor import ClusterNode, placement_problem
from presentation import models as m


def shape(model: m.Model, doc: dict | None = None, /, *, missing_ok: bool = False,
          **values) -> dict:
    """`model`'s fields in order: each from `values` when given there, else from `doc` (its
    `date-time` fields formatted from milliseconds). A field in neither is a KeyError, unless
    `missing_ok` (the document's missing fields are then null)."""
    if values and not values.keys() <= model.names:
        raise KeyError(f"{model!r} has no field {', '.join(sorted(values.keys() - model.names))}")
    if doc is None:
        if len(values) < len(model.keys):
            missing = [name for name in model.keys if name not in values]
            raise KeyError(f"{', '.join(missing)}: no value given for {model!r}")
        return {name: values[name] for name in model.keys}
    read = doc.get if missing_ok else doc.__getitem__
    body = {}
    for name, dated in model.plan:
        if name in values:
            body[name] = values[name]
        else:
            value = read(name)
            body[name] = t(value) if dated else value
    return body


def id_ref(value) -> dict:
    return shape(m.IdRef, id=value)


def ref(value) -> dict | None:
    return None if value is None else id_ref(value)


def page_body(count: int, next_url: str | None, previous_url: str | None, results: list) -> dict:
    """Scale's paginated body."""
    return shape(m.Page, count=count, next=next_url, previous=previous_url, results=results)


# -- job types and errors --------------------------------------------------------------------

def job_type_base(jt: dict) -> dict:
    return shape(m.JobTypeBase, jt, missing_ok=True)


def _job_type_numbers(jt: dict) -> dict:
    # Always answered as floats (1.0, never 1), whatever number the document holds.
    return {"cpus_required": float(jt["cpus_required"]),
            "mem_required": float(jt["mem_required"])}


def job_type_full(jt: dict) -> dict:
    return shape(m.JobType, jt, missing_ok=True, **_job_type_numbers(jt))


def job_type_details(jt: dict, errors: list[dict], counts: dict[str, list]) -> dict:
    """`counts`: job_counts_6h, job_counts_12h and job_counts_24h (JobTypeStore.job_counts)."""
    return shape(m.JobTypeDetails, jt, missing_ok=True, **_job_type_numbers(jt),
                 interface=jt["interface"], error_mapping=jt["error_mapping"],
                 errors=[error_full(e) for e in errors],
                 **{key: [shape(m.JobCount, row) for row in rows]
                    for key, rows in counts.items()})


def error_base(error: dict | None) -> dict | None:
    return None if error is None else shape(m.ErrorBase, error)


def error_full(error: dict | None) -> dict | None:
    return None if error is None else shape(m.Error, error)


# -- parts of a job --------------------------------------------------------------------------

def rev_base(job: dict) -> dict:
    return shape(m.JobTypeRevisionBase, id=job["job_type_rev_id"],
                 job_type=id_ref(job["job_type_id"]), revision_num=job["job_type_rev_num"])


def event_base(event: dict) -> dict:
    return shape(m.TriggerEventBase, event, rule=ref(event.get("rule_id")))


def workspace_ref(workspaces: dict, workspace_id: int) -> dict:
    ws = workspaces.get(workspace_id)
    return shape(m.WorkspaceRef, id=workspace_id, name=ws["name"] if ws else None)


def file_base(f: dict, workspaces: dict, base_url: str) -> dict:
    return shape(m.ScaleFile, f, **_file_values(f, workspaces, base_url))


def _file_values(f: dict, workspaces: dict, base_url: str) -> dict:
    return {"workspace": workspace_ref(workspaces, f["workspace_id"]),
            "url": f"{base_url}/files/{f['id']}/download/", "countries": f.get("countries", [])}


def product_base(f: dict, workspaces: dict, base_url: str) -> dict:
    return shape(m.ProductFile, f, **_file_values(f, workspaces, base_url),
                 is_operational=f.get("is_operational", True),
                 is_published=f.get("is_published", False), published=t(f.get("published")),
                 unpublished=t(f.get("unpublished")), job_type=ref(f.get("job_type_id")),
                 job=ref(f.get("job_id")), job_exe=ref(f.get("job_exe_id")))


def cluster_fields(exe: dict) -> dict:
    """Where a cluster backend runs the execution: its Slurm job id and node (ProcessRef)."""
    process = exe.get("process") or {}
    return {"cluster_job_id": process.get("job_id"), "cluster_node": process.get("node")}


def exe_base(exe: dict) -> dict:
    return shape(m.JobExecutionBase, exe, job=ref(exe["job_id"]), node=ref(exe["node_id"]),
                 error=ref(exe["error_id"]), **cluster_fields(exe))


def cluster_node(node: dict) -> ClusterNode:
    """A Slurm node the engine recorded (store.nodes.cluster), as engine/executor.py sees it."""
    return ClusterNode(node["hostname"], node["slurm_state"], node["cpus"], node["mem"])


def queued_reason(status: str, cpus: float, mem: float, nodes: list[dict]) -> str | None:
    """Why a QUEUED job needing `cpus` and `mem` MiB does not start on the cluster `nodes`
    (store.nodes.cluster), or None."""
    if status != "QUEUED":
        return None
    problem = placement_problem(cpus, mem, [cluster_node(n) for n in nodes])
    return None if problem is None else f"Waiting: {problem}."


# -- nodes and workspaces --------------------------------------------------------------------

def node_base(node: dict | None) -> dict | None:
    return None if node is None else shape(m.NodeBase, node, missing_ok=True)


def node_full(node: dict | None) -> dict | None:
    return None if node is None else shape(m.Node, node, missing_ok=True)


def node_status(node: dict, usage: dict) -> dict:
    """A node with what its engine offers and what its RUNNING executions use
    (`usage`: JobStore.node_usage)."""
    return shape(m.NodeStatus, node, missing_ok=True,
                 capacity=shape(m.NodeCapacity, cpus=node.get("cpus"), mem=node.get("mem")),
                 used=shape(m.NodeUse, cpus=usage["cpus"], mem=usage["mem"],
                            job_exes=usage["count"]))


def workspace(ws: dict, details: bool = False) -> dict:
    """Scale's WorkspaceSerializer (its details add json_config)."""
    values: dict[str, Any] = {"base_url": None, "used_size": None, "total_size": None}
    if not details:
        return shape(m.Workspace, ws, **values)
    config = shape(m.WorkspaceConfig, version="1.0", broker=shape(
        m.WorkspaceBroker, type="host", host_path=ws["base_path"]))
    return shape(m.WorkspaceDetails, ws, **values, json_config=config)


# -- queue and health ------------------------------------------------------------------------

def queue_table(queue: list[dict]) -> list[dict]:
    """JobStore.queue_status rows (its job type documents kept) with `longest_queued`
    formatted: what the dashboard's queue tables show."""
    return [{**row, "longest_queued": t(row["longest_queued"])} for row in queue]


def queue_status(queue: list[dict]) -> dict:
    """GET /queue/status/ from JobStore.queue_status rows."""
    return shape(m.QueueStatus, queue_status=[shape(
        m.QueueStatusEntry, count=row["count"], longest_queued=t(row["longest_queued"]),
        highest_priority=row["highest_priority"], job_type_name=row["job_type"]["name"],
        job_type_version=row["job_type"]["version"],
        is_job_type_paused=row["job_type"]["is_paused"]) for row in queue])


def live_state(feed) -> dict:
    """The live feed (store/changes.py) as /health shows it: `running` false until the first
    subscriber."""
    return shape(m.HealthLive, running=feed.mode is not None, mode=feed.mode,
                 lag_seconds=round(feed.lag, 3), max_lag_seconds=round(feed.max_lag, 3),
                 restarts=feed.restarts)


def health(status: str, reachable: bool, ping_ms: float, writable: bool, problem,
           live: dict) -> dict:
    """GET /health; `problem`: why the store cannot write (None when it can)."""
    return shape(m.Health, status=status, store=shape(
        m.HealthStore, reachable=reachable, ping_ms=ping_ms, writable=writable,
        problem=None if problem is None else str(problem)), live=live)


class Serializer:
    """Loads what a batch of documents refers to in few queries, then shapes them."""

    def __init__(self, store, base_url: str):
        self.store = store
        self.base_url = base_url

    def _job_values(self, job: dict, job_types: dict, errors: dict) -> dict:
        """The fields of a /jobs/ row that are not the job's own."""
        return {"job_type": job_type_base(job_types[job["job_type_id"]]),
                "job_type_rev": rev_base(job), "event": event_base(job["event"]),
                "error": error_base(errors.get(job["error_id"]))}

    async def job_rows(self, jobs: list[dict], input_files=False, latest_exe=False) -> list[dict]:
        """List rows: /jobs/ (Job), with `input_files` /jobs/updates/ (JobUpdate), with
        `latest_exe` /jobs/executions/ (JobWithExecution)."""
        store = self.store
        job_types = await store.job_types.cached_by_ids(j["job_type_id"] for j in jobs)
        errors = await store.errors.cached_by_ids(j["error_id"] for j in jobs)
        extras: list[dict] = [{} for _ in jobs]
        model = m.Job
        if input_files:
            model = m.JobUpdate
            files = await store.files.files_by_ids(
                i for j in jobs for i in j.get("input_file_ids", ()))
            workspaces = await store.files.cached_workspaces(
                f["workspace_id"] for f in files.values())
            for extra, job in zip(extras, jobs, strict=True):
                extra["input_files"] = [file_base(files[i], workspaces, self.base_url)
                                        for i in job.get("input_file_ids", ()) if i in files]
        if latest_exe:
            model = m.JobWithExecution
            exes = await store.jobs.exes_by_ids(j.get("latest_exe_id") for j in jobs)
            for extra, job in zip(extras, jobs, strict=True):
                exe = exes.get(job.get("latest_exe_id"))
                extra["latest_job_exe"] = exe_base(exe) if exe else None
        return [shape(model, job, **self._job_values(job, job_types, errors), **extra)
                for job, extra in zip(jobs, extras, strict=True)]

    async def job_details(self, job: dict, exes: list[dict] | None = None,
                          inputs: dict[int, dict] | None = None,
                          cluster: list[dict] | None = None) -> dict:
        """Job details; `exes` (newest first) and `inputs` ({id: file}) when the caller already
        holds all of them (a submission), so they are not read again; `cluster`, the Slurm
        nodes (store.nodes.cluster) a QUEUED job's `queued_reason` is found from. Job types, revisions,
        errors and workspaces come through this process's caches (store/cache.py); the event's
        description from the job itself (written there since issue 13; older jobs read it).
        Products are read only for a job one of whose executions started: the engine writes
        them while an execution runs."""
        store = self.store
        job_type = await store.job_types.cached(job["job_type_id"])
        rev = await store.job_types.get_revision(job["job_type_rev_id"])
        event = job["event"] if "description" in job["event"] else \
            await store.jobs.get_event(job["event"]["id"]) or job["event"]
        error = (await store.errors.cached_by_ids([job["error_id"]])).get(job["error_id"]) \
            if job["error_id"] else None
        if exes is None:
            exes = await store.jobs.exes_for_job(job["id"])
        data = job.get("data") or {}
        if inputs is None:
            inputs = await store.files.files_by_ids(referenced_file_ids(data))
        inputs_by_id = inputs
        products = await store.files.products_of_job(job["id"]) \
            if any(e.get("started") is not None for e in exes) else []
        workspaces = await store.files.cached_workspaces(
            [f["workspace_id"] for f in inputs_by_id.values()]
            + [p["workspace_id"] for p in products])
        files_json = {i: file_base(f, workspaces, self.base_url) for i, f in inputs_by_id.items()}
        products_json = {p["id"]: product_base(p, workspaces, self.base_url) for p in products}
        return shape(
            m.JobDetails, job,
            job_type=job_type_full(job_type),
            job_type_rev=shape(m.JobTypeRevision, **rev_base(job), interface=rev["interface"],
                               created=t(rev["created"])),
            event=shape(m.TriggerEventDetails, event, rule=None,
                        description=event.get("description", {})),
            error=error_full(error),
            data=data, results=job.get("results"), recipes=[],
            queued_reason=queued_reason(job["status"], job["cpus_required"],
                                        job["mem_required"], cluster or []),
            job_exes=[exe_base(e) for e in exes],
            inputs=merge_inputs(rev["interface"], data, files_json),
            outputs=merge_outputs(rev["interface"], job.get("results"), products_json),
            input_files=[files_json[i] for i in job.get("input_file_ids", ()) if i in files_json],
            products=list(products_json.values()),
        )

    async def exe_rows(self, exes: list[dict]) -> list[dict]:
        """/job-executions/ rows: job → JobBase, node → NodeBase, error → ErrorBase."""
        store = self.store
        jobs = await store.jobs.jobs_by_ids((e["job_id"] for e in exes),
                                            {"data": 0, "results": 0})
        job_types = await store.job_types.by_ids(j["job_type_id"] for j in jobs.values())
        errors = await store.errors.by_ids([e["error_id"] for e in exes])
        nodes = await store.nodes.by_ids(e["node_id"] for e in exes)
        rows = []
        for exe in exes:
            job = jobs.get(exe["job_id"])
            rows.append(shape(
                m.JobExecution, exe,
                job=job and shape(m.JobBase, job,
                                  job_type=job_type_base(job_types[job["job_type_id"]]),
                                  job_type_rev=id_ref(job["job_type_rev_id"]),
                                  event=id_ref(job["event"]["id"]),
                                  error=ref(job["error_id"])),
                node=node_base(nodes.get(exe["node_id"])),
                error=error_base(errors.get(exe["error_id"])), **cluster_fields(exe)))
        return rows

    async def exe_details(self, exe: dict) -> dict:
        job = await self.store.jobs.get_job(exe["job_id"])
        node = await self.store.nodes.get(exe["node_id"]) if exe["node_id"] else None
        error = await self.store.errors.get(exe["error_id"]) if exe["error_id"] else None
        added: dict[str, Any] = {
            k: exe.get(k) for k in m.JobExecutionDetails.added_to(m.JobExecutionBase)}
        return shape(
            m.JobExecutionDetails, exe,
            job=(await self.job_rows([job]))[0] if job else None,
            node=node_full(node), error=error_full(error), **added, **cluster_fields(exe))

    async def exe_log(self, exe: dict, stdout: str, stderr: str) -> dict:
        """The /job-executions/ row with the execution's logs."""
        row = (await self.exe_rows([exe]))[0]
        return shape(m.JobExecutionLog, **row, is_finished=exe["status"] in FINAL_EXE_STATUSES,
                     stdout=stdout, stderr=stderr)

    async def file(self, doc: dict) -> dict:
        """A file, with a product's job fields when it is one."""
        workspaces = await self.store.files.workspaces_by_ids([doc["workspace_id"]])
        return product_base(doc, workspaces, self.base_url) if doc.get("is_product") else \
            file_base(doc, workspaces, self.base_url)

    async def products(self, products: list[dict]) -> list[dict]:
        workspaces = await self.store.files.workspaces_by_ids(p["workspace_id"] for p in products)
        return [product_base(p, workspaces, self.base_url) for p in products]

    async def node(self, node: dict) -> dict:
        return node_status(node, await self.store.jobs.node_usage(node["id"]))


def job_series(range_name: str, now: int, samples: list[dict], finished: dict,
               current: dict[str, int]) -> dict:
    """GET /jobs/series/ from JobSamples.between's minutes (queue samples, and finished jobs
    {status: {minute: n}}), summed or maximised per interval of the range, the last interval
    ending now: an interval's queued/running is the most of its samples, and the last one
    counts `current` (jobs per status now) as a sample too."""
    range_s, interval_s = m.SERIES_RANGES[range_name]
    interval = interval_s * 1000
    last = now - now % interval
    starts = [last - i * interval for i in range(range_s // interval_s - 1, -1, -1)]
    done: dict[str, dict[int, int]] = {}
    for status, minutes in finished.items():
        for minute, n in minutes.items():
            slot = done.setdefault(status, {})
            slot[minute - minute % interval] = slot.get(minute - minute % interval, 0) + n
    peaks: dict[int, dict[str, int]] = {}
    now_sample = {"_id": now, "queued": current.get("QUEUED", 0),
                  "running": current.get("RUNNING", 0)}
    for sample in [*samples, now_sample]:
        peak = peaks.setdefault(sample["_id"] - sample["_id"] % interval, {})
        for name in ("queued", "running"):
            peak[name] = max(peak.get(name, 0), sample[name])
    points = [shape(m.JobSeriesPoint, time=t(start),
                    completed=done.get("COMPLETED", {}).get(start, 0),
                    failed=done.get("FAILED", {}).get(start, 0),
                    queued=peaks.get(start, {}).get("queued"),
                    running=peaks.get(start, {}).get("running")) for start in starts]
    return shape(m.JobSeries, range=range_name, interval_seconds=interval_s, started=t(starts[0]),
                 ended=t(now), points=points)
