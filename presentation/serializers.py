"""Store documents → Scale's JSON shapes (field order as Scale's serializers emit it)."""

from core.interface import merge_inputs, merge_outputs, referenced_file_ids
from core.times import format_ms as t

JOB_TYPE_BASE = ("id", "name", "version", "title", "description", "category", "author_name",
                 "author_url", "is_system", "is_long_running", "is_active", "is_operational",
                 "is_paused", "icon_code")
JOB_TYPE_MORE = ("uses_docker", "docker_privileged", "docker_image", "revision_num", "priority",
                 "max_scheduled", "timeout", "max_tries", "cpus_required", "mem_required",
                 "disk_out_const_required", "disk_out_mult_required")
JOB_TYPE_TIMES = ("created", "archived", "paused", "last_modified")
JOB_SCALARS = ("status", "priority", "num_exes", "timeout", "max_tries", "cpus_required",
               "mem_required", "disk_in_required", "disk_out_required")
JOB_TIMES = ("created", "queued", "started", "ended", "last_status_change", "last_modified")
EXE_PHASES = ("pre", "job", "post")


def ref(value):
    return None if value is None else {"id": value}


def pick(doc: dict, keys) -> dict:
    """The store hands out flags as true/false (store/documents.py)."""
    return {k: doc.get(k) for k in keys}


def job_type_base(jt: dict) -> dict:
    return pick(jt, JOB_TYPE_BASE)


def job_type_full(jt: dict) -> dict:
    body = job_type_base(jt)
    body.update(pick(jt, JOB_TYPE_MORE))
    body["cpus_required"] = float(body["cpus_required"])
    body["mem_required"] = float(body["mem_required"])
    body.update({k: t(jt.get(k)) for k in JOB_TYPE_TIMES})
    return body


def job_type_details(jt: dict, errors: list[dict], counts: dict[str, list]) -> dict:
    body = job_type_full(jt)
    body["interface"] = jt["interface"]
    body["error_mapping"] = jt["error_mapping"]
    body["errors"] = [error_full(e) for e in errors]
    body["trigger_rule"] = jt.get("trigger_rule")
    for key, rows in counts.items():
        body[key] = [{**row, "most_recent": t(row["most_recent"])} for row in rows]
    return body


def error_base(error: dict | None) -> dict | None:
    if error is None:
        return None
    return {k: error[k] for k in ("id", "name", "title", "description", "category")}


def error_full(error: dict | None) -> dict | None:
    if error is None:
        return None
    return {**error_base(error), "created": t(error["created"]),
            "last_modified": t(error["last_modified"])}


def rev_base(job: dict) -> dict:
    return {"id": job["job_type_rev_id"], "job_type": {"id": job["job_type_id"]},
            "revision_num": job["job_type_rev_num"]}


def event_base(event: dict) -> dict:
    rule = event.get("rule_id")
    return {"id": event["id"], "type": event["type"], "rule": ref(rule),
            "occurred": t(event["occurred"])}


def workspace_ref(workspaces: dict, workspace_id: int) -> dict:
    ws = workspaces.get(workspace_id)
    return {"id": workspace_id, "name": ws["name"] if ws else None}


def file_base(f: dict, workspaces: dict, base_url: str) -> dict:
    return {
        "id": f["id"], "workspace": workspace_ref(workspaces, f["workspace_id"]),
        "file_name": f["file_name"], "media_type": f["media_type"], "file_size": f["file_size"],
        "data_type": f["data_type"], "is_deleted": f["is_deleted"], "uuid": f["uuid"],
        "url": f"{base_url}/files/{f['id']}/download/", "created": t(f["created"]),
        "deleted": t(f["deleted"]), "data_started": t(f["data_started"]),
        "data_ended": t(f["data_ended"]), "geometry": f["geometry"],
        "center_point": f["center_point"], "meta_data": f["meta_data"],
        "countries": f.get("countries", []), "last_modified": t(f["last_modified"]),
    }


def product_base(f: dict, workspaces: dict, base_url: str) -> dict:
    body = file_base(f, workspaces, base_url)
    body.update(is_operational=f.get("is_operational", True),
                is_published=f.get("is_published", False), published=t(f.get("published")),
                unpublished=t(f.get("unpublished")), job_type=ref(f.get("job_type_id")),
                job=ref(f.get("job_id")), job_exe=ref(f.get("job_exe_id")))
    return body


def exe_base(exe: dict) -> dict:
    body = {"id": exe["id"], "status": exe["status"],
            "command_arguments": exe["command_arguments"], "timeout": exe["timeout"]}
    for phase in EXE_PHASES:
        body[f"{phase}_started"] = t(exe[f"{phase}_started"])
        body[f"{phase}_completed"] = t(exe[f"{phase}_completed"])
        body[f"{phase}_exit_code"] = exe[f"{phase}_exit_code"]
    body.update({k: t(exe[k]) for k in ("created", "queued", "started", "ended",
                                         "last_modified")})
    body.update(job=ref(exe["job_id"]), node=ref(exe["node_id"]), error=ref(exe["error_id"]))
    return body


def node_base(node: dict | None) -> dict | None:
    if node is None:
        return None
    return {k: node.get(k) for k in ("id", "hostname", "port", "slave_id")}


def node_full(node: dict | None) -> dict | None:
    if node is None:
        return None
    body = node_base(node)
    body.update(pick(node, ("pause_reason", "is_paused", "is_paused_errors", "is_active")))
    body.update({k: t(node.get(k)) for k in ("archived", "created", "last_offer",
                                              "last_modified")})
    return body


def node_status(node: dict, usage: dict) -> dict:
    """A node with what its engine offers and what its RUNNING executions use
    (`usage`: JobStore.node_usage)."""
    body = node_full(node)
    body["capacity"] = {"cpus": node.get("cpus"), "mem": node.get("mem")}
    body["used"] = {"cpus": usage["cpus"], "mem": usage["mem"],
                    "job_exes": usage["count"]}
    return body


def queue_table(queue: list[dict]) -> list[dict]:
    """JobStore.queue_status rows (their job type documents kept) with `longest_queued`
    formatted: what the dashboard's queue tables show."""
    return [{**row, "longest_queued": t(row["longest_queued"])} for row in queue]


def queue_status(queue: list[dict]) -> dict:
    """GET /queue/status/ from JobStore.queue_status rows."""
    return {"queue_status": [
        {"count": row["count"], "longest_queued": t(row["longest_queued"]),
         "highest_priority": row["highest_priority"], "job_type_name": row["job_type"]["name"],
         "job_type_version": row["job_type"]["version"],
         "is_job_type_paused": row["job_type"]["is_paused"]} for row in queue]}


class Serializer:
    """Loads what a batch of documents refers to in few queries, then shapes them."""

    def __init__(self, store, base_url: str):
        self.store = store
        self.base_url = base_url

    def job_row(self, job: dict, job_types: dict, errors: dict) -> dict:
        body = {"id": job["id"], "job_type": job_type_base(job_types[job["job_type_id"]]),
                "job_type_rev": rev_base(job), "event": event_base(job["event"]),
                "error": error_base(errors.get(job["error_id"]))}
        body.update({k: job[k] for k in JOB_SCALARS})
        body.update({k: t(job[k]) for k in JOB_TIMES})
        return body

    async def job_rows(self, jobs: list[dict], input_files=False, latest_exe=False) -> list[dict]:
        """List rows: /jobs/, plus `input_files` for /jobs/updates/, `latest_job_exe` for
        /jobs/executions/."""
        job_types = await self.store.job_types.by_ids(j["job_type_id"] for j in jobs)
        errors = await self.store.errors.by_ids(j["error_id"] for j in jobs)
        rows = [self.job_row(j, job_types, errors) for j in jobs]
        if input_files:
            files = await self.store.files.files_by_ids(
                i for j in jobs for i in j.get("input_file_ids", ()))
            workspaces = await self.store.files.workspaces_by_ids(
                f["workspace_id"] for f in files.values())
            for row, job in zip(rows, jobs, strict=True):
                row["input_files"] = [file_base(files[i], workspaces, self.base_url)
                                      for i in job.get("input_file_ids", ()) if i in files]
        if latest_exe:
            exes = await self.store.jobs.exes_by_ids(j.get("latest_exe_id") for j in jobs)
            for row, job in zip(rows, jobs, strict=True):
                exe = exes.get(job.get("latest_exe_id"))
                row["latest_job_exe"] = exe_base(exe) if exe else None
        return rows

    async def job_details(self, job: dict) -> dict:
        store = self.store
        job_type = await store.job_types.get(job["job_type_id"])
        rev = await store.job_types.get_revision(job["job_type_rev_id"])
        event = await store.jobs.get_event(job["event"]["id"]) or job["event"]
        error = await store.errors.get(job["error_id"]) if job["error_id"] else None
        exes = await store.jobs.exes_for_job(job["id"])
        data = job.get("data") or {}
        inputs_by_id = await store.files.files_by_ids(referenced_file_ids(data))
        products = await store.files.products_of_job(job["id"])
        workspaces = await store.files.workspaces_by_ids(
            [f["workspace_id"] for f in inputs_by_id.values()]
            + [p["workspace_id"] for p in products])
        files_json = {i: file_base(f, workspaces, self.base_url) for i, f in inputs_by_id.items()}
        products_json = {p["id"]: product_base(p, workspaces, self.base_url) for p in products}
        body = self.job_row(job, {job["job_type_id"]: job_type}, {})
        body["job_type"] = job_type_full(job_type)
        body["job_type_rev"] = {**rev_base(job), "interface": rev["interface"],
                                "created": t(rev["created"])}
        body["event"] = {"id": event["id"], "type": event["type"], "rule": None,
                         "occurred": t(event["occurred"]),
                         "description": event.get("description", {})}
        body["error"] = error_full(error)
        body.update(
            data=data, results=job.get("results"), recipes=[],
            job_exes=[exe_base(e) for e in exes],
            inputs=merge_inputs(rev["interface"], data, files_json),
            outputs=merge_outputs(rev["interface"], job.get("results"), products_json),
            input_files=[files_json[i] for i in job.get("input_file_ids", ()) if i in files_json],
            products=list(products_json.values()),
        )
        return body

    async def exe_rows(self, exes: list[dict]) -> list[dict]:
        """/job-executions/ rows: job → JobBase, node → NodeBase, error → ErrorBase."""
        jobs = await self.store.jobs.jobs_by_ids((e["job_id"] for e in exes),
                                                 {"data": 0, "results": 0})
        job_types = await self.store.job_types.by_ids(j["job_type_id"] for j in jobs.values())
        errors = await self.store.errors.by_ids([e["error_id"] for e in exes])
        nodes = await self.store.nodes.by_ids(e["node_id"] for e in exes)
        rows = []
        for exe in exes:
            job = jobs.get(exe["job_id"])
            body = exe_base(exe)
            body["job"] = job and {
                "id": job["id"], "job_type": job_type_base(job_types[job["job_type_id"]]),
                "job_type_rev": {"id": job["job_type_rev_id"]}, "event": {"id": job["event"]["id"]},
                "error": ref(job["error_id"]), "status": job["status"],
                "priority": job["priority"], "num_exes": job["num_exes"]}
            body["node"] = node_base(nodes.get(exe["node_id"]))
            body["error"] = error_base(errors.get(exe["error_id"]))
            rows.append(body)
        return rows

    async def exe_details(self, exe: dict) -> dict:
        job = await self.store.jobs.get_job(exe["job_id"])
        body = exe_base(exe)
        body["job"] = (await self.job_rows([job]))[0] if job else None
        node = await self.store.nodes.get(exe["node_id"]) if exe["node_id"] else None
        body["node"] = node_full(node)
        error = await self.store.errors.get(exe["error_id"]) if exe["error_id"] else None
        body["error"] = error_full(error)
        body.update({k: exe.get(k) for k in (
            "environment", "cpus_scheduled", "mem_scheduled", "disk_in_scheduled",
            "disk_out_scheduled", "disk_total_scheduled", "results")})
        body["current_stdout_url"] = exe.get("current_stdout_url")
        body["current_stderr_url"] = exe.get("current_stderr_url")
        body["results_manifest"] = exe.get("results_manifest")
        return body
