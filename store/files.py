"""Workspaces and Scale files (inputs and the products jobs write)."""

import uuid

from pymongo.errors import DuplicateKeyError

from core.times import now_ms
from store.cache import Cache
from store.db import Database
from store.reads import find_all, find_page


class WorkspaceExists(ValueError):
    """A workspace of that name is already there (names are unique)."""


class FileStore:
    def __init__(self, db: Database):
        self.db = db
        # Workspaces are never changed once written (only added).
        self._workspaces = Cache(60.0)

    async def create_workspace(self, name: str, title: str | None, base_path: str,
                               description: str | None = None) -> dict:
        if await self.db["workspaces"].find_one({"name": name}, {"id": 1}):
            raise WorkspaceExists(f'a workspace named "{name}" already exists')
        now = now_ms()
        doc = {"id": await self.db.next_id("workspaces"), "name": name, "title": title or name,
               "description": description, "base_path": base_path, "is_active": True,
               "created": now, "archived": None, "last_modified": now}
        try:
            await self.db["workspaces"].insert_one(doc)
        except DuplicateKeyError as exc:
            raise WorkspaceExists(f'a workspace named "{name}" already exists') from exc
        return doc

    async def get_workspace(self, workspace_id: int) -> dict | None:
        return await self.db["workspaces"].find_one({"id": workspace_id})

    async def workspaces_by_ids(self, ids) -> dict[int, dict]:
        return await self.db.by_ids("workspaces", ids)

    async def cached_workspaces(self, ids) -> dict[int, dict]:
        """`workspaces_by_ids` through this process's cache (store/cache.py)."""
        return await self._workspaces.many(ids, self.workspaces_by_ids)

    async def list_workspaces(self) -> list[dict]:
        return await find_all(self.db["workspaces"], {})

    async def create_file(self, workspace_id: int, file_name: str, media_type: str,
                          file_size: int, file_path: str, product_of: dict | None = None,
                          data_type=(), meta_data: dict | None = None) -> dict:
        """Record a stored file; `product_of` = {job_type_id, job_id, job_exe_id} for products."""
        now = now_ms()
        file_id = await self.db.next_id("files")
        doc = {"_id": file_id, "id": file_id, "workspace_id": workspace_id,
               "file_name": file_name, "media_type": media_type, "file_size": file_size,
               "file_path": file_path, "data_type": list(data_type), "is_deleted": False,
               "uuid": uuid.uuid4().hex, "created": now, "deleted": None, "data_started": None,
               "data_ended": None, "geometry": None, "center_point": None,
               "meta_data": meta_data or {}, "countries": [], "last_modified": now,
               "is_product": product_of is not None}
        if product_of is not None:
            doc.update(is_operational=True, is_published=True, published=now, unpublished=None,
                       job_type_id=product_of["job_type_id"], job_id=product_of["job_id"],
                       job_exe_id=product_of["job_exe_id"])
        await self.db["files"].insert_one(doc)
        return doc

    async def get_file(self, file_id: int) -> dict | None:
        return await self.db["files"].find_one({"_id": file_id})

    async def files_by_ids(self, ids) -> dict[int, dict]:
        return await self.db.by_ids("files", ids)

    async def newest_files(self, media_types, limit: int = 200) -> list[dict]:
        """The newest `limit` files (uploads and products) of these media types, or of any when
        none are given, newest first: what a job input may name. One equality read per type."""
        found: dict[int, dict] = {}
        for flt in [{"media_type": t} for t in media_types] or [{}]:
            kept, page_filter = 0, flt
            while kept < limit:
                docs = await find_page(self.db["files"], page_filter, sort=[("id", -1)],
                                       limit=limit)
                for doc in docs:
                    if not doc.get("is_deleted"):  # deleted files are skipped, then read past
                        found[doc["id"]] = doc
                        kept += 1
                if len(docs) < limit:
                    break
                page_filter = {**flt, "id": {"$lt": docs[-1]["id"]}}
        return sorted(found.values(), key=lambda doc: -doc["id"])[:limit]

    async def products_of_job(self, job_id: int) -> list[dict]:
        return await find_all(self.db["files"], {"job_id": job_id})
