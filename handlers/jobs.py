"""/jobs/, /jobs/{id}/, /jobs/updates/, /jobs/executions/: the Job Services API."""

from typing import ClassVar

from core.model import JOB_STATUSES
from handlers.base import APIError, BaseHandler, sentence
from presentation.serializers import Serializer
from store.jobs import JOB_ORDER_FIELDS, InvalidTransition, JobFilter, JobNotFound

LIST_PROJECTION = {"data": 0, "results": 0}


class JobListBase(BaseHandler):
    """Shared filters, order and paging; subclasses choose the time field and extra columns."""

    time_field = "last_modified"
    default_order = (("last_modified", 1), ("id", 1))
    extras: ClassVar[dict] = {}

    def job_filter(self) -> JobFilter:
        started, ended = self.parse_time_range()
        return JobFilter(
            statuses=self.query_choices("status", JOB_STATUSES),
            job_ids=self.query_ints("job_id"),
            job_type_ids=self.query_ints("job_type_id"),
            job_type_names=self.query_strings("job_type_name"),
            job_type_categories=self.query_strings("job_type_category"),
            started=started, ended=ended, time_field=self.time_field)

    async def get(self):
        flt = self.job_filter()
        order = self.parse_order(JOB_ORDER_FIELDS, self.default_order)
        page, page_size = self.parse_page()
        count, jobs = await self.store.jobs.list_jobs(flt, order, page, page_size, LIST_PROJECTION)
        rows = await Serializer(self.store, self.base_url).job_rows(jobs, **self.extras)
        self.write_page(count, rows, page, page_size)

    @property
    def base_url(self) -> str:
        return f"{self.request.protocol}://{self.request.host}"


class JobsHandler(JobListBase):
    pass


class JobUpdatesHandler(JobListBase):
    """Jobs whose status changed in the range, in `last_status_change` order."""

    time_field = "last_status_change"
    default_order = (("last_status_change", 1), ("id", 1))
    extras: ClassVar[dict] = {"input_files": True}


class JobExecutionsHandler(JobListBase):
    extras: ClassVar[dict] = {"latest_exe": True}


class JobDetailsHandler(JobListBase):
    async def get(self, job_id):
        job = await self.store.jobs.get_job(int(job_id))
        if job is None:
            raise APIError(404, f"Job {job_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).job_details(job))

    async def patch(self, job_id):
        body = self.json_body()
        unexpected = sorted(set(body) - {"status"})
        if unexpected:
            raise APIError(400, f"Unexpected fields: {', '.join(unexpected)}; only status may "
                                "be changed")
        if "status" not in body:
            raise APIError(400, 'Missing field "status"; send {"status": "CANCELED"}')
        if body["status"] != "CANCELED":
            raise APIError(400, f"status {json_repr(body['status'])} is not allowed; the only "
                                "change allowed is CANCELED")
        try:
            job = await self.store.jobs.cancel_job(int(job_id))
        except JobNotFound:
            raise APIError(404, f"Job {job_id} does not exist") from None
        except InvalidTransition as exc:
            raise APIError(400, sentence(str(exc))) from None
        self.write_json(await Serializer(self.store, self.base_url).job_details(job))


def json_repr(value) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)
