"""/job-types/ and /job-types/{id}/: create, list, read and edit job types."""

from core.interface import (
    InvalidErrorMapping,
    InvalidInterface,
    validate_error_mapping,
    validate_interface,
)
from core.model import JOB_TYPE_EDITABLE, JOB_TYPE_IGNORED
from core.text import control_character, escaped, is_http_url
from core.times import now_ms
from handlers.base import BaseHandler
from presentation.errors import APIError, sentence
from presentation.serializers import job_type_details, job_type_full
from store.job_types import JobTypeExists, JobTypeStore
from store.writes import Unstorable

NUMBER_FIELDS = {"priority": int, "timeout": int, "max_tries": int, "max_scheduled": int,
                 "cpus_required": float, "mem_required": float,
                 "disk_out_const_required": float, "disk_out_mult_required": float}
BOOL_FIELDS = ("is_operational", "is_paused", "docker_privileged")
TEXT_FIELDS = ("title", "description", "category", "author_name", "author_url", "icon_code",
               "docker_image")
MULTILINE_FIELDS = ("description",)
POSITIVE = ("timeout", "max_tries", "cpus_required", "mem_required")
NOT_NEGATIVE = ("max_scheduled", "disk_out_const_required", "disk_out_mult_required")
HOUR_MS = 3600 * 1000


def check_fields(body: dict) -> dict:
    """The editable fields of a job type body, type-checked; unknown fields are a 400."""
    unknown = sorted(set(body) - set(JOB_TYPE_EDITABLE) - set(JOB_TYPE_IGNORED)
                     - {"name", "version", "interface", "trigger_rule"})
    if unknown:
        raise APIError(400, f"Unknown job type fields: {', '.join(unknown)}")
    if body.get("trigger_rule") is not None:
        raise APIError(400, "trigger_rule is not supported: jobs are submitted through "
                            "POST /queue/new-job/")
    fields = {}
    for name in JOB_TYPE_EDITABLE:
        if name not in body or name == "error_mapping":
            continue
        value = body[name]
        if name in NUMBER_FIELDS:
            value = checked_number(name, value)
        elif name in BOOL_FIELDS and not isinstance(value, bool):
            raise APIError(400, f"{name} must be true or false")
        elif name in TEXT_FIELDS and value is not None:
            if not isinstance(value, str):
                raise APIError(400, f"{name} must be a string")
            check_text(name, value)
        fields[name] = value
    return fields


def check_text(name: str, value: str) -> None:
    """A 400 for a control character in a name (the description may hold tabs and line ends)
    and for an author_url that is not an http(s) URL: the dashboard links to it."""
    if name == "author_url" and not is_http_url(value):
        raise APIError(400, f"author_url must be an http:// or https:// URL, not "
                            f"{value[:200]!r}")
    multiline = name in MULTILINE_FIELDS
    found = control_character(value, multiline=multiline)
    if found:
        raise APIError(400, f"{name} holds a control character ({found})"
                            + ("" if multiline else "; names must be printable text"))


def checked_number(name: str, value):
    """A NUMBER_FIELDS value as its kind (int or float), in its range; None only for
    max_scheduled (no limit)."""
    kind = NUMBER_FIELDS[name]
    ok = (value is None and name == "max_scheduled") or (
        isinstance(value, int | float) and not isinstance(value, bool)
        and (kind is float or float(value).is_integer()) and abs(value) < 2**53)
    if not ok:
        raise APIError(400, f"{name} must be {'an integer' if kind is int else 'a number'}")
    if value is None:
        return None
    value = kind(value)
    if name in POSITIVE and value <= 0:
        raise APIError(400, f"{name} must be greater than zero")
    if name in NOT_NEGATIVE and value < 0:
        raise APIError(400, f"{name} must not be negative")
    return value


class JobTypeView(BaseHandler):
    async def details(self, job_type: dict) -> dict:
        errors = await self._errors_for(job_type)
        now = now_ms()
        counts = {f"job_counts_{h}h": await self.store.job_types.job_counts(
            job_type["id"], now - h * HOUR_MS) for h in (6, 12, 24)}
        return job_type_details(job_type, errors, counts)

    async def _errors_for(self, job_type: dict) -> list[dict]:
        names = set(job_type["error_mapping"].get("exit_codes", {}).values())
        if not names:
            return []
        return await self.store.errors.by_names(names)

    async def checked_mapping(self, body: dict) -> dict | None:
        if "error_mapping" not in body:
            return None
        if not isinstance(body["error_mapping"], dict):
            raise APIError(400, "error_mapping must be a JSON object")
        try:
            return validate_error_mapping(body["error_mapping"], await self.store.errors.names())
        except InvalidErrorMapping as exc:
            raise APIError(400, f"Job type error mapping invalid: {exc}") from None

    @staticmethod
    def checked_interface(body: dict) -> dict | None:
        if "interface" not in body:
            return None
        if not isinstance(body["interface"], dict):
            raise APIError(400, "interface must be a JSON object")
        try:
            return validate_interface(body["interface"])
        except InvalidInterface as exc:
            raise APIError(400, f"Job type interface invalid: {exc}") from None


class JobTypesHandler(JobTypeView):
    async def get(self):
        started, ended = self.parse_time_range()
        order = self.parse_order({f: f for f in JobTypeStore.ORDER_FIELDS},
                                 (("last_modified", 1), ("id", 1)))
        page, page_size = self.parse_page()
        count, rows = await self.store.job_types.list_job_types(
            self.query_strings("name"), self.query_strings("category"), started, ended, order,
            page, page_size)
        self.write_page(count, [job_type_full(r) for r in rows], page, page_size)

    async def post(self):
        body = self.json_body()
        for name in ("name", "version", "interface"):
            if name not in body:
                raise APIError(400, f'Missing required parameter: "{name}"')
        for name in ("name", "version"):
            if not isinstance(body[name], str) or not body[name].strip():
                raise APIError(400, f"{name} must be a non-empty string")
            check_text(name, body[name])
        fields = check_fields(body)
        interface = self.checked_interface(body)
        mapping = await self.checked_mapping(body)
        if mapping is not None:
            fields["error_mapping"] = mapping
        try:
            job_type = await self.store.job_types.create(body["name"], body["version"],
                                                         interface, fields)
        except JobTypeExists as exc:
            raise APIError(400, sentence(str(exc))) from None
        except Unstorable as exc:
            raise APIError(400, f"The job type cannot be stored: {escaped(str(exc))}") from None
        self.set_header("Location", f"/job-types/{job_type['id']}/")
        self.write_json(await self.details(job_type), status=201)


class JobTypeDetailsHandler(JobTypeView):
    async def _load(self, type_id: str) -> dict:
        job_type = await self.store.job_types.get(int(type_id))
        if job_type is None:
            raise APIError(404, f"Job type {type_id} does not exist")
        return job_type

    async def get(self, type_id):
        self.write_json(await self.details(await self._load(type_id)))

    async def patch(self, type_id):
        job_type = await self._load(type_id)
        body = self.json_body()
        fixed = sorted(k for k in ("name", "version") if k in body and body[k] != job_type[k])
        if fixed:
            raise APIError(400, f"{', '.join(fixed)} cannot be changed; create a new job type")
        fields = check_fields(body)
        interface = self.checked_interface(body)
        mapping = await self.checked_mapping(body)
        if mapping is not None:
            fields["error_mapping"] = mapping
        try:
            job_type = await self.store.job_types.update(job_type, fields, interface)
        except Unstorable as exc:
            raise APIError(400, f"The job type cannot be stored: {escaped(str(exc))}") from None
        self.write_json(await self.details(job_type))
