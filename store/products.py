"""Product files: the files jobs wrote, listed for GET /products/."""

from store.db import Database, time_span
from store.reads import find_page


class ProductStore:
    def __init__(self, db: Database):
        self.db = db

    async def list_products(self, job_type_ids=None, file_name: str | None = None,
                            started: int | None = None, ended: int | None = None,
                            descending: bool = False, page: int = 1,
                            page_size: int = 100) -> tuple[int, list[dict]]:
        query: dict = {"is_product": True}
        if job_type_ids is not None:
            query["job_type_id"] = {"$in": sorted(job_type_ids)}
        if file_name:
            query["file_name"] = file_name
        span = time_span(started, ended)
        if span:
            query["last_modified"] = span
        count = await self.db.count("files", query)
        if count == 0 or (page - 1) * page_size >= count:
            return count, []
        direction = -1 if descending else 1
        return count, await find_page(self.db["files"], query,
                                      sort=[("last_modified", direction), ("id", direction)],
                                      skip=(page - 1) * page_size, limit=page_size)
