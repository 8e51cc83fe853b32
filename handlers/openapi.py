"""GET /openapi.json."""

from handlers.base import BaseHandler


class OpenAPIHandler(BaseHandler):
    def get(self):
        raise NotImplementedError
