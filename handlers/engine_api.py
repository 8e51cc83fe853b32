"""The job engine's endpoints: workspaces, file upload and download, products, nodes and
execution logs."""

import asyncio
import mimetypes
import os
import uuid
from pathlib import Path
from urllib.parse import quote

from handlers.base import BaseHandler
from presentation.errors import APIError, sentence
from presentation.filters import check_int64
from presentation.serializers import Serializer, workspace
from store.files import WorkspaceExists

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Logs larger than this are served from their end.
LOG_LIMIT = 4 * 1024 * 1024
CHUNK = 256 * 1024


def check_file_name(name: str | None) -> str:
    """A plain file name: no folders, no `..`, no control characters."""
    if not name:
        raise APIError(400, 'Missing required parameter: "file_name"')
    if (len(name) > 250 or name in (".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise APIError(400, f"file_name must be a plain file name without folders, not {name!r}")
    return name


def content_disposition(file_name: str) -> str:
    """An attachment header for any file name: `filename` in plain ASCII, plus the exact name as
    RFC 5987 `filename*` when that differs (a header value cannot carry non-Latin-1 text)."""
    plain = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in file_name)
    header = f'attachment; filename="{plain}"'
    return header if plain == file_name else f"{header}; filename*=UTF-8''{quote(file_name)}"


class EngineHandler(BaseHandler):
    @property
    def data_dir(self) -> Path:
        return Path(self.settings["config"].data_dir).resolve()

    async def file_json(self, doc: dict) -> dict:
        return await Serializer(self.store, self.base_url).file(doc)

    async def workspace(self, workspace_id: int) -> dict:
        ws = await self.store.files.get_workspace(workspace_id)
        if ws is None:
            raise APIError(404, f"Workspace {workspace_id} does not exist")
        return ws


class WorkspacesHandler(EngineHandler):
    async def get(self):
        page, page_size = self.parse_page()
        workspaces = await self.store.files.list_workspaces()
        rows = [workspace(w) for w in workspaces]
        self.write_page(len(rows), rows[(page - 1) * page_size:page * page_size], page,
                        page_size)

    async def post(self):
        body = self.json_body()
        name = body.get("name")
        if name is None or name == "":
            raise APIError(400, 'Missing required parameter: "name"')
        if not isinstance(name, str) or len(name) > 50 or not set(name) <= NAME_CHARS:
            raise APIError(400, "name must be 1 to 50 letters, digits, '_' or '-'")
        for key in ("title", "description", "base_path"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise APIError(400, f"{key} must be a string")
        unknown = sorted(set(body) - {"name", "title", "description", "base_path"})
        if unknown:
            raise APIError(400, f"Unknown workspace fields: {', '.join(unknown)}")
        if body.get("base_path"):
            if not os.path.isabs(body["base_path"]):
                raise APIError(400, "base_path must be an absolute folder path")
            base = Path(os.path.normpath(body["base_path"]))
        else:
            base = self.data_dir / "workspaces" / name
        try:
            await asyncio.to_thread(base.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise APIError(400, f"base_path {str(base)!r} cannot be used: {exc.strerror}") \
                from None
        try:
            ws = await self.store.files.create_workspace(name, body.get("title"), str(base),
                                                         body.get("description"))
        except WorkspaceExists as exc:
            raise APIError(400, sentence(str(exc))) from None
        self.set_header("Location", f"/workspaces/{ws['id']}/")
        self.write_json(workspace(ws, details=True), status=201)


class WorkspaceDetailsHandler(EngineHandler):
    async def get(self, workspace_id):
        self.write_json(workspace(await self.workspace(int(workspace_id)), details=True))


class FilesHandler(EngineHandler):
    """POST /files/: upload into a workspace, either the raw body with ?workspace_id=&
    file_name=&media_type=, or a multipart form with a `file` part and the same fields."""

    def field(self, name: str) -> str | None:
        """A query or form field exactly as sent (tornado's getters rewrite control
        characters, which would hide a bad file name)."""
        values = (self.request.query_arguments.get(name, [])
                  + self.request.body_arguments.get(name, []))
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, f"{name} must be UTF-8 text") from None

    async def post(self):
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            parts = [p for values in self.request.files.values() for p in values]
            if len(parts) != 1:
                raise APIError(400, "Send exactly one file part in the multipart form")
            part = parts[0]
            data = part["body"]
            file_name = self.field("file_name") or part["filename"]
            media_type = self.field("media_type") or part.get("content_type")
        else:
            data = self.request.body
            file_name = self.field("file_name")
            media_type = self.field("media_type")
        file_name = check_file_name(file_name)
        raw_id = self.field("workspace_id")
        if not raw_id:
            raise APIError(400, 'Missing required parameter: "workspace_id"')
        try:
            workspace_id = check_int64("workspace_id", int(raw_id))
        except ValueError:
            raise APIError(400, f"workspace_id must be an integer, not {raw_id[:40]!r}") from None
        ws = await self.store.files.get_workspace(workspace_id)
        if ws is None:
            raise APIError(400, f"Workspace {workspace_id} does not exist")
        media_type = media_type or mimetypes.guess_type(file_name)[0] or \
            "application/octet-stream"
        base = Path(ws["base_path"]).resolve()
        relative = Path("uploads") / uuid.uuid4().hex / file_name
        target = base / relative
        if not target.resolve().is_relative_to(base):
            raise APIError(400, f"file_name {file_name!r} leaves the workspace")
        await asyncio.to_thread(write_upload, target, data)
        try:
            doc = await self.store.files.create_file(workspace_id, file_name, media_type,
                                                     len(data), str(relative))
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self.set_header("Location", f"/files/{doc['id']}/")
        self.write_json(await self.file_json(doc), status=201)


class FileDetailsHandler(EngineHandler):
    async def get(self, file_id):
        doc = await self.store.files.get_file(int(file_id))
        if doc is None:
            raise APIError(404, f"File {file_id} does not exist")
        self.write_json(await self.file_json(doc))


class FileDownloadHandler(EngineHandler):
    async def get(self, file_id):
        doc = await self.store.files.get_file(int(file_id))
        if doc is None or doc.get("is_deleted"):
            raise APIError(404, f"File {file_id} does not exist")
        ws = await self.workspace(doc["workspace_id"])
        base = Path(ws["base_path"]).resolve()
        path = (base / doc["file_path"]).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise APIError(404, f"The bytes of file {file_id} are missing from its workspace")
        self.set_header("Content-Type", doc["media_type"])
        self.set_header("Content-Length", str(path.stat().st_size))
        self.set_header("Content-Disposition", content_disposition(doc["file_name"]))
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            handle.close()
        self.finish()


class ProductsHandler(EngineHandler):
    async def get(self):
        started, ended = self.parse_time_range()
        page, page_size = self.parse_page()
        order = self.query_choices("order", ("last_modified", "-last_modified"))
        job_type_ids = await self.job_type_ids_filter()
        file_names = self.query_strings("file_name")
        count, products = await self.store.products.list_products(
            job_type_ids, file_names[-1] if file_names else None, started, ended,
            descending=bool(order) and order[-1].startswith("-"), page=page,
            page_size=page_size)
        self.write_page(count, await Serializer(self.store, self.base_url).products(products),
                        page, page_size)


class NodesHandler(EngineHandler):
    async def get(self):
        page, page_size = self.parse_page()
        count, nodes = await self.store.nodes.list_nodes(page, page_size)
        serializer = Serializer(self.store, self.base_url)
        self.write_page(count, [await serializer.node(n) for n in nodes], page, page_size)


class NodeDetailsHandler(EngineHandler):
    async def get(self, node_id):
        node = await self.store.nodes.get(int(node_id))
        if node is None:
            raise APIError(404, f"Node {node_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).node(node))

    async def patch(self, node_id):
        """Pause a node (`{"is_paused": true, "pause_reason": "..."}`) or resume it; the engine
        on it sees the change within a second."""
        body = self.json_body()
        unknown = sorted(set(body) - {"is_paused", "pause_reason"})
        if unknown:
            raise APIError(400, f"Unknown field(s): {', '.join(unknown)}; a node takes "
                                "is_paused and pause_reason")
        if not isinstance(body.get("is_paused"), bool):
            raise APIError(400, "is_paused is required and must be true or false")
        reason = body.get("pause_reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 250):
            raise APIError(400, "pause_reason must be a string of at most 250 characters")
        node = await self.store.nodes.set_paused(int(node_id), body["is_paused"], reason)
        if node is None:
            raise APIError(404, f"Node {node_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).node(node))


def write_upload(target: Path, data: bytes) -> None:
    """In a worker thread: an upload may be hundreds of MiB (max_upload_mb)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def read_log(path: str | None) -> str:
    """The log's text (its last LOG_LIMIT bytes when larger); empty before the job starts.
    Blocking: handlers call it in a worker thread."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_LIMIT))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class ExecutionLogsHandler(EngineHandler):
    """Scale's JobExecutionLogSerializer: the /job-executions/ row + is_finished, stdout,
    stderr; readable while the job runs."""

    async def get(self, exe_id):
        exe = await self.store.jobs.get_exe(int(exe_id))
        if exe is None:
            raise APIError(404, f"Job execution {exe_id} does not exist")
        stdout = await asyncio.to_thread(read_log, exe.get("stdout_file"))
        stderr = await asyncio.to_thread(read_log, exe.get("stderr_file"))
        self.write_json(await Serializer(self.store, self.base_url).exe_log(exe, stdout, stderr))
