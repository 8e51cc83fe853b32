"""GET /openapi.json: the OpenAPI 3.1 document of the JSON API (built in
presentation/openapi.py from the response models)."""

from handlers.base import BaseHandler
from presentation.openapi import document


class OpenAPIHandler(BaseHandler):
    def get(self):
        self.write_json(document(self.base_url))
