"""/jobs/, /jobs/{id}/, /jobs/updates/, /jobs/executions/: the Job Services API.

The three lists share JobListBase (each picks the time field `started` and `ended` apply to, and
its extra columns); the details handler stands beside them on BaseHandler."""

from typing import ClassVar

from core.model import JobStatus
from core.times import now_ms
from handlers.base import BaseHandler
from presentation.errors import APIError, sentence
from presentation.filters import job_filter, job_order
from presentation.models import SERIES_RANGES
from presentation.serializers import Serializer, job_series
from store.jobs import InvalidTransition, JobNotFound

LIST_PROJECTION = {"data": 0, "results": 0}
DEFAULT_SERIES_RANGE = "1h"


class JobListBase(BaseHandler):
    """GET a page of jobs: filters, order and paging as every job list reads them."""

    time_field = "last_modified"
    extras: ClassVar[dict] = {}

    async def get(self):
        flt = job_filter(self.get_query_arguments, self.time_field)
        order = job_order(self.get_query_arguments, self.time_field)
        page, page_size = self.parse_page()
        # Totals by status and job type from the kept counts: one store command beside the page
        # and the rows' files or executions (store/counts.py).
        count, jobs = await self.store.jobs.list_jobs(flt, order, page, page_size, LIST_PROJECTION,
                                                      kept_total=True)
        rows = await Serializer(self.store, self.base_url).job_rows(jobs, **self.extras)
        self.write_page(count, rows, page, page_size)


class JobsHandler(JobListBase):
    """Jobs, filtered on `last_modified` by `started` and `ended`."""


class JobUpdatesHandler(JobListBase):
    """Jobs whose status changed in the range, in `last_status_change` order."""

    time_field = "last_status_change"
    extras: ClassVar[dict] = {"input_files": True}


class JobExecutionsHandler(JobListBase):
    extras: ClassVar[dict] = {"latest_exe": True}


class JobDetailsHandler(BaseHandler):
    async def get(self, job_id):
        job = await self.store.jobs.get_job(int(job_id))
        if job is None:
            raise APIError(404, f"Job {job_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).job_details(
            job, cluster=await self.cluster_nodes()))

    async def patch(self, job_id):
        body = self.json_body()
        unexpected = sorted(set(body) - {"status"})
        if unexpected:
            raise APIError(400, f"Unexpected fields: {', '.join(unexpected)}; only status may "
                                "be changed")
        if "status" not in body:
            raise APIError(400, 'Missing field "status"; send {"status": "CANCELED"}')
        if body["status"] != JobStatus.CANCELED:
            raise APIError(400, f"status {json_repr(body['status'])} is not allowed; the only "
                                "change allowed is CANCELED")
        try:
            job, exe = await self.store.jobs.cancel_job_and_exe(int(job_id))
        except JobNotFound:
            raise APIError(404, f"Job {job_id} does not exist") from None
        except InvalidTransition as exc:
            raise APIError(400, sentence(str(exc))) from None
        # A job run once: its one execution is the one just canceled, not read again.
        exes = [exe] if exe is not None and job["num_exes"] == 1 else None
        self.write_json(await Serializer(self.store, self.base_url).job_details(job, exes=exes))


def json_repr(value) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


class JobSeriesHandler(BaseHandler):
    """The overview's time charts over `range` 1h, 24h or 7d: finished jobs, queue depth and
    running jobs per interval, from the per-minute figures of store/samples.py."""

    async def get(self):
        values = self.query_strings("range") or [DEFAULT_SERIES_RANGE]
        range_name = values[-1]
        if range_name not in SERIES_RANGES:
            raise APIError(400, f"range must be one of {', '.join(SERIES_RANGES)}, "
                                f"not '{range_name}'")
        range_s, interval_s = SERIES_RANGES[range_name]
        now = now_ms()
        since = now - now % (interval_s * 1000) - (range_s - interval_s) * 1000
        kept = await self.store.counts.read()
        samples, finished = await self.store.samples.between(since, now + 1, kept)
        self.write_json(job_series(range_name, now, samples, finished, kept.by_status()))
