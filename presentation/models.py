"""Every JSON shape the API answers with, declared once.

A model is a table: each field's name, in the order Scale's serializers emit it, and its JSON
schema (type, nullability, bounds, nested models). From it come
- the serializers' field lists and order (presentation/serializers.py `shape`, which also formats
  every `date-time` field from the store's milliseconds),
- the OpenAPI document's component schemas (presentation/openapi.py: `Model.schema()`, a closed
  object: every field required, no other field allowed),
- the field lists the API tests expect (tests/responses.py).

A details form extends its base form (`extend`): a field it redefines keeps its place, new
fields follow. A model without a name is written inline where it is used.
"""

from core.model import ERROR_CATEGORIES, EXE_STATUSES, JOB_STATUSES, MIN_CPUS, MIN_MEM

# -- JSON schema building blocks ---------------------------------------------------------------

INT = {"type": "integer"}
NUMBER = {"type": "number"}
BOOL = {"type": "boolean"}
STRING = {"type": "string"}
URI = {"type": "string", "format": "uri"}
JSON_OBJECT = {"type": "object"}
DATETIME = {"type": "string", "format": "date-time",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
            "description": "UTC, milliseconds, `Z` (2015-08-28T17:55:41.005Z)"}


def nullable(schema: dict) -> dict:
    """The schema or JSON null (OpenAPI 3.1 has no `nullable`)."""
    if "type" in schema and "$ref" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


# Scale's create_job floor (job = max(job type, floor)); the job type keeps what was asked.
RESOURCE_FLOOR_CPUS = (f"CPUs asked for; each job gets at least {MIN_CPUS:g} (Scale's floor), so "
                       "its cpus_required may be higher")
RESOURCE_FLOOR_MEM = (f"MiB asked for; each job gets at least {MIN_MEM:g} MiB (Scale's floor), so "
                      "its mem_required may be higher")


def described(schema: dict, description: str) -> dict:
    return {**schema, "description": description}


def closed(props: dict, description: str | None = None) -> dict:
    """An object with exactly these fields, all present (Scale's serializers emit null, never
    leave a field out)."""
    schema = {"type": "object", "additionalProperties": False, "required": list(props),
              "properties": props}
    if description:
        schema["description"] = description
    return schema


def is_datetime(schema: dict) -> bool:
    return schema.get("format") == "date-time"


class Model:
    """A response shape: `fields` maps each field name, in order, to its JSON schema.

    `extra` adds schema keywords beside the closed object's (conditions between fields)."""

    def __init__(self, name: str | None, fields: dict[str, dict],
                 description: str | None = None, extra: dict | None = None):
        self.name = name
        self.fields = dict(fields)
        self.description = description
        self.extra = extra or {}
        self.keys = tuple(self.fields)
        self.names = frozenset(self.fields)
        self.datetimes = frozenset(k for k, schema in self.fields.items() if is_datetime(schema))
        # (name, is a date-time) per field, in order: what a serializer walks through.
        self.plan = tuple((k, k in self.datetimes) for k in self.keys)

    def __repr__(self) -> str:
        return f"Model({self.name or 'inline'}: {', '.join(self.keys)})"

    def extend(self, name: str | None, fields: dict[str, dict],
               description: str | None = None) -> "Model":
        """This model's fields, some redefined in place, then the new ones."""
        return Model(name, {**self.fields, **fields}, description)

    def added_to(self, base: "Model") -> tuple[str, ...]:
        """The fields this model has beyond `base`, in order."""
        return tuple(k for k in self.keys if k not in base.fields)

    def schema(self) -> dict:
        """The model as a JSON schema: a closed object."""
        return {**closed(self.fields, self.description), **self.extra}


def ref(target: Model | str) -> dict:
    """A reference to a named model (or to another component, by name); an inline model is
    written out in place."""
    if isinstance(target, str):
        return {"$ref": f"#/components/schemas/{target}"}
    if target.name is None:
        return target.schema()
    return {"$ref": f"#/components/schemas/{target.name}"}


NULLABLE_TEXT = nullable(STRING)
JOB_STATUS = {"enum": list(JOB_STATUSES)}
EXE_STATUS = {"enum": list(EXE_STATUSES)}
ERROR_CATEGORY = {"enum": list(ERROR_CATEGORIES)}

# -- references ------------------------------------------------------------------------------

IdRef = Model("IdRef", {"id": INT})
ID_REF = ref(IdRef)
WorkspaceRef = Model("WorkspaceRef", {"id": INT, "name": NULLABLE_TEXT})

# -- job types -------------------------------------------------------------------------------

JobTypeBase = Model("JobTypeBase", {
    "id": INT, "name": STRING, "version": STRING, "title": NULLABLE_TEXT,
    "description": NULLABLE_TEXT, "category": NULLABLE_TEXT, "author_name": NULLABLE_TEXT,
    "author_url": NULLABLE_TEXT, "is_system": BOOL, "is_long_running": BOOL, "is_active": BOOL,
    "is_operational": BOOL, "is_paused": BOOL, "icon_code": NULLABLE_TEXT,
}, "JobTypeBaseSerializer: job_type in list rows")
JobType = JobTypeBase.extend("JobType", {
    "uses_docker": BOOL, "docker_privileged": BOOL, "docker_image": NULLABLE_TEXT,
    "revision_num": {**INT, "minimum": 1}, "priority": INT, "max_scheduled": nullable(INT),
    "timeout": described(INT, "Seconds"), "max_tries": {**INT, "minimum": 1},
    "cpus_required": described(NUMBER, RESOURCE_FLOOR_CPUS),
    "mem_required": described(NUMBER, RESOURCE_FLOOR_MEM),
    "disk_out_const_required": NUMBER, "disk_out_mult_required": NUMBER,
    "created": DATETIME, "archived": nullable(DATETIME), "paused": nullable(DATETIME),
    "last_modified": DATETIME,
}, "JobTypeSerializer: /job-types/ rows, job_type in details")
JobCount = Model("JobCount", {
    "status": JOB_STATUS, "count": {**INT, "minimum": 1}, "most_recent": DATETIME,
    "category": nullable(ERROR_CATEGORY)})
JOB_COUNT_HOURS = (6, 12, 24)
TriggerRuleDetails = Model("TriggerRuleDetails", {
    "id": INT, "type": STRING, "name": STRING, "is_active": BOOL, "configuration": JSON_OBJECT})

# -- errors ----------------------------------------------------------------------------------

ErrorBase = Model("ErrorBase", {
    "id": INT, "name": STRING, "title": NULLABLE_TEXT, "description": NULLABLE_TEXT,
    "category": ERROR_CATEGORY})
Error = ErrorBase.extend("Error", {"created": DATETIME, "last_modified": DATETIME})

JobTypeDetails = JobType.extend("JobTypeDetails", {
    "interface": ref("JobInterface"), "error_mapping": ref("ErrorMapping"),
    "errors": described(array(ref(Error)), "The errors its error_mapping names"),
    "trigger_rule": nullable(ref(TriggerRuleDetails)),
    **{f"job_counts_{h}h": described(array(ref(JobCount)),
                                     f"Jobs whose status changed in the last {h} hours")
       for h in JOB_COUNT_HOURS},
}, "JobTypeDetailsSerializer")

# -- revisions and events --------------------------------------------------------------------

JobTypeRevisionBase = Model("JobTypeRevisionBase", {
    "id": INT, "job_type": ID_REF, "revision_num": {**INT, "minimum": 1}})
JobTypeRevision = JobTypeRevisionBase.extend("JobTypeRevision", {
    "interface": ref("JobInterface"), "created": DATETIME})
TriggerEventBase = Model("TriggerEventBase", {
    "id": INT, "type": STRING, "rule": nullable(ID_REF), "occurred": DATETIME})
TriggerEventDetails = TriggerEventBase.extend("TriggerEventDetails", {
    "rule": nullable(ref(TriggerRuleDetails)), "description": JSON_OBJECT})

# -- files and workspaces --------------------------------------------------------------------

ScaleFile = Model("ScaleFile", {
    "id": INT, "workspace": ref(WorkspaceRef), "file_name": STRING, "media_type": STRING,
    "file_size": {**INT, "minimum": 0, "description": "Bytes"},
    "data_type": array(STRING), "is_deleted": BOOL, "uuid": STRING,
    "url": URI, "created": DATETIME,
    "deleted": nullable(DATETIME), "data_started": nullable(DATETIME),
    "data_ended": nullable(DATETIME), "geometry": described(NULLABLE_TEXT, "WKT"),
    "center_point": described(NULLABLE_TEXT, "WKT"), "meta_data": nullable(JSON_OBJECT),
    "countries": described(array(STRING), "ISO 3166 alpha-3 codes"),
    "last_modified": DATETIME,
}, "ScaleFileBaseSerializer")
ProductFile = ScaleFile.extend("ProductFile", {
    "is_operational": BOOL, "is_published": BOOL,
    "published": nullable(DATETIME), "unpublished": nullable(DATETIME),
    "job_type": nullable(ID_REF), "job": nullable(ID_REF), "job_exe": nullable(ID_REF),
}, "ProductFileBaseSerializer")
Workspace = Model("Workspace", {
    "id": INT, "name": STRING, "title": NULLABLE_TEXT, "description": NULLABLE_TEXT,
    "base_url": nullable(URI), "is_active": BOOL,
    "used_size": nullable(INT), "total_size": nullable(INT), "created": DATETIME,
    "archived": nullable(DATETIME), "last_modified": DATETIME,
}, "WorkspaceSerializer")
WorkspaceBroker = Model(None, {"type": {"const": "host"}, "host_path": STRING})
WorkspaceConfig = Model(None, {"version": {"const": "1.0"}, "broker": ref(WorkspaceBroker)})
WorkspaceDetails = Workspace.extend("WorkspaceDetails", {"json_config": ref(WorkspaceConfig)},
                                    "WorkspaceDetailsSerializer")


def merged_value(name: str, file_model: Model) -> Model:
    """An `inputs`/`outputs` entry: the value's shape follows the interface entry's type."""
    return Model(f"Job{name.title()}", {
        "name": STRING, "type": {"enum": ["property", "file", "files"]},
        "value": {"description": "A property's value, a file object or null for `file`, a list "
                                 "of file objects for `files`"},
    }, f"An interface {name} merged with its value", extra={"allOf": [
        {"if": {"properties": {"type": {"const": "file"}}},
         "then": {"properties": {"value": nullable(ref(file_model))}}},
        {"if": {"properties": {"type": {"const": "files"}}},
         "then": {"properties": {"value": array(ref(file_model))}}},
    ]})


JobInput = merged_value("input", ScaleFile)
JobOutput = merged_value("output", ProductFile)

# -- nodes -----------------------------------------------------------------------------------

NodeBase = Model("NodeBase", {
    "id": INT, "hostname": STRING, "port": nullable(INT),
    "slave_id": described(STRING, "The node's unique key: a Jobdeck engine's hostname, or "
                          "slurm:<name> for a Slurm node (a Slurm node and an engine may share a "
                          "hostname)")})
Node = NodeBase.extend("Node", {
    "pause_reason": NULLABLE_TEXT, "is_paused": BOOL, "is_paused_errors": BOOL,
    "is_active": BOOL, "archived": nullable(DATETIME), "created": DATETIME,
    "last_offer": nullable(DATETIME), "last_modified": DATETIME,
    "slurm_state": described(nullable(STRING), "A Slurm node's state as sinfo shows it (idle, "
                             "mixed, allocated, drained, draining, down*...); null for the node "
                             "of a Jobdeck engine")})
NodeCapacity = Model(None, {"cpus": nullable(NUMBER), "mem": described(nullable(NUMBER), "MiB")},
                     "What the node's engine offers")
NodeUse = Model(None, {"cpus": NUMBER, "mem": described(NUMBER, "MiB"),
                       "job_exes": {**INT, "minimum": 0}},
                "What its RUNNING executions are scheduled to use")
NodeStatus = Node.extend("NodeStatus", {"capacity": ref(NodeCapacity), "used": ref(NodeUse)},
                         "A node with its capacity and current use")

# -- jobs and executions ---------------------------------------------------------------------

EXE_PHASES = ("pre", "job", "post")
JobExecutionBase = Model("JobExecutionBase", {
    "id": INT, "status": EXE_STATUS, "command_arguments": STRING, "timeout": INT,
    **{f"{phase}_{field}": schema for phase in EXE_PHASES
       for field, schema in (("started", nullable(DATETIME)), ("completed", nullable(DATETIME)),
                             ("exit_code", nullable(INT)))},
    "created": DATETIME, "queued": nullable(DATETIME), "started": nullable(DATETIME),
    "ended": nullable(DATETIME), "last_modified": DATETIME,
    "job": ID_REF, "node": nullable(ID_REF), "error": nullable(ID_REF),
    "cluster_job_id": described(nullable(STRING), "Its Slurm job id (executor: slurm), once "
                                "submitted; null for a local process"),
    "cluster_node": described(nullable(STRING), "The Slurm node it runs or ran on, once the "
                              "cluster has placed it; null for a local process"),
}, "JobExecutionBaseSerializer")
Job = Model("Job", {
    "id": INT, "job_type": ref(JobTypeBase), "job_type_rev": ref(JobTypeRevisionBase),
    "event": ref(TriggerEventBase), "error": nullable(ref(ErrorBase)), "status": JOB_STATUS,
    "priority": INT, "num_exes": {**INT, "minimum": 0}, "timeout": INT,
    "max_tries": {**INT, "minimum": 1},
    "cpus_required": described(NUMBER, f"CPUs: the job type's, at least {MIN_CPUS:g}"),
    "mem_required": described(NUMBER, f"MiB: the job type's, at least {MIN_MEM:g}"),
    "disk_in_required": NUMBER, "disk_out_required": NUMBER, "created": DATETIME,
    "queued": nullable(DATETIME), "started": nullable(DATETIME), "ended": nullable(DATETIME),
    "last_status_change": DATETIME, "last_modified": DATETIME,
}, "JobSerializer: rows of /jobs/")
JobUpdate = Job.extend("JobUpdate", {"input_files": array(ref(ScaleFile))},
                       "JobUpdateSerializer: rows of /jobs/updates/")
JobWithExecution = Job.extend("JobWithExecution",
                              {"latest_job_exe": nullable(ref(JobExecutionBase))},
                              "JobWithExecutionSerializer: rows of /jobs/executions/")
Recipe = Model("Recipe", {
    "id": INT,
    "recipe_type": closed({"id": INT, "name": STRING, "version": STRING,
                           "title": NULLABLE_TEXT, "description": NULLABLE_TEXT}),
    "recipe_type_rev": closed({"id": INT, "recipe_type": ID_REF, "revision_num": INT}),
    "event": ref(TriggerEventBase), "created": DATETIME,
    "completed": nullable(DATETIME), "last_modified": DATETIME})
JobDetails = Job.extend("JobDetails", {
    "job_type": ref(JobType), "job_type_rev": ref(JobTypeRevision),
    "event": ref(TriggerEventDetails), "error": nullable(ref(Error)),
    "data": ref("JobData"),
    "results": nullable(described(JSON_OBJECT, "The job results (output_data)")),
    "recipes": array(ref(Recipe)),
    "job_exes": described(array(ref(JobExecutionBase)), "Newest first"),
    "inputs": array(ref(JobInput)), "outputs": array(ref(JobOutput)),
    "input_files": described(array(ref(ScaleFile)), "Deprecated: see inputs"),
    "products": described(array(ref(ProductFile)), "Deprecated: see outputs"),
    "queued_reason": described(nullable(STRING), "Why a QUEUED job is not started: with "
                               "executor slurm, when no node of the cluster is big enough"),
}, "JobDetailsSerializer")
JobBase = Model("JobBase", {
    "id": INT, "job_type": ref(JobTypeBase), "job_type_rev": ID_REF, "event": ID_REF,
    "error": nullable(ID_REF), "status": JOB_STATUS, "priority": INT,
    "num_exes": {**INT, "minimum": 0},
}, "JobBaseSerializer: job in /job-executions/ rows")
JobExecution = JobExecutionBase.extend("JobExecution", {
    "job": nullable(ref(JobBase)), "node": nullable(ref(NodeBase)),
    "error": nullable(ref(ErrorBase)),
}, "JobExecutionSerializer: rows of /job-executions/")
JobExecutionDetails = JobExecutionBase.extend("JobExecutionDetails", {
    "job": nullable(ref(Job)), "node": nullable(ref(Node)), "error": nullable(ref(Error)),
    "environment": nullable(JSON_OBJECT), "cpus_scheduled": nullable(NUMBER),
    "mem_scheduled": nullable(NUMBER), "disk_in_scheduled": nullable(NUMBER),
    "disk_out_scheduled": nullable(NUMBER), "disk_total_scheduled": nullable(NUMBER),
    "results": nullable(JSON_OBJECT),
    "current_stdout_url": nullable(URI), "current_stderr_url": nullable(URI),
    "results_manifest": nullable(JSON_OBJECT),
}, "JobExecutionDetailsSerializer")
JobExecutionLog = JobExecution.extend("JobExecutionLog", {
    "is_finished": BOOL, "stdout": STRING, "stderr": STRING,
}, "JobExecutionLogSerializer: the /job-executions/ row and its logs (their last 4 MiB), "
   "readable while it runs")

# -- queue and operations --------------------------------------------------------------------

QueueStatusEntry = Model(None, {
    "count": {**INT, "minimum": 1}, "longest_queued": DATETIME,
    "highest_priority": INT, "job_type_name": STRING, "job_type_version": STRING,
    "is_job_type_paused": BOOL})
QueueStatus = Model("QueueStatus", {"queue_status": array(ref(QueueStatusEntry))},
                    "QUEUED jobs per job type: unpaused first, then by priority, then longest "
                    "queued")
# GET /jobs/series/: the overview's time charts.
SERIES_RANGES = {"1h": (3600, 60), "24h": (24 * 3600, 1800), "7d": (7 * 24 * 3600, 3 * 3600)}
SERIES_LABELS = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days"}
COUNT = {**INT, "minimum": 0}
JobSeriesPoint = Model(None, {
    "time": DATETIME,
    "completed": described(COUNT, "Jobs that became COMPLETED in the interval"),
    "failed": described(COUNT, "Jobs that became FAILED in the interval"),
    "queued": described(nullable(COUNT), "Most jobs QUEUED at once in the interval, sampled "
                                         "once a minute (null: no sample)"),
    "running": described(nullable(COUNT), "Most jobs RUNNING at once in the interval, sampled "
                                          "once a minute (null: no sample)"),
})
JobSeries = Model("JobSeries", {
    "range": {"enum": list(SERIES_RANGES)},
    "interval_seconds": {**INT, "minimum": 1},
    "started": DATETIME, "ended": DATETIME,
    "points": array(ref(JobSeriesPoint)),
}, "Finished jobs, queue depth and running jobs per interval over the range, oldest first; the "
   "last interval ends now and includes the counts of now")
HealthStore = Model(None, {
    "reachable": BOOL, "ping_ms": {**NUMBER, "minimum": 0}, "writable": BOOL,
    "problem": nullable(STRING),
}, "`writable` false (and `degraded`) while the store fails writes; `problem` says why, e.g. "
   "\"no space left on the store's disk (0 bytes free in data_dir)\"")
HealthLive = Model(None, {
    "running": BOOL, "mode": nullable({"enum": ["change-stream", "tail"]}),
    "lag_seconds": {**NUMBER, "minimum": 0}, "max_lag_seconds": {**NUMBER, "minimum": 0},
    "restarts": {**INT, "minimum": 0},
}, "The live feed: `degraded` while it is behind the store by more than live_stale_after (it "
   "then restarts itself)")
Health = Model("Health", {
    "status": {"enum": ["ok", "degraded", "draining", "unavailable"],
               "description": "`draining`: the server was told to stop and waits for running "
                              "jobs (drain_timeout)"},
    "store": ref(HealthStore), "live": ref(HealthLive)})

# POST /queue/requeue-jobs/: the body's fields (Scale's), and its answer, Scale's page of the
# matched jobs, whose shape is fixed; how many of them it requeued comes in a header.
REQUEUE_FIELDS = ("started", "ended", "status", "job_ids", "job_type_ids", "job_type_names",
                  "job_type_categories", "priority")
MATCHED_HEADER = "X-Jobs-Matched"
REQUEUED_HEADER = "X-Jobs-Requeued"
REQUEUE_HEADERS = {
    MATCHED_HEADER: "How many jobs the filters matched (the page's count)",
    REQUEUED_HEADER: "How many of them this call requeued: FAILED or CANCELED ones moved to "
                     "QUEUED (BLOCKED if they never ran); 0 when none could be",
}

# -- pages -----------------------------------------------------------------------------------


def page_of(item: Model) -> Model:
    """Scale's paginated body with `item` rows."""
    return Model(f"{item.name}Page", {
        "count": {**INT, "minimum": 0,
                  "description": "Results that match the query parameters, on all pages"},
        "next": described(nullable(URI), "Absolute URL of the next page, null on the last"),
        "previous": described(nullable(URI),
                              "Absolute URL of the previous page, null on the first"),
        "results": array(ref(item)),
    }, f"A page of {item.name} rows")


PAGES = tuple(page_of(item) for item in (
    Job, JobUpdate, JobWithExecution, JobType, JobExecution, Error, Workspace, ProductFile,
    NodeStatus))
Page = PAGES[0]  # every page has the same fields

# Every named model, in the order the OpenAPI document lists them.
COMPONENTS = (
    IdRef, WorkspaceRef, JobTypeBase, JobType, JobTypeDetails, JobCount, JobTypeRevisionBase,
    JobTypeRevision, TriggerEventBase, TriggerRuleDetails, TriggerEventDetails, ErrorBase, Error,
    Job, JobUpdate, JobWithExecution, JobDetails, JobBase, JobInput, JobOutput, Recipe,
    JobExecutionBase, JobExecution, JobExecutionDetails, JobExecutionLog, NodeBase, Node,
    NodeStatus, Workspace, WorkspaceDetails, ScaleFile, ProductFile, QueueStatus, JobSeries, Health,
    *PAGES,
)
