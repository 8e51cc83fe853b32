"""Errors: Scale's built-in failure reasons plus any a user adds."""

from pymongo.errors import DuplicateKeyError

from core.model import ERROR_CATEGORIES
from core.times import now_ms
from store.cache import Cache
from store.db import Database
from store.reads import find_all, find_page


class ErrorStore:
    def __init__(self, db: Database):
        self.db = db
        # Errors are never changed once written (only added): a minute keeps a restore's in view.
        self._cache = Cache(60.0)

    async def list_errors(self, page: int, page_size: int) -> tuple[int, list[dict]]:
        count = await self.db.count("errors", {})
        return count, await find_page(self.db["errors"], {}, sort=[("id", 1)],
                                      skip=(page - 1) * page_size, limit=page_size)

    async def get(self, error_id: int) -> dict | None:
        return await self.db["errors"].find_one({"id": error_id})

    async def by_ids(self, ids) -> dict[int, dict]:
        """{id: error} for the known ones among `ids` (None ignored)."""
        return await self.db.by_ids("errors", ids)

    async def cached_by_ids(self, ids) -> dict[int, dict]:
        """`by_ids` through this process's cache (store/cache.py)."""
        return await self._cache.many(ids, self.by_ids)

    async def by_name(self, name: str) -> dict | None:
        return await self.db["errors"].find_one({"name": name})

    async def by_names(self, names) -> list[dict]:
        """The errors with these names, by id."""
        names = sorted(set(names))
        if not names:
            return []
        return await find_all(self.db["errors"], {"name": {"$in": names}})

    async def names(self) -> set[str]:
        return {doc["name"] for doc in await find_all(self.db["errors"], {},
                                                      projection={"name": 1})}

    async def create(self, name: str, title: str | None, description: str | None,
                     category: str) -> dict:
        if category not in ERROR_CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(ERROR_CATEGORIES)}")
        now = now_ms()
        doc = {"id": await self.db.next_id("errors"), "name": name, "title": title,
               "description": description, "category": category, "is_builtin": False,
               "created": now, "last_modified": now}
        if await self.by_name(name):
            raise ValueError(f'an error named "{name}" already exists')
        try:
            await self.db["errors"].insert_one(doc)
        except DuplicateKeyError as exc:
            raise ValueError(f'an error named "{name}" already exists') from exc
        return doc
