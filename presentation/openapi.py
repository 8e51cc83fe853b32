"""The OpenAPI 3.1 document of the JSON API (served by handlers/openapi.py).

Its response schemas are the models of presentation/models.py, each a closed object
(`additionalProperties: false`, every field required) so a test can hold real responses to it;
request bodies, parameters and paths are written here. Whoever adds a JSON route adds its path
here; tests/api/test_openapi.py fails until they do.
"""

import copy
import functools
import json

from core.interface import ERROR_MAPPING_SCHEMA, INTERFACE_SCHEMA, JOB_DATA_SCHEMA
from core.model import JobStatus
from core.text import HTTP_URL_PATTERN
from presentation import models as m
from presentation.filters import MAX_PAGE_SIZE
from presentation.models import (
    BOOL,
    EXE_STATUS,
    INT,
    JOB_STATUS,
    JSON_OBJECT,
    NULLABLE_TEXT,
    NUMBER,
    RESOURCE_FLOOR_CPUS,
    RESOURCE_FLOOR_MEM,
    STRING,
    array,
    closed,
    nullable,
    ref,
)
from store.job_types import JobTypeStore
from store.jobs import EXE_ORDER_FIELDS, JOB_ORDER_FIELDS

TITLE = "Jobdeck Job Services API"
VERSION = "1.0"


# -- schemas -----------------------------------------------------------------------------------

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


def schemas() -> dict:
    """Every component schema: the response models, the job interface, error mapping and job
    data schemas of core/interface.py, and the request bodies."""
    return {
        **{model.name: model.schema() for model in m.COMPONENTS},
        **lifted(INTERFACE_SCHEMA, "JobInterface"),
        **lifted(ERROR_MAPPING_SCHEMA, "ErrorMapping"),
        **lifted(JOB_DATA_SCHEMA, "JobData"),
        **request_schemas(),
    }


EDITABLE_JOB_TYPE_FIELDS = {
    "title": NULLABLE_TEXT, "description": NULLABLE_TEXT, "category": NULLABLE_TEXT,
    "author_name": NULLABLE_TEXT,
    "author_url": nullable({**STRING, "pattern": HTTP_URL_PATTERN,
                            "description": "An http:// or https:// URL"}),
    "icon_code": NULLABLE_TEXT,
    "docker_image": NULLABLE_TEXT, "is_operational": BOOL, "is_paused": BOOL,
    "docker_privileged": BOOL, "priority": INT, "max_scheduled": nullable({**INT, "minimum": 0}),
    "timeout": {**INT, "minimum": 1}, "max_tries": {**INT, "minimum": 1},
    "cpus_required": {**NUMBER, "exclusiveMinimum": 0, "description": RESOURCE_FLOOR_CPUS},
    "mem_required": {**NUMBER, "exclusiveMinimum": 0, "description": RESOURCE_FLOOR_MEM},
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
        "JobCancel": closed({"status": {"const": JobStatus.CANCELED}}),
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
                                    "Absolute folder in one of the workspace_roots (default: "
                                    "DATA_DIR); default DATA_DIR/workspaces/NAME")}}},
        "RequeueJobs": requeue_jobs(),
    }


def requeue_jobs() -> dict:
    fields = {
        "started": {**STRING, "description": "ISO-8601 datetime or duration"},
        "ended": {**STRING, "description": "ISO-8601 datetime or duration"},
        "status": {"anyOf": [JOB_STATUS, array(JOB_STATUS)]},
        "job_ids": array(INT), "job_type_ids": array(INT),
        "job_type_names": STRINGS_OR_ONE, "job_type_categories": STRINGS_OR_ONE,
        "priority": nullable(INT)}
    return {"type": "object", "additionalProperties": False, "properties": fields,
            "description": "Unknown fields are a 400"}


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
    "InsufficientStorage": "The upload cannot be written to disk (full, or refused); the "
                           "message names the cause",
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
             "PayloadTooLarge": "413", "InsufficientStorage": "507"}
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
        "/jobs/series/": {"get": operation(
            "Finished jobs, queue depth and running jobs over time (the overview's charts)",
            tags=jobs, parameters=[query("range", {"enum": list(m.SERIES_RANGES),
                                                   "default": "1h"},
                                         "How far back: 1 hour (1-minute intervals), 24 hours "
                                         "(30 minutes) or 7 days (3 hours)")],
            responses={"200": json_response("The series", "JobSeries"),
                       **errors("BadRequest", "StoreUnavailable")})},
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
            responses={"201": json_response(
                "The new job. As in Scale, Location is the new execution "
                "(/job-executions/{exe_id}/); Content-Location is the job the body shows "
                "(/jobs/{id}/)", "JobDetails",
                {**location("/job-executions/{exe_id}/: the job's first execution"),
                 "Content-Location": {"description": "/jobs/{id}/: the job in the body",
                                      "schema": STRING}}),
                       **errors("BadRequest", "NotFound", "UnsupportedMediaType",
                                "StoreUnavailable")})},
        "/queue/status/": {"get": operation(
            "Queued jobs per job type", tags=queue,
            responses={"200": json_response("The queue", "QueueStatus"),
                       **errors("StoreUnavailable")})},
        "/queue/requeue-jobs/": {"post": operation(
            "Requeue the FAILED and CANCELED jobs among those the filters match", tags=queue,
            body="RequeueJobs", parameters=params(*PAGING),
            responses={"200": json_response(
                "A page of the matched jobs, as they are after the requeue", "JobPage",
                {name: {"description": text, "schema": {**STRING, "pattern": "^[0-9]+$"}}
                 for name, text in m.REQUEUE_HEADERS.items()}),
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
    "media_type": {**STRING, "description": "An RFC 6838 type/subtype, optionally with "
                                            "'; name=value' parameters. Default: guessed "
                                            "from file_name"},
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
                       **errors("BadRequest", "InsufficientStorage", "StoreUnavailable")})
            | {"requestBody": {
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
            "get": operation("The file's bytes as an attachment (CSP sandbox, nosniff); served "
                             "as its media type when that is a passive one (text/plain, "
                             "image/png, ...), else as application/octet-stream", tags=files,
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
                "Pause a node (it starts no new executions; a Slurm node is drained in Slurm, "
                "503 when Slurm refuses) or resume it", tags=engine,
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
        **{f"/job-executions/{{id}}/logs/{stream}/": {
            "parameters": params("id"),
            "get": operation(f"The execution's whole {stream} as raw text, an attachment "
                             "(CSP sandbox, nosniff); while it runs, as far as it is written",
                             tags=("Job executions",),
                             responses={"200": {"description": f"The {stream} log",
                                                "content": {"text/plain": {"schema": STRING}}},
                                        **errors("NotFound", "StoreUnavailable")}),
        } for stream in ("stdout", "stderr")},
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
