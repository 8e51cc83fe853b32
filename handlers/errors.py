"""/errors/ and /errors/{id}/: the failure reasons jobs can end with."""

from handlers.base import BaseHandler
from presentation.errors import APIError
from presentation.serializers import error_full


class ErrorsHandler(BaseHandler):
    async def get(self):
        page, page_size = self.parse_page()
        count, errors = await self.store.errors.list_errors(page, page_size)
        self.write_page(count, [error_full(e) for e in errors], page, page_size)


class ErrorDetailsHandler(BaseHandler):
    async def get(self, error_id):
        error = await self.store.errors.get(int(error_id))
        if error is None:
            raise APIError(404, f"Error {error_id} does not exist")
        self.write_json(error_full(error))
