"""/queue/new-job/, /queue/status/, /queue/requeue-jobs/: putting jobs on the queue."""

import math

from core.interface import (
    InvalidJobData,
    referenced_file_ids,
    referenced_workspace_ids,
    validate_job_data,
)
from core.model import JOB_STATUSES, REQUEUEABLE_JOB_STATUSES
from core.text import escaped
from core.times import parse_instant
from handlers.base import BaseHandler
from presentation.errors import APIError
from presentation.filters import check_int64
from presentation.models import MATCHED_HEADER, REQUEUE_FIELDS, REQUEUED_HEADER
from presentation.serializers import Serializer, queue_status
from store.jobs import JobFilter
from store.writes import Unstorable

MAX_REQUEUE = 10_000


def wake_engine(handler: BaseHandler) -> None:
    """Start new work at once instead of at the engine's next poll (when one runs here)."""
    engine = handler.settings.get("engine")
    if engine is not None:
        engine.wake()


class NewJobHandler(BaseHandler):
    async def post(self):
        body = self.json_body()
        if "job_type_id" not in body:
            raise APIError(400, 'Missing required parameter: "job_type_id"')
        type_id = body["job_type_id"]
        if not isinstance(type_id, int) or isinstance(type_id, bool):
            raise APIError(400, f'Parameter must be an integer: "job_type_id" (got {type_id!r})')
        check_int64("job_type_id", type_id)
        data = body.get("job_data", {})
        if not isinstance(data, dict):
            raise APIError(400, 'Parameter must be a valid JSON object: "job_data"')
        # Through this process's cache: a job type another server process deactivates is
        # refused here within JobTypeStore.CACHE_SECONDS.
        job_type = await self.store.job_types.cached(type_id)
        if job_type is None:
            raise APIError(404, f"Job type {type_id} does not exist")
        if not job_type["is_active"]:
            raise APIError(400, f"Job type {type_id} is no longer active")
        file_ids = referenced_file_ids(data)
        for file_id in file_ids:
            check_int64("file_id", file_id)
        files = await self.store.files.files_by_ids(file_ids)
        try:
            data = validate_job_data(job_type["interface"], data, files)
        except InvalidJobData as exc:
            raise APIError(400, f"Invalid job data: {exc}") from None
        await self._check_workspaces(data)
        job, exe = await self._submit(job_type, data, files)
        wake_engine(self)
        # Scale's Location is the new execution; the body is the job, which Content-Location
        # names (RFC 9110 §8.7), so a client can follow either.
        self.set_header("Location", f"/job-executions/{exe['id']}/")
        self.set_header("Content-Location", f"/jobs/{job['id']}/")
        self.write_json(await Serializer(self.store, self.base_url).job_details(
            job, exes=[exe], inputs=files), status=201)

    async def _check_workspaces(self, data: dict) -> None:
        """The workspaces the job data names exist (workspaces are never removed)."""
        workspace_ids = sorted(referenced_workspace_ids(data))
        for workspace_id in workspace_ids:
            check_int64("workspace_id", workspace_id)
        known = await self.store.files.cached_workspaces(workspace_ids)
        for workspace_id in workspace_ids:
            if workspace_id not in known:
                raise APIError(400, f"Invalid job data: workspace {workspace_id} does not exist")

    async def _submit(self, job_type: dict, data: dict, files: dict) -> tuple[dict, dict]:
        """The job and its execution, written whole or not at all (store/jobs.py)."""
        disk_in = math.ceil(sum(f["file_size"] for f in files.values()) / (1024 * 1024))
        try:
            return await self.store.jobs.submit_user_job(
                job_type, data, job_type["interface"]["command_arguments"],
                input_file_ids=files.keys(), disk_in_mb=disk_in)
        except Unstorable as exc:
            raise APIError(400, f"The job cannot be stored: {escaped(str(exc))}") from None


class QueueStatusHandler(BaseHandler):
    async def get(self):
        self.write_json(queue_status(await self.store.jobs.queue_status()))


class RequeueJobsHandler(BaseHandler):
    """Requeue the FAILED and CANCELED jobs among those the filters match (Scale's semantics).
    The body is Scale's page of the matched jobs; the REQUEUE_HEADERS say how many matched and
    how many were requeued."""

    async def post(self):
        body = self.json_body()
        unknown = sorted(set(body) - set(REQUEUE_FIELDS))
        if unknown:
            raise APIError(400, f"Unknown fields: {', '.join(unknown)}; the fields are "
                                f"{', '.join(REQUEUE_FIELDS)}")
        flt = self._filter(body)
        priority = self._priority(body)
        page, page_size = self.parse_page()
        count, matched = await self.store.jobs.list_jobs(
            flt, [("id", 1)], 1, MAX_REQUEUE + 1, {"id": 1, "status": 1})
        if count == 0:
            raise APIError(404, "No jobs match the given filters")
        if count > MAX_REQUEUE:
            raise APIError(400, f"{count} jobs match; narrow the filters to at most {MAX_REQUEUE}")
        requeued = 0
        for job in matched:
            if job["status"] in REQUEUEABLE_JOB_STATUSES and await self.store.jobs.requeue_job(
                    job["id"], priority=priority, command_arguments=await self._arguments(job)):
                requeued += 1
        wake_engine(self)
        self.set_header(MATCHED_HEADER, str(count))
        self.set_header(REQUEUED_HEADER, str(requeued))
        ids = JobFilter(job_ids=[j["id"] for j in matched])
        count, jobs = await self.store.jobs.list_jobs(ids, [("id", 1)], page, page_size,
                                                      {"data": 0, "results": 0})
        self.write_page(count, await Serializer(self.store, self.base_url).job_rows(jobs), page,
                        page_size)

    def _filter(self, body: dict) -> JobFilter:
        flt = JobFilter(
            statuses=self._strings(body, "status", JOB_STATUSES),
            job_ids=self._ints(body, "job_ids"), job_type_ids=self._ints(body, "job_type_ids"),
            job_type_names=self._strings(body, "job_type_names"),
            job_type_categories=self._strings(body, "job_type_categories"))
        if body.get("started") is not None:
            flt.started = self._instant(body, "started")
        if body.get("ended") is not None:
            flt.ended = self._instant(body, "ended")
        if flt.started is not None and flt.ended is not None and flt.started >= flt.ended:
            raise APIError(400, "started must be before ended")
        return flt

    @staticmethod
    def _instant(body: dict, name: str) -> int:
        if not isinstance(body[name], str):
            raise APIError(400, f"{name} must be an ISO-8601 string")
        try:
            return parse_instant(body[name])
        except ValueError as exc:
            raise APIError(400, f"{name}: {exc}") from None
        except OverflowError:
            raise APIError(400, f"{name}: '{body[name]}' reaches outside the calendar") from None

    @staticmethod
    def _priority(body: dict) -> int | None:
        priority = body.get("priority")
        if priority is None:
            return None
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise APIError(400, "priority must be an integer")
        return check_int64("priority", priority)

    async def _arguments(self, job: dict) -> str:
        full = await self.store.jobs.get_job(job["id"])
        rev = await self.store.job_types.get_revision(full["job_type_rev_id"])
        return rev["interface"]["command_arguments"]

    @staticmethod
    def _ints(body: dict, name: str) -> list[int]:
        values = body.get(name) or []
        if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise APIError(400, f"{name} must be a list of integers")
        for value in values:
            check_int64(name, value)
        return values

    @staticmethod
    def _strings(body: dict, name: str, choices=None) -> list[str]:
        values = body.get(name) or []
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise APIError(400, f"{name} must be a string or a list of strings")
        for value in values:
            if choices and value not in choices:
                raise APIError(400, f"{name} '{value}' is not valid; choose from "
                                    f"{', '.join(choices)}")
        return values
