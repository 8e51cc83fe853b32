"""The job engine's endpoints: workspaces, file upload and download, products, nodes and
execution logs."""

import asyncio
import mimetypes
import os
from pathlib import Path
from urllib.parse import quote

import tornado.web

from engine.executor import cluster_node_fields
from engine.slurm import SlurmCommandFailed, drain_node, read_nodes
from handlers.base import BaseHandler
from handlers.uploads import (
    DOWNLOAD_CSP,
    FormError,
    MultipartReader,
    Spool,
    download_type,
    media_type_problem,
    spool_folder,
)
from presentation.errors import APIError, sentence
from presentation.filters import check_int64
from presentation.serializers import Serializer, workspace
from store.files import WorkspaceExists

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Logs larger than this are served from their end.
LOG_LIMIT = 4 * 1024 * 1024
CHUNK = 256 * 1024


# The longest file name the filesystems we run on take (NAME_MAX), in bytes.
NAME_MAX = 255


def check_file_name(name: str | None) -> str:
    """A plain file name: no folders, no `..`, no control characters, at most NAME_MAX bytes."""
    if not name:
        raise APIError(400, 'Missing required parameter: "file_name"')
    if (name in (".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise APIError(400, f"file_name must be a plain file name without folders, not "
                            f"{name[:100]!r}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > NAME_MAX:
        raise APIError(400, f"file_name is too long: {size} bytes in UTF-8, at most {NAME_MAX}")
    return name


def content_disposition(file_name: str) -> str:
    """An attachment header for any file name: `filename` in plain ASCII, plus the exact name as
    RFC 5987 `filename*` when that differs (a header value cannot carry non-Latin-1 text)."""
    plain = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in file_name)
    header = f'attachment; filename="{plain}"'
    return header if plain == file_name else f"{header}; filename*=UTF-8''{quote(file_name, safe='')}"


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

    async def send_attachment(self, path: Path | None, content_type: str, file_name: str) -> None:
        """The file's bytes as a download, as they are when the request comes (a file that
        grows meanwhile, a running job's log, is sent up to that size; no file: empty).
        Never active content in this origin: an attachment, a type no browser runs
        (handlers/uploads.py SAFE_DOWNLOAD_TYPES), a sandbox CSP and no sniffing."""
        try:
            handle = await asyncio.to_thread(open, path, "rb") if path else None
        except FileNotFoundError:
            handle = None
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Disposition", content_disposition(file_name))
        self.set_header("Content-Security-Policy", DOWNLOAD_CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        if handle is None:
            self.set_header("Content-Length", "0")
            self.finish()
            return
        try:
            left = os.fstat(handle.fileno()).st_size
            self.set_header("Content-Length", str(left))
            while left > 0 and (chunk := await asyncio.to_thread(handle.read, min(CHUNK, left))):
                left -= len(chunk)
                self.write(chunk)
                await self.flush()
        finally:
            handle.close()
        self.finish()


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
            base = await asyncio.to_thread(self.allowed_base, body["base_path"])
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

    def workspace_roots(self) -> list[Path]:
        """The folders workspaces may be in (setting workspace_roots; default: data_dir)."""
        roots = self.settings["config"].workspace_roots or (self.settings["config"].data_dir,)
        return [Path(os.path.realpath(root)) for root in roots]

    def allowed_base(self, base_path: str) -> Path:
        """`base_path` with symlinks and `..` resolved, when that is in a workspace root; a 400
        naming base_path and the roots otherwise. Blocking (it reads links)."""
        if "\0" in base_path:
            raise APIError(400, "base_path must not contain NUL characters")
        base = Path(os.path.realpath(base_path))
        roots = self.workspace_roots()
        if not any(base.is_relative_to(root) for root in roots):
            raise APIError(400, f"base_path {base_path[:200]!r} is outside the workspace roots; "
                                f"it must be a folder in {', '.join(map(str, roots))} "
                                "(workspace_roots)")
        return base


class WorkspaceDetailsHandler(EngineHandler):
    async def get(self, workspace_id):
        self.write_json(workspace(await self.workspace(int(workspace_id)), details=True))


# An upload whose declared body is at most this large is read (and dropped) before an error
# is answered, so clients that send their whole body first see the answer; a larger or chunked
# one is answered as soon as the headers are in, and its connection closed.
EARLY_ANSWER_BYTES = 64 * 1024
# Spool cleanups scheduled from connection-close callbacks, held until done.
CLEANUPS: set[asyncio.Task] = set()


def form_boundary(content_type: str) -> bytes:
    for field in content_type.split(";"):
        key, _, value = field.strip().partition("=")
        if key == "boundary" and value:
            return value.encode("utf-8", "replace")
    raise APIError(400, "A multipart/form-data body needs a boundary parameter in its "
                        "Content-Type")


@tornado.web.stream_request_body
class FilesHandler(EngineHandler):
    """POST /files/: upload into a workspace, either the raw body with ?workspace_id=&
    file_name=&media_type=, or a multipart form with a `file` part and the same fields.

    The body is streamed: credentials are checked as soon as the headers are in (401/403
    before any of the body is read), and the file's bytes go straight to a temp file in their
    folder (handlers/uploads.py), renamed into place once the file is recorded."""

    def initialize(self) -> None:
        self.fields: dict[str, list[bytes]] = {}
        self.problem: APIError | None = None
        self.form: MultipartReader | None = None
        self.file_part: tuple[str, str] | None = None  # a form's file: (filename, type)
        self.target: tuple[dict, str, str] | None = None  # a raw body's workspace, name, type
        self.spool: Spool | None = None
        self.disk = asyncio.Lock()  # one spool operation at a time

    def field(self, name: str) -> str | None:
        """A query or form field exactly as sent (tornado's getters rewrite control
        characters, which would hide a bad file name); a form's value wins."""
        values = self.fields.get(name, [])
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, f"{name} must be UTF-8 text") from None

    def small_body(self) -> bool:
        declared = self.request.headers.get("Content-Length", "")
        return declared.isdigit() and int(declared) <= EARLY_ANSWER_BYTES

    async def prepare(self):
        self.fields = {name: list(values)
                       for name, values in self.request.query_arguments.items()}
        try:
            await super().prepare()  # authorize: before any of the body is read
            content_type = self.request.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                self.form = MultipartReader(form_boundary(content_type))
            else:
                self.target = await self.resolve(self.field("file_name"),
                                                 self.field("media_type"))
                await self.open_spool(Path(self.target[0]["base_path"]).resolve())
        except APIError as exc:
            if not self.small_body():
                raise
            self.problem = exc  # answered once the (small) body is in

    async def resolve(self, file_name: str | None, media_type: str | None
                      ) -> tuple[dict, str, str]:
        """The upload's workspace, file name and media type, checked."""
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
        if media_type:
            problem = media_type_problem(media_type)
            if problem:
                raise APIError(400, problem)
        else:
            media_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        return ws, file_name, media_type

    async def on_disk(self, operation, *args):
        """A blocking spool operation in a worker thread, one at a time."""
        async with self.disk:
            return await asyncio.to_thread(operation, *args)

    async def open_spool(self, base: Path) -> None:
        self.spool = Spool(spool_folder(base))
        await self.on_disk(self.spool.open)

    async def fail(self, problem: APIError) -> None:
        """Answer `problem` once the body is in; what was written so far goes now."""
        self.problem = problem
        if self.spool is not None:
            await self.on_disk(self.spool.discard)

    async def data_received(self, chunk: bytes) -> None:
        if self.problem is not None or self._finished:
            return  # dropped
        try:
            if self.form is None:
                if self.spool is not None:
                    await self.on_disk(self.spool.write, chunk)
                return
            for event in self.form.feed(chunk):
                await self.form_event(event)
        except FormError as exc:
            await self.fail(APIError(400, f"Invalid body: Invalid multipart/form-data: {exc}"))
        except APIError as exc:
            await self.fail(exc)
        except (OSError, ValueError) as exc:  # ValueError: the spool was closed meanwhile
            await self.fail(APIError(507, f"The upload cannot be written: {exc}"))

    async def form_event(self, event: tuple) -> None:
        kind = event[0]
        if kind == "field":
            self.fields.setdefault(event[1], []).append(event[2])
        elif kind == "file":
            if self.file_part is not None:
                raise APIError(400, "Send exactly one file part in the multipart form")
            self.file_part = (event[2], event[3])
            await self.open_spool(await self.form_base())
        elif kind == "data" and self.spool is not None:
            await self.on_disk(self.spool.write, event[1])

    async def form_base(self) -> Path:
        """Where a form's file goes while it arrives: its workspace when the form named it
        before the file, else a folder in the data folder (moved when the form is in)."""
        raw_id = self.fields.get("workspace_id", [b""])[-1]
        if raw_id.isdigit() and len(raw_id) <= 18:
            ws = await self.store.files.get_workspace(int(raw_id))
            if ws is not None:
                return Path(ws["base_path"]).resolve()
        return self.data_dir / ".incoming"

    async def post(self):
        if self.problem is not None:
            raise self.problem
        if self.form is not None:
            try:
                self.form.close()
            except FormError as exc:
                raise APIError(400, f"Invalid body: Invalid multipart/form-data: {exc}") \
                    from None
            if self.file_part is None or self.spool is None:
                raise APIError(400, "Send exactly one file part in the multipart form")
            filename, part_type = self.file_part
            ws, file_name, media_type = await self.resolve(
                self.field("file_name") or filename, self.field("media_type") or part_type)
        else:
            assert self.target is not None and self.spool is not None
            ws, file_name, media_type = self.target
        base = Path(ws["base_path"]).resolve()
        spool = self.spool
        if spool.folder.parent != base / "uploads":
            spool = self.spool = await self.on_disk(spool.move_to, spool_folder(base))
        if not (spool.folder / file_name).resolve().is_relative_to(base):
            raise APIError(400, f"file_name {file_name!r} leaves the workspace")
        target = await self.on_disk(spool.keep, file_name)
        doc = await self.store.files.create_file(ws["id"], file_name, media_type, spool.size,
                                                 str(target.relative_to(base)))
        spool.done()
        self.set_header("Location", f"/files/{doc['id']}/")
        self.write_json(await self.file_json(doc), status=201)

    def on_finish(self) -> None:
        self.clean_up()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.clean_up()

    def clean_up(self) -> None:
        """Remove an unfinished upload's file: now when no spool operation is running (an
        upload cut off at max_upload_mb is gone before its 413), else right after it."""
        spool = self.spool
        if spool is None or spool.kept:
            return
        if not self.disk.locked():
            spool.discard()
            return
        task = asyncio.get_running_loop().create_task(self.on_disk(spool.discard))
        CLEANUPS.add(task)
        task.add_done_callback(CLEANUPS.discard)


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
        await self.send_attachment(path, download_type(doc["media_type"]), doc["file_name"])


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
        node = await self.store.nodes.get(int(node_id))
        if node is None:
            raise APIError(404, f"Node {node_id} does not exist")
        if node.get("slurm_state") is not None:
            node = await self._drain_in_slurm(node, body["is_paused"], reason)
        else:
            node = await self.store.nodes.set_paused(int(node_id), body["is_paused"], reason)
        if node is None:
            raise APIError(404, f"Node {node_id} does not exist")
        self.write_json(await Serializer(self.store, self.base_url).node(node))

    async def _drain_in_slurm(self, node: dict, paused: bool, reason: str | None) -> dict | None:
        """A Slurm node is paused by draining it in Slurm (`scontrol update`), its running jobs
        going on; it is then recorded as Slurm shows it."""
        try:
            await drain_node(node["hostname"], paused, reason)
            found = await read_nodes(names=(node["hostname"],))
        except SlurmCommandFailed as exc:
            raise APIError(503, str(exc)) from None
        await self.store.nodes.sync_cluster([cluster_node_fields(n) for n in found],
                                            complete=False)
        return await self.store.nodes.get(node["id"])


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


class ExecutionLogDownloadHandler(EngineHandler):
    """One log of an execution (`stream`: stdout or stderr), whole, as raw text to download
    (the dashboard's Download links); a running job's log as far as it is written."""

    def initialize(self, stream: str):
        self.stream = stream

    async def get(self, exe_id):
        exe = await self.store.jobs.get_exe(int(exe_id))
        if exe is None:
            raise APIError(404, f"Job execution {exe_id} does not exist")
        path = exe.get(f"{self.stream}_file")
        await self.send_attachment(Path(path) if path else None, "text/plain; charset=utf-8",
                                   f"execution-{exe_id}-{self.stream}.log")
