"""Uploads streamed to disk (POST /files/): a multipart/form-data reader that takes its body a
chunk at a time, the spool file an upload's bytes go to, media type checks, and the content type
a download is served with.

Nothing here holds an upload in memory: the file's bytes go from the socket to a temp file in
their target folder, which is renamed into place when the upload succeeds and removed, with any
folder made for it, when it fails (server.py's `max_upload_mb` bounds its size)."""

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import IO

from tornado import httputil

# Form fields (everything but the file) are small: their bytes together, at most.
FIELDS_LIMIT = 64 * 1024
PART_HEADER_LIMIT = 16 * 1024
MAX_PARTS = 100

# RFC 6838 section 4.2: type "/" subtype, each a restricted-name of at most 127 characters.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# RFC 9110 parameters: token "=" (token / quoted-string); a quoted string carries no control
# characters (so no CR or LF).
_PARAMETER = rf"""[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"(?:[\t\x20-\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*")"""
MEDIA_TYPE = re.compile(rf"({_RESTRICTED_NAME})/({_RESTRICTED_NAME})((?:{_PARAMETER})*)")
MEDIA_TYPE_LIMIT = 255

# Downloads keep their declared type only when it is one of these (compared without
# parameters, lower case): types no browser runs as script, style or a document in the app's
# origin. Anything else (text/html, image/svg+xml, text/javascript, XML, ...) is served as
# application/octet-stream. Every download is an attachment with `CSP: sandbox` and nosniff too.
SAFE_DOWNLOAD_TYPES = frozenset({
    "application/octet-stream", "application/json", "application/pdf", "application/zip",
    "application/gzip", "application/x-gzip", "application/x-tar", "application/x-bzip2",
    "application/x-xz", "application/zstd", "application/x-hdf5", "application/x-netcdf",
    "application/vnd.apache.parquet", "text/plain", "text/csv", "text/tab-separated-values",
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/tiff", "image/bmp",
    "audio/mpeg", "audio/ogg", "audio/wav", "video/mp4", "video/webm", "video/ogg",
})
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def media_type_problem(value: str) -> str | None:
    """Why `value` is not an RFC 6838 media type (`type/subtype`, optionally followed by
    `; name=value` parameters, a value a token or a quoted string), or None."""
    if len(value) > MEDIA_TYPE_LIMIT:
        return f"media_type must be at most {MEDIA_TYPE_LIMIT} characters, not {len(value)}"
    if MEDIA_TYPE.fullmatch(value) is None:
        return (f"media_type must be an RFC 6838 media type such as text/plain (type/subtype, "
                f"optionally '; name=value' parameters), not {value!r}")
    return None


def download_type(media_type: str) -> str:
    """The Content-Type a stored file is served with (see SAFE_DOWNLOAD_TYPES)."""
    match = MEDIA_TYPE.fullmatch(media_type or "")
    essence = f"{match[1]}/{match[2]}".lower() if match else ""
    return essence if essence in SAFE_DOWNLOAD_TYPES else "application/octet-stream"


class FormError(ValueError):
    """The body is not a multipart/form-data body this reader can take."""


class MultipartReader:
    """A multipart/form-data body read as it arrives. `feed()` returns events in order:
    ("field", name, value bytes), ("file", name, filename, content type) when a file part
    starts, ("data", bytes) for its bytes, ("end",) when it ends. Fields are capped at
    FIELDS_LIMIT bytes together; the file's bytes are only passed on, never kept."""

    def __init__(self, boundary: bytes):
        if boundary.startswith(b'"') and boundary.endswith(b'"'):
            boundary = boundary[1:-1]
        self.delimiter = b"--" + boundary
        self.separator = b"\r\n" + self.delimiter
        self.buffer = bytearray()
        self.state = "preamble"
        self.part: tuple | None = None  # ("field", name) or ("file",) while in a part's body
        self.value = bytearray()
        self.fields_size = self.parts = 0

    def feed(self, data: bytes) -> list[tuple]:
        self.buffer += data
        events: list[tuple] = []
        while self.step(events):
            pass
        return events

    def close(self) -> None:
        if self.state != "done":
            raise FormError("no final boundary found")

    def step(self, events: list[tuple]) -> bool:
        """One move of the state machine; False when it needs more bytes."""
        if self.state == "body":
            return self.body_step(events)
        if self.state == "headers":
            return self.headers_step(events)
        buffer = self.buffer
        if self.state == "preamble":
            at = buffer.find(self.delimiter)
            if at < 0:
                del buffer[:max(0, len(buffer) - len(self.delimiter))]
                return False
            del buffer[:at + len(self.delimiter)]
            self.state = "delimiter"
            return True
        if self.state == "delimiter":
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self.state = "done"
            elif buffer[:2] == b"\r\n":
                self.state = "headers"
            else:
                raise FormError("a boundary is not followed by a line break")
            del buffer[:2]
            return True
        buffer.clear()  # done: the epilogue is ignored
        return False

    def headers_step(self, events: list[tuple]) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or end > PART_HEADER_LIMIT:
            if end > PART_HEADER_LIMIT or len(self.buffer) > PART_HEADER_LIMIT + 4:
                raise FormError("part header too large")
            return False
        self.start_part(bytes(self.buffer[:end]), events)
        del self.buffer[:end + 4]
        self.state = "body"
        return True

    def body_step(self, events: list[tuple]) -> bool:
        buffer = self.buffer
        at = buffer.find(self.separator)
        cut = at if at >= 0 else max(0, len(buffer) - len(self.separator) + 1)
        if cut:
            self.part_data(bytes(buffer[:cut]), events)
            del buffer[:cut]
        if at < 0:
            return False
        del buffer[:len(self.separator)]
        self.end_part(events)
        self.state = "delimiter"
        return True

    def start_part(self, raw: bytes, events: list[tuple]) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise FormError("too many parts")
        try:
            headers = httputil.HTTPHeaders.parse(raw.decode("utf-8"))
        except (UnicodeDecodeError, httputil.HTTPInputError) as exc:
            raise FormError(str(exc)) from None
        disposition, params = httputil._parse_header(headers.get("Content-Disposition", ""))
        if disposition != "form-data":
            raise FormError("a part is not form-data")
        if not params.get("name"):
            raise FormError("a part has no name")
        if params.get("filename"):
            self.part = ("file",)
            events.append(("file", params["name"], params["filename"],
                           headers.get("Content-Type", "application/unknown")))
        else:
            self.part = ("field", params["name"])
            self.value = bytearray()

    def part_data(self, data: bytes, events: list[tuple]) -> None:
        if self.part == ("file",):
            events.append(("data", data))
            return
        self.fields_size += len(data)
        if self.fields_size > FIELDS_LIMIT:
            raise FormError(f"the form's fields are larger than {FIELDS_LIMIT // 1024} KiB")
        self.value += data

    def end_part(self, events: list[tuple]) -> None:
        if self.part == ("file",):
            events.append(("end",))
        elif self.part is not None:
            events.append(("field", self.part[1], bytes(self.value)))
        self.part = None


class Spool:
    """An upload's bytes on their way to disk: a temp file in `folder` (made, with its missing
    parents, when it opens). Blocking: the handler calls each method in a worker thread, except
    `discard`, which is quick and may run from a connection-close callback."""

    PART_NAME = ".upload.part"

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / self.PART_NAME
        self.handle: IO[bytes] | None = None
        self.made: list[Path] = []  # the folders this spool made, deepest first
        self.size = 0
        self.kept = False

    def make_folder(self) -> None:
        missing = []
        folder = self.folder
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.folder.mkdir(parents=True, exist_ok=True)
        self.made = missing

    def open(self) -> None:
        self.make_folder()
        self.handle = open(self.path, "xb")  # noqa: SIM115 (closed by close or discard)

    def write(self, data: bytes) -> None:
        assert self.handle is not None
        self.handle.write(data)
        self.size += len(data)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def move_to(self, folder: Path) -> "Spool":
        """The finished bytes moved to a spool in `folder` (a rename on the same filesystem);
        this one is discarded."""
        self.close()
        moved = Spool(folder)
        moved.make_folder()
        try:
            shutil.move(self.path, moved.path)
        except BaseException:
            moved.discard()
            raise
        moved.size = self.size
        self.discard()
        return moved

    def keep(self, name: str) -> Path:
        """The finished file renamed to `name` in its folder; `discard` still removes it (when
        recording it fails) until `done`."""
        self.close()
        target = self.folder / name
        os.replace(self.path, target)
        self.path = target
        return target

    def done(self) -> None:
        self.kept = True

    def discard(self) -> None:
        """Remove the file and the folders made for it, unless it is done."""
        self.close()
        if self.kept:
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self.remove_folders()

    def remove_folders(self) -> None:
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:  # not empty: another upload uses it
                break
        self.made = []


def spool_folder(base: Path) -> Path:
    """A new upload's own folder in a workspace (its files keep their names side by side)."""
    return base / "uploads" / uuid.uuid4().hex
