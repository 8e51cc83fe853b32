"""/job-executions/ and /job-executions/{id}/."""

from core.model import EXE_STATUSES
from handlers.base import BaseHandler
from presentation.errors import APIError
from presentation.serializers import Serializer
from store.jobs import EXE_ORDER_FIELDS


class ExecutionsHandler(BaseHandler):
    async def get(self):
        started, ended = self.parse_time_range()
        order = self.parse_order(EXE_ORDER_FIELDS, (("last_modified", 1),))
        page, page_size = self.parse_page()
        job_type_ids = await self.job_type_ids_filter()
        count, exes = await self.store.jobs.list_exes(
            statuses=self.query_choices("status", EXE_STATUSES), job_type_ids=job_type_ids,
            node_ids=self.query_ints("node_id"), started=started, ended=ended, order=order,
            page=page, page_size=page_size)
        rows = await Serializer(self.store, self.base_url).exe_rows(exes)
        self.write_page(count, rows, page, page_size)


class ExecutionDetailsHandler(BaseHandler):
    async def get(self, exe_id):
        exe = await self.store.jobs.get_exe(int(exe_id))
        if exe is None:
            raise APIError(404, f"Job execution {exe_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).exe_details(exe))
