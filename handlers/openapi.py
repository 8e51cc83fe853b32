"""GET /openapi.json: the OpenAPI 3.1 document of the JSON API.

Built in Python from shared pieces so a field list is written once: an extended shape (a details
form over a base form) is the base's property dict plus its extra fields, and every object is
closed (`additionalProperties: false`, all fields required) so a test can hold real responses to
it. Whoever adds a JSON route adds its path here; tests/api/test_openapi.py fails until they do.
"""

import copy
import functools
import json

from core.interface import ERROR_MAPPING_SCHEMA, INTERFACE_SCHEMA, JOB_DATA_SCHEMA
from core.model import ERROR_CATEGORIES, EXE_STATUSES, JOB_STATUSES
from handlers.base import BaseHandler
from presentation.filters import MAX_PAGE_SIZE
from store.job_types import JobTypeStore
from store.jobs import EXE_ORDER_FIELDS, JOB_ORDER_FIELDS

TITLE = "Jobdeck Job Services API"
VERSION = "1.0"

# -- schema building blocks ------------------------------------------------------------------

INT = {"type": "integer"}
NUMBER = {"type": "number"}
BOOL = {"type": "boolean"}
STRING = {"type": "string"}
JSON_OBJECT = {"type": "object"}
DATETIME = {"type": "string", "format": "date-time",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
            "description": "UTC, milliseconds, `Z` (2015-08-28T17:55:41.005Z)"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    """The schema or JSON null (OpenAPI 3.1 has no `nullable`)."""
    if "type" in schema and "$ref" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def closed(props: dict, description: str | None = None) -> dict:
    """An object with exactly these fields, all present (Scale's serializers emit null, never
    leave a field out)."""
    schema = {"type": "object", "additionalProperties": False, "required": list(props),
              "properties": props}
    if description:
        schema["description"] = description
    return schema


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def page_of(item: str) -> dict:
    return closed({
        "count": {**INT, "minimum": 0,
                  "description": "Results that match the query parameters, on all pages"},
        "next": {**nullable({"type": "string", "format": "uri"}),
                 "description": "Absolute URL of the next page, null on the last"},
        "previous": {**nullable({"type": "string", "format": "uri"}),
                     "description": "Absolute URL of the previous page, null on the first"},
        "results": array(ref(item)),
    }, f"A page of {item} rows")


def lifted(schema: dict, prefix: str) -> dict[str, dict]:
    """A standalone JSON schema with `$defs` as components: `#/$defs/x` would resolve against
    the OpenAPI document's root, so the definitions move to `#/components/schemas/{prefix}X`."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})

    def rewrite(node):
        if isinstance(node, dict):
            node.pop("$schema", None)
            target = node.get("$ref", "")
            if target.startswith("#/$defs/"):
                name = target.removeprefix("#/$defs/")
                node["$ref"] = f"#/components/schemas/{prefix}{name.title().replace('_', '')}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    rewrite(defs)
    lifted_defs = {f"{prefix}{name.title().replace('_', '')}": value
                   for name, value in defs.items()}
    return {prefix: schema, **lifted_defs}


# -- field lists (Scale's serializers, in the order they emit them) --------------------------

ID_REF = ref("IdRef")
NULLABLE_TEXT = nullable(STRING)

JOB_TYPE_BASE = {
    "id": INT, "name": STRING, "version": STRING, "title": NULLABLE_TEXT,
    "description": NULLABLE_TEXT, "category": NULLABLE_TEXT, "author_name": NULLABLE_TEXT,
    "author_url": NULLABLE_TEXT, "is_system": BOOL, "is_long_running": BOOL, "is_active": BOOL,
    "is_operational": BOOL, "is_paused": BOOL, "icon_code": NULLABLE_TEXT,
}
JOB_TYPE = {
    **JOB_TYPE_BASE,
    "uses_docker": BOOL, "docker_privileged": BOOL, "docker_image": NULLABLE_TEXT,
    "revision_num": {**INT, "minimum": 1}, "priority": INT, "max_scheduled": nullable(INT),
    "timeout": {**INT, "description": "Seconds"}, "max_tries": {**INT, "minimum": 1},
    "cpus_required": NUMBER, "mem_required": {**NUMBER, "description": "MiB"},
    "disk_out_const_required": NUMBER, "disk_out_mult_required": NUMBER,
    "created": DATETIME, "archived": nullable(DATETIME), "paused": nullable(DATETIME),
    "last_modified": DATETIME,
}
JOB_TYPE_DETAILS = {
    **JOB_TYPE,
    "interface": ref("JobInterface"), "error_mapping": ref("ErrorMapping"),
    "errors": {**array(ref("Error")), "description": "The errors its error_mapping names"},
    "trigger_rule": nullable(ref("TriggerRuleDetails")),
    **{f"job_counts_{h}h": {**array(ref("JobCount")),
                            "description": f"Jobs whose status changed in the last {h} hours"}
       for h in (6, 12, 24)},
}
ERROR_BASE = {"id": INT, "name": STRING, "title": NULLABLE_TEXT, "description": NULLABLE_TEXT,
              "category": {"enum": list(ERROR_CATEGORIES)}}
ERROR = {**ERROR_BASE, "created": DATETIME, "last_modified": DATETIME}
REVISION_BASE = {"id": INT, "job_type": ID_REF, "revision_num": {**INT, "minimum": 1}}
EVENT_BASE = {"id": INT, "type": STRING, "rule": nullable(ID_REF), "occurred": DATETIME}
JOB_STATUS = {"enum": list(JOB_STATUSES)}
EXE_STATUS = {"enum": list(EXE_STATUSES)}
JOB = {
    "id": INT, "job_type": ref("JobTypeBase"), "job_type_rev": ref("JobTypeRevisionBase"),
    "event": ref("TriggerEventBase"), "error": nullable(ref("ErrorBase")), "status": JOB_STATUS,
    "priority": INT, "num_exes": {**INT, "minimum": 0}, "timeout": INT,
    "max_tries": {**INT, "minimum": 1}, "cpus_required": NUMBER, "mem_required": NUMBER,
    "disk_in_required": NUMBER, "disk_out_required": NUMBER, "created": DATETIME,
    "queued": nullable(DATETIME), "started": nullable(DATETIME), "ended": nullable(DATETIME),
    "last_status_change": DATETIME, "last_modified": DATETIME,
}
JOB_DETAILS = {
    **JOB,
    "job_type": ref("JobType"), "job_type_rev": ref("JobTypeRevision"),
    "event": ref("TriggerEventDetails"), "error": nullable(ref("Error")),
    "data": ref("JobData"),
    "results": nullable({**JSON_OBJECT, "description": "The job results (output_data)"}),
    "recipes": array(ref("Recipe")),
    "job_exes": {**array(ref("JobExecutionBase")), "description": "Newest first"},
    "inputs": array(ref("JobInput")), "outputs": array(ref("JobOutput")),
    "input_files": {**array(ref("ScaleFile")), "description": "Deprecated: see inputs"},
    "products": {**array(ref("ProductFile")), "description": "Deprecated: see outputs"},
}
EXE_BASE = {
    "id": INT, "status": EXE_STATUS, "command_arguments": STRING, "timeout": INT,
    **{f"{phase}_{field}": schema for phase in ("pre", "job", "post")
       for field, schema in (("started", nullable(DATETIME)), ("completed", nullable(DATETIME)),
                             ("exit_code", nullable(INT)))},
    "created": DATETIME, "queued": nullable(DATETIME), "started": nullable(DATETIME),
    "ended": nullable(DATETIME), "last_modified": DATETIME,
    "job": ID_REF, "node": nullable(ID_REF), "error": nullable(ID_REF),
}
EXE = {**EXE_BASE, "job": nullable(ref("JobBase")), "node": nullable(ref("NodeBase")),
       "error": nullable(ref("ErrorBase"))}
EXE_DETAILS = {
    **EXE_BASE,
    "job": nullable(ref("Job")), "node": nullable(ref("Node")), "error": nullable(ref("Error")),
    "environment": nullable(JSON_OBJECT), "cpus_scheduled": nullable(NUMBER),
    "mem_scheduled": nullable(NUMBER), "disk_in_scheduled": nullable(NUMBER),
    "disk_out_scheduled": nullable(NUMBER), "disk_total_scheduled": nullable(NUMBER),
    "results": nullable(JSON_OBJECT),
    "current_stdout_url": nullable({"type": "string", "format": "uri"}),
    "current_stderr_url": nullable({"type": "string", "format": "uri"}),
    "results_manifest": nullable(JSON_OBJECT),
}
NODE_BASE = {"id": INT, "hostname": STRING, "port": nullable(INT), "slave_id": STRING}
NODE = {**NODE_BASE, "pause_reason": NULLABLE_TEXT, "is_paused": BOOL, "is_paused_errors": BOOL,
        "is_active": BOOL, "archived": nullable(DATETIME), "created": DATETIME,
        "last_offer": nullable(DATETIME), "last_modified": DATETIME}
NODE_STATUS = {
    **NODE,
    "capacity": closed({"cpus": nullable(NUMBER), "mem": {**nullable(NUMBER), "description": "MiB"}},
                       "What the node's engine offers"),
    "used": closed({"cpus": NUMBER, "mem": {**NUMBER, "description": "MiB"},
                    "job_exes": {**INT, "minimum": 0}},
                   "What its RUNNING executions are scheduled to use"),
}
WORKSPACE = {"id": INT, "name": STRING, "title": NULLABLE_TEXT, "description": NULLABLE_TEXT,
             "base_url": nullable({"type": "string", "format": "uri"}), "is_active": BOOL,
             "used_size": nullable(INT), "total_size": nullable(INT), "created": DATETIME,
             "archived": nullable(DATETIME), "last_modified": DATETIME}
SCALE_FILE = {
    "id": INT, "workspace": ref("WorkspaceRef"), "file_name": STRING, "media_type": STRING,
    "file_size": {**INT, "minimum": 0, "description": "Bytes"},
    "data_type": array(STRING), "is_deleted": BOOL, "uuid": STRING,
    "url": {"type": "string", "format": "uri"}, "created": DATETIME,
    "deleted": nullable(DATETIME), "data_started": nullable(DATETIME),
    "data_ended": nullable(DATETIME), "geometry": {**NULLABLE_TEXT, "description": "WKT"},
    "center_point": {**NULLABLE_TEXT, "description": "WKT"}, "meta_data": nullable(JSON_OBJECT),
    "countries": {**array(STRING), "description": "ISO 3166 alpha-3 codes"},
    "last_modified": DATETIME,
}
PRODUCT_FILE = {**SCALE_FILE, "is_operational": BOOL, "is_published": BOOL,
                "published": nullable(DATETIME), "unpublished": nullable(DATETIME),
                "job_type": nullable(ID_REF), "job": nullable(ID_REF),
                "job_exe": nullable(ID_REF)}


def merged_value(name: str, file_schema: dict) -> dict:
    """An `inputs`/`outputs` entry: the value's shape follows the interface entry's type."""
    return {
        **closed({"name": STRING, "type": {"enum": ["property", "file", "files"]},
                  "value": {"description": "A property's value, a file object or null for "
                                           "`file`, a list of file objects for `files`"}},
                 f"An interface {name} merged with its value"),
        "allOf": [
            {"if": {"properties": {"type": {"const": "file"}}},
             "then": {"properties": {"value": nullable(file_schema)}}},
            {"if": {"properties": {"type": {"const": "files"}}},
             "then": {"properties": {"value": array(file_schema)}}},
        ],
    }


def schemas() -> dict:
    return {
        "IdRef": closed({"id": INT}),
        "WorkspaceRef": closed({"id": INT, "name": NULLABLE_TEXT}),
        "JobTypeBase": closed(JOB_TYPE_BASE, "JobTypeBaseSerializer: job_type in list rows"),
        "JobType": closed(JOB_TYPE, "JobTypeSerializer: /job-types/ rows, job_type in details"),
        "JobTypeDetails": closed(JOB_TYPE_DETAILS, "JobTypeDetailsSerializer"),
        "JobCount": closed({"status": JOB_STATUS, "count": {**INT, "minimum": 1},
                            "most_recent": DATETIME,
                            "category": nullable({"enum": list(ERROR_CATEGORIES)})}),
        **lifted(INTERFACE_SCHEMA, "JobInterface"),
        **lifted(ERROR_MAPPING_SCHEMA, "ErrorMapping"),
        **lifted(JOB_DATA_SCHEMA, "JobData"),
        "JobTypeRevisionBase": closed(REVISION_BASE),
        "JobTypeRevision": closed({**REVISION_BASE, "interface": ref("JobInterface"),
                                   "created": DATETIME}),
        "TriggerEventBase": closed(EVENT_BASE),
        "TriggerRuleDetails": closed({"id": INT, "type": STRING, "name": STRING,
                                      "is_active": BOOL, "configuration": JSON_OBJECT}),
        "TriggerEventDetails": closed({**EVENT_BASE, "rule": nullable(ref("TriggerRuleDetails")),
                                       "description": JSON_OBJECT}),
        "ErrorBase": closed(ERROR_BASE),
        "Error": closed(ERROR),
        "Job": closed(JOB, "JobSerializer: rows of /jobs/"),
        "JobUpdate": closed({**JOB, "input_files": array(ref("ScaleFile"))},
                            "JobUpdateSerializer: rows of /jobs/updates/"),
        "JobWithExecution": closed({**JOB, "latest_job_exe": nullable(ref("JobExecutionBase"))},
                                   "JobWithExecutionSerializer: rows of /jobs/executions/"),
        "JobDetails": closed(JOB_DETAILS, "JobDetailsSerializer"),
        "JobBase": closed({"id": INT, "job_type": ref("JobTypeBase"), "job_type_rev": ID_REF,
                           "event": ID_REF, "error": nullable(ID_REF), "status": JOB_STATUS,
                           "priority": INT, "num_exes": {**INT, "minimum": 0}},
                          "JobBaseSerializer: job in /job-executions/ rows"),
        "JobInput": merged_value("input", ref("ScaleFile")),
        "JobOutput": merged_value("output", ref("ProductFile")),
        "Recipe": closed({
            "id": INT,
            "recipe_type": closed({"id": INT, "name": STRING, "version": STRING,
                                   "title": NULLABLE_TEXT, "description": NULLABLE_TEXT}),
            "recipe_type_rev": closed({"id": INT, "recipe_type": ID_REF,
                                       "revision_num": INT}),
            "event": ref("TriggerEventBase"), "created": DATETIME,
            "completed": nullable(DATETIME), "last_modified": DATETIME}),
        "JobExecutionBase": closed(EXE_BASE, "JobExecutionBaseSerializer"),
        "JobExecution": closed(EXE, "JobExecutionSerializer: rows of /job-executions/"),
        "JobExecutionDetails": closed(EXE_DETAILS, "JobExecutionDetailsSerializer"),
        "JobExecutionLog": closed({**EXE, "is_finished": BOOL, "stdout": STRING,
                                   "stderr": STRING},
                                  "JobExecutionLogSerializer: the /job-executions/ row and its "
                                  "logs (their last 4 MiB), readable while it runs"),
        "NodeBase": closed(NODE_BASE),
        "Node": closed(NODE),
        "NodeStatus": closed(NODE_STATUS, "A node with its capacity and current use"),
        "Workspace": closed(WORKSPACE, "WorkspaceSerializer"),
        "WorkspaceDetails": closed({**WORKSPACE, "json_config": closed({
            "version": {"const": "1.0"},
            "broker": closed({"type": {"const": "host"}, "host_path": STRING})})},
            "WorkspaceDetailsSerializer"),
        "ScaleFile": closed(SCALE_FILE, "ScaleFileBaseSerializer"),
        "ProductFile": closed(PRODUCT_FILE, "ProductFileBaseSerializer"),
        "QueueStatus": closed({"queue_status": array(closed({
            "count": {**INT, "minimum": 1}, "longest_queued": DATETIME,
            "highest_priority": INT, "job_type_name": STRING, "job_type_version": STRING,
            "is_job_type_paused": BOOL}))},
            "QUEUED jobs per job type: unpaused first, then by priority, then longest queued"),
        "Health": closed({"status": {
                              "enum": ["ok", "degraded", "draining", "unavailable"],
                              "description": "`draining`: the server was told to stop and "
                                             "waits for running jobs (drain_timeout)"},
                          "store": closed({"reachable": BOOL,
                                           "ping_ms": {**NUMBER, "minimum": 0},
                                           "writable": BOOL,
                                           "problem": nullable(STRING)},
                                          "`writable` false (and `degraded`) while the store "
                                          "fails writes; `problem` says why, e.g. \"no space "
                                          "left on the store's disk (0 bytes free in "
                                          "data_dir)\""),
                          "live": closed({
                              "running": BOOL,
                              "mode": nullable({"enum": ["change-stream", "tail"]}),
                              "lag_seconds": {**NUMBER, "minimum": 0},
                              "max_lag_seconds": {**NUMBER, "minimum": 0},
                              "restarts": {**INT, "minimum": 0}},
                              "The live feed: `degraded` while it is behind the store by more "
                              "than live_stale_after (it then restarts itself)")}),
        **{f"{item}Page": page_of(item) for item in (
            "Job", "JobUpdate", "JobWithExecution", "JobType", "JobExecution", "Error",
            "Workspace", "ProductFile", "NodeStatus")},
        **request_schemas(),
    }


EDITABLE_JOB_TYPE_FIELDS = {
    "title": NULLABLE_TEXT, "description": NULLABLE_TEXT, "category": NULLABLE_TEXT,
    "author_name": NULLABLE_TEXT, "author_url": NULLABLE_TEXT, "icon_code": NULLABLE_TEXT,
    "docker_image": NULLABLE_TEXT, "is_operational": BOOL, "is_paused": BOOL,
    "docker_privileged": BOOL, "priority": INT, "max_scheduled": nullable({**INT, "minimum": 0}),
    "timeout": {**INT, "minimum": 1}, "max_tries": {**INT, "minimum": 1},
    "cpus_required": {**NUMBER, "exclusiveMinimum": 0},
    "mem_required": {**NUMBER, "exclusiveMinimum": 0},
    "disk_out_const_required": {**NUMBER, "minimum": 0},
    "disk_out_mult_required": {**NUMBER, "minimum": 0},
    "interface": ref("JobInterface"), "error_mapping": ref("ErrorMapping"),
    "trigger_rule": {"type": "null", "description": "Not supported; jobs come from "
                                                    "POST /queue/new-job/"},
}
# Scale's uneditable fields: accepted in a body and dropped.
IGNORED_JOB_TYPE_FIELDS = ("is_system", "is_long_running", "is_active", "requires_cleanup",
                           "uses_docker", "revision_num", "created", "archived", "paused",
                           "last_modified", "id")
STRINGS_OR_ONE = {"anyOf": [STRING, array(STRING)]}


def request_schemas() -> dict:
    ignored = {name: {"description": "Ignored"} for name in IGNORED_JOB_TYPE_FIELDS}
    job_type_fields = {"name": {**STRING, "minLength": 1},
                       "version": {**STRING, "minLength": 1},
                       **EDITABLE_JOB_TYPE_FIELDS, **ignored}
    return {
        "JobCancel": closed({"status": {"const": "CANCELED"}}),
        "NodePause": {"type": "object", "additionalProperties": False,
                      "required": ["is_paused"],
                      "properties": {"is_paused": {"type": "boolean"},
                                     "pause_reason": nullable({"type": "string",
                                                               "maxLength": 250})}},
        "JobTypeCreate": {"type": "object", "additionalProperties": False,
                          "required": ["name", "version", "interface"],
                          "properties": job_type_fields},
        "JobTypeEdit": {"type": "object", "additionalProperties": False,
                        "description": "name and version may be sent only unchanged; a new "
                                       "interface makes a new revision",
                        "properties": job_type_fields},
        "NewJob": {"type": "object", "required": ["job_type_id"],
                   "properties": {"job_type_id": INT, "job_data": ref("JobData")}},
        "WorkspaceCreate": {"type": "object", "additionalProperties": False,
                            "required": ["name"], "properties": {
                                "name": {**STRING, "pattern": "^[A-Za-z0-9_-]{1,50}$"},
                                "title": NULLABLE_TEXT, "description": NULLABLE_TEXT,
                                "base_path": {**NULLABLE_TEXT, "description": (
                                    "Absolute folder; default DATA_DIR/workspaces/NAME")}}},
        "RequeueJobs": {"type": "object", "properties": {
            "started": {**STRING, "description": "ISO-8601 datetime or duration"},
            "ended": {**STRING, "description": "ISO-8601 datetime or duration"},
            "status": {"anyOf": [JOB_STATUS, array(JOB_STATUS)]},
            "job_ids": array(INT), "job_type_ids": array(INT),
            "job_type_names": STRINGS_OR_ONE, "job_type_categories": STRINGS_OR_ONE,
            "priority": nullable(INT)}},
    }


# -- parameters ------------------------------------------------------------------------------

def query(name: str, schema: dict, description: str, repeat: bool = False) -> dict:
    """An optional query parameter; an empty value (`?page=`) counts as leaving it out."""
    param = {"name": name, "in": "query", "required": False, "allowEmptyValue": True,
             "description": description}
    if repeat:
        param.update(schema=array(schema), style="form", explode=True)
    else:
        param["schema"] = schema
    return param


def order_choices(fields) -> list[str]:
    """Every spelling `order` takes: Scale's `a__b` paths, dotted ones, `-` for descending."""
    names = sorted({spelling for f in fields for spelling in (f, f.replace("__", "."))})
    return names + [f"-{n}" for n in names]


TIME_RANGE = ("ISO-8601 datetime with a time zone (2015-01-01T00:00:00Z) or a duration back "
              "from now (PT3H0M0S)")


def parameters() -> dict:
    return {
        "id": {"name": "id", "in": "path", "required": True,
               "schema": {**INT, "minimum": 0, "maximum": 10**18 - 1}},
        "page": query("page", {**INT, "minimum": 1, "default": 1}, "The page to return"),
        "page_size": query("page_size", {**INT, "minimum": 1, "maximum": MAX_PAGE_SIZE,
                                         "default": 100}, "Results per page"),
        "started": query("started", STRING, f"Start of the time range: {TIME_RANGE}"),
        "ended": query("ended", STRING, f"End of the time range: {TIME_RANGE}"),
        "job_order": query("order", {"enum": order_choices(JOB_ORDER_FIELDS)},
                           "Fields to sort by, in turn; `-` sorts descending", repeat=True),
        "exe_order": query("order", {"enum": order_choices(EXE_ORDER_FIELDS)},
                           "Fields to sort by, in turn; `-` sorts descending", repeat=True),
        "job_type_order": query("order", {"enum": order_choices(JobTypeStore.ORDER_FIELDS)},
                                "Fields to sort by, in turn; `-` sorts descending",
                                repeat=True),
        "job_status": query("status", JOB_STATUS, "Jobs with any of these statuses",
                            repeat=True),
        "exe_status": query("status", EXE_STATUS, "Executions with any of these statuses",
                            repeat=True),
        "job_id": query("job_id", INT, "Jobs with any of these ids", repeat=True),
        "job_type_id": query("job_type_id", INT, "Any of these job type ids", repeat=True),
        "job_type_name": query("job_type_name", STRING, "Any of these job type names",
                               repeat=True),
        "job_type_category": query("job_type_category", STRING,
                                   "Any of these job type categories", repeat=True),
        "node_id": query("node_id", INT, "Executions on any of these nodes", repeat=True),
        "name": query("name", STRING, "Job types with any of these names", repeat=True),
        "product_order": query("order", {"enum": ["last_modified", "-last_modified"]},
                               "Newest first with `-`", repeat=True),
        "file_name": query("file_name", STRING, "Products with this file name"),
        "category": query("category", STRING, "Job types in any of these categories",
                          repeat=True),
    }


def params(*names: str) -> list[dict]:
    return [{"$ref": f"#/components/parameters/{name}"} for name in names]


PAGING = ("page", "page_size")
JOB_FILTERS = ("started", "ended", "job_order", "job_status", "job_id", "job_type_id",
               "job_type_name", "job_type_category", *PAGING)

# -- responses -------------------------------------------------------------------------------

PLAIN = {"text/plain": {"schema": STRING}}
ERROR_RESPONSES = {
    "BadRequest": "A client mistake: the one-line message names the parameter or field",
    "NotFound": "No such record, or a page past the last one",
    "UnsupportedMediaType": "The body is not JSON; send Content-Type: application/json",
    "StoreUnavailable": "The job store cannot be reached, or cannot write (a full disk; the "
                        "message says why); try again after Retry-After",
    "Unauthorized": "No valid credentials: send 'Authorization: Bearer <token>'",
    "Forbidden": "Changes need the operator role",
    "PayloadTooLarge": "The body is over max_body_kb (max_upload_mb for uploads)",
}
PUBLIC_PATHS = ("/health", "/metrics", "/openapi.json")


def json_response(description: str, schema: str, headers: dict | None = None) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": ref(schema)}}}
    if headers:
        response["headers"] = headers
    return response


def errors(*names: str) -> dict:
    codes = {"BadRequest": "400", "NotFound": "404", "UnsupportedMediaType": "415",
             "StoreUnavailable": "503", "Unauthorized": "401", "Forbidden": "403",
             "PayloadTooLarge": "413"}
    return {codes[name]: {"$ref": f"#/components/responses/{name}"} for name in names}


def operation(summary: str, responses: dict, parameters=(), body: str | None = None,
              tags=()) -> dict:
    op = {"summary": summary, "responses": responses}
    if parameters:
        op["parameters"] = list(parameters)
    if body:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": ref(body)}}}
    if tags:
        op["tags"] = list(tags)
    return op


def location(description: str) -> dict:
    return {"Location": {"description": description, "schema": STRING}}


def paths() -> dict:
    listing = ("BadRequest", "NotFound", "StoreUnavailable")
    editing = ("BadRequest", "NotFound", "UnsupportedMediaType", "StoreUnavailable")
    jobs, types, exes, queue, ops = ("Jobs",), ("Job types",), ("Job executions",), \
        ("Queue",), ("Operations",)
    return {
        "/jobs/": {"get": operation(
            "All jobs, filtered on last_modified", tags=jobs,
            parameters=params(*JOB_FILTERS),
            responses={"200": json_response("A page of jobs", "JobPage"), **errors(*listing)})},
        "/jobs/{id}/": {
            "parameters": params("id"),
            "get": operation("A job with its executions, inputs and outputs", tags=jobs,
                             responses={"200": json_response("The job", "JobDetails"),
                                        **errors("NotFound", "StoreUnavailable")}),
            "patch": operation(
                "Cancel a job (and its unfinished execution)", tags=jobs, body="JobCancel",
                responses={"200": json_response("The canceled job", "JobDetails"),
                           **errors(*editing)}),
        },
        "/jobs/updates/": {"get": operation(
            "Jobs whose status changed in the range, with their input files", tags=jobs,
            parameters=params(*JOB_FILTERS),
            responses={"200": json_response("A page of job updates", "JobUpdatePage"),
                       **errors(*listing)})},
        "/jobs/executions/": {"get": operation(
            "Jobs with their newest execution", tags=jobs, parameters=params(*JOB_FILTERS),
            responses={"200": json_response("A page of jobs", "JobWithExecutionPage"),
                       **errors(*listing)})},
        "/job-types/": {
            "get": operation(
                "Job types, filtered on last_modified", tags=types,
                parameters=params("started", "ended", "name", "category", "job_type_order",
                                  *PAGING),
                responses={"200": json_response("A page of job types", "JobTypePage"),
                           **errors(*listing)}),
            "post": operation(
                "Create a job type", tags=types, body="JobTypeCreate",
                responses={"201": json_response("The new job type", "JobTypeDetails",
                                                location("/job-types/{id}/")),
                           **errors("BadRequest", "UnsupportedMediaType",
                                    "StoreUnavailable")}),
        },
        "/job-types/{id}/": {
            "parameters": params("id"),
            "get": operation("A job type with its interface, errors and job counts",
                             tags=types,
                             responses={"200": json_response("The job type", "JobTypeDetails"),
                                        **errors("NotFound", "StoreUnavailable")}),
            "patch": operation(
                "Edit a job type", tags=types, body="JobTypeEdit",
                responses={"200": json_response("The edited job type", "JobTypeDetails"),
                           **errors(*editing)}),
        },
        "/job-executions/": {"get": operation(
            "Job executions, filtered on their last_modified", tags=exes,
            parameters=params("started", "ended", "exe_order", "exe_status", "job_type_id",
                              "job_type_name", "job_type_category", "node_id", *PAGING),
            responses={"200": json_response("A page of executions", "JobExecutionPage"),
                       **errors(*listing)})},
        "/job-executions/{id}/": {
            "parameters": params("id"),
            "get": operation("An execution with its job, node and error", tags=exes,
                             responses={"200": json_response("The execution",
                                                             "JobExecutionDetails"),
                                        **errors("NotFound", "StoreUnavailable")}),
        },
        "/queue/new-job/": {"post": operation(
            "Submit a job: it is QUEUED at once with one QUEUED execution", tags=queue,
            body="NewJob",
            responses={"201": json_response("The new job", "JobDetails",
                                            location("/job-executions/{exe_id}/")),
                       **errors("BadRequest", "NotFound", "UnsupportedMediaType",
                                "StoreUnavailable")})},
        "/queue/status/": {"get": operation(
            "Queued jobs per job type", tags=queue,
            responses={"200": json_response("The queue", "QueueStatus"),
                       **errors("StoreUnavailable")})},
        "/queue/requeue-jobs/": {"post": operation(
            "Requeue the FAILED and CANCELED jobs among those the filters match", tags=queue,
            body="RequeueJobs", parameters=params(*PAGING),
            responses={"200": json_response("A page of the matched jobs", "JobPage"),
                       **errors("BadRequest", "NotFound", "UnsupportedMediaType",
                                "StoreUnavailable")})},
        "/errors/": {"get": operation(
            "The errors jobs can fail with", tags=("Errors",), parameters=params(*PAGING),
            responses={"200": json_response("A page of errors", "ErrorPage"),
                       **errors(*listing)})},
        "/errors/{id}/": {
            "parameters": params("id"),
            "get": operation("An error", tags=("Errors",),
                             responses={"200": json_response("The error", "Error"),
                                        **errors("NotFound", "StoreUnavailable")}),
        },
        **engine_paths(),
        "/ws/jobs/updates/": {"get": operation(
            "WebSocket: /jobs/updates/ pages pushed as job statuses change", tags=jobs,
            parameters=params("started", "job_status", "job_id", "job_type_id",
                              "job_type_name", "job_type_category"),
            responses={
                "101": {"description": "Upgraded; every text message is a JobUpdatePage "
                                       "(matching updates since `started` first, then live "
                                       "ones). Clients de-duplicate on id + last_status_change.",
                        "x-message-schema": ref("JobUpdatePage")},
                "400": {"description": "A bad filter (text/plain), or not a WebSocket upgrade "
                                       "request (Tornado's text/html line)",
                        "content": {**PLAIN, "text/html": {"schema": STRING}}},
                **errors("StoreUnavailable")})},
        "/health": {"get": operation(
            "Store reachability, for monitoring", tags=ops,
            responses={"200": json_response("The store answers", "Health"),
                       "503": json_response("The store does not answer", "Health")})},
        "/metrics": {"get": operation(
            "Prometheus metrics: request latency by handler, method and status; the live "
            "feed's lag and restarts", tags=ops,
            responses={"200": {"description": "Prometheus text exposition format",
                               "content": {"text/plain": {"schema": STRING}}}})},
        "/openapi.json": {"get": operation(
            "This document", tags=ops,
            responses={"200": {"description": "OpenAPI 3.1",
                               "content": {"application/json": {"schema": JSON_OBJECT}}}})},
    }


UPLOAD_FIELDS = {
    "workspace_id": {**INT, "description": "The workspace to store the file in (required)"},
    "file_name": {**STRING, "description": "A plain name without folders (required for a raw "
                                           "body; a form defaults to the part's file name)"},
    "media_type": {**STRING, "description": "Default: guessed from file_name"},
}


def engine_paths() -> dict:
    """Workspaces, files, products, nodes and execution logs (the job engine's endpoints)."""
    engine, files = ("Engine",), ("Files",)
    one_file = {"oneOf": [ref("ScaleFile"), ref("ProductFile")]}
    return {
        "/workspaces/": {
            "get": operation("Workspaces", tags=files, parameters=params(*PAGING),
                             responses={"200": json_response("A page of workspaces",
                                                             "WorkspacePage"),
                                        **errors("BadRequest", "NotFound", "StoreUnavailable")}),
            "post": operation(
                "Create a workspace (a folder files are stored in)", tags=files,
                body="WorkspaceCreate",
                responses={"201": json_response("The new workspace", "WorkspaceDetails",
                                                location("/workspaces/{id}/")),
                           **errors("BadRequest", "UnsupportedMediaType", "StoreUnavailable")}),
        },
        "/workspaces/{id}/": {
            "parameters": params("id"),
            "get": operation("A workspace", tags=files,
                             responses={"200": json_response("The workspace",
                                                             "WorkspaceDetails"),
                                        **errors("NotFound", "StoreUnavailable")}),
        },
        "/files/": {"post": operation(
            "Upload a file: the raw body with the fields as query parameters, or a multipart "
            "form with one file part and the fields", tags=files,
            parameters=[query(name, schema, schema["description"])
                        for name, schema in UPLOAD_FIELDS.items()],
            responses={"201": {"description": "The stored file",
                               "headers": location("/files/{id}/"),
                               "content": {"application/json": {"schema": ref("ScaleFile")}}},
                       **errors("BadRequest", "StoreUnavailable")}) | {"requestBody": {
                "required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["file"],
                        "properties": {"file": {"type": "string",
                                                "contentMediaType": "application/octet-stream"},
                                       **UPLOAD_FIELDS}}},
                    "*/*": {"schema": {"type": "string",
                                       "contentMediaType": "application/octet-stream"}}}}}},
        "/files/{id}/": {
            "parameters": params("id"),
            "get": operation("A file (a product carries its job fields too)", tags=files,
                             responses={"200": {"description": "The file", "content": {
                                 "application/json": {"schema": one_file}}},
                                 **errors("NotFound", "StoreUnavailable")}),
        },
        "/files/{id}/download/": {
            "parameters": params("id"),
            "get": operation("The file's bytes, with its media type", tags=files,
                             responses={"200": {"description": "The bytes", "content": {
                                 "*/*": {"schema": {"type": "string",
                                                    "contentMediaType":
                                                        "application/octet-stream"}}}},
                                 **errors("NotFound", "StoreUnavailable")}),
        },
        "/products/": {"get": operation(
            "Files written by jobs, filtered on last_modified", tags=files,
            parameters=params("started", "ended", "product_order", "job_type_id",
                              "job_type_name", "job_type_category", "file_name", *PAGING),
            responses={"200": json_response("A page of products", "ProductFilePage"),
                       **errors("BadRequest", "NotFound", "StoreUnavailable")})},
        "/nodes/": {"get": operation(
            "The machines that run jobs", tags=engine, parameters=params(*PAGING),
            responses={"200": json_response("A page of nodes", "NodeStatusPage"),
                       **errors("BadRequest", "NotFound", "StoreUnavailable")})},
        "/nodes/{id}/": {
            "parameters": params("id"),
            "get": operation("A node", tags=engine,
                             responses={"200": json_response("The node", "NodeStatus"),
                                        **errors("NotFound", "StoreUnavailable")}),
            "patch": operation(
                "Pause a node (it starts no new executions) or resume it", tags=engine,
                body="NodePause",
                responses={"200": json_response("The node", "NodeStatus"),
                           **errors("BadRequest", "NotFound", "UnsupportedMediaType",
                                    "StoreUnavailable")}),
        },
        "/job-executions/{id}/logs/": {
            "parameters": params("id"),
            "get": operation("An execution's stdout and stderr", tags=("Job executions",),
                             responses={"200": json_response("The execution and its logs",
                                                             "JobExecutionLog"),
                                        **errors("NotFound", "StoreUnavailable")}),
        },
    }


def with_common_answers(all_paths: dict) -> dict:
    """Answers any operation can give: 400 past max_query_values, 413 for a body past its limit,
    401 without credentials and 403 for a viewer's change (PUBLIC_PATHS need none)."""
    for path, item in all_paths.items():
        for method, op in item.items():
            if method == "parameters":
                continue
            names = ["BadRequest"]
            if method in ("post", "patch"):
                names.append("PayloadTooLarge")
            if path in PUBLIC_PATHS:
                op["security"] = []
            else:
                names += ["Unauthorized", "Forbidden"] if method != "get" else ["Unauthorized"]
            op["responses"] = {**errors(*names), **op["responses"]}
    return all_paths


@functools.cache
def document_text() -> str:
    """The document without `servers`, serialized once per process."""
    return json.dumps({
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "NGA Scale's Job Services API on MongoDB. Errors are one "
                                "text/plain line; datetimes are UTC with milliseconds."},
        "paths": with_common_answers(paths()),
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas(),
            "parameters": parameters(),
            "responses": {name: {"description": text, "content": PLAIN}
                          for name, text in ERROR_RESPONSES.items()}
            | {"Unauthorized": {"description": ERROR_RESPONSES["Unauthorized"],
                                "content": PLAIN, "headers": {"WWW-Authenticate": {
                                    "description": 'Bearer realm="jobdeck"',
                                    "schema": STRING}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })


def document(server_url: str) -> dict:
    """The OpenAPI document whose server is `server_url`."""
    return {**json.loads(document_text()), "servers": [{"url": server_url}]}


class OpenAPIHandler(BaseHandler):
    def get(self):
        self.write_json(document(self.base_url))
