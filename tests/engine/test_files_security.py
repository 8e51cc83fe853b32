"""Issue 11's attacks on the files and workspaces API, against the real app: uploads refused
before their body is read, uploads streamed to disk, file names and media types that used to be
500s, downloads that would run as script in the app's origin, and workspaces outside the
workspace roots."""

import asyncio
import hashlib
import tracemalloc
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from tornado import httputil

from handlers.uploads import FormError, MultipartReader
from tests.fixtures import form_field, form_file
from tests.responses import assert_plain_error
from tests.tokens import OPERATOR_HEADERS, VIEWER_HEADERS
from tests.waiting import wait_for

MIB = 1024 * 1024


@pytest.fixture
def shared(tmp_path) -> Path:
    """A second workspace root next to the data folder."""
    path = tmp_path / "shared"
    path.mkdir()
    return path


@pytest.fixture
def app_settings(data_dir, shared):
    """Two workspace roots, given as one comma-separated value (as a flag or the environment
    would)."""
    return {"data_dir": str(data_dir), "workspace_roots": f"{shared}, {data_dir}"}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


async def raw_request(port: int, head: bytes, timeout: float = 10.0) -> bytes:
    """Send a request's head (and no body) and read the answer up to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


# -- item 3: uploads are authorized before their body, and streamed to disk --------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("credentials, status, message", [
    (b"", b"401 Unauthorized", "Authentication required"),
    (f"Authorization: {VIEWER_HEADERS['Authorization']}\r\n".encode(), b"403 Forbidden",
     "This needs the operator role"),
])
async def test_an_upload_without_rights_is_refused_before_its_body(api, make, http_port,
                                                                   data_dir, credentials,
                                                                   status, message):
    """A 200 MiB body is declared but never sent: the answer comes anyway, and the connection
    closes (the server does not wait for, read or buffer the body)."""
    ws = await make.workspace("inbox")
    before = files_under(data_dir)
    response = await raw_request(http_port, (
        f"POST /files/?workspace_id={ws['id']}&file_name=big.bin HTTP/1.1\r\n"
        f"Host: localhost\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {200 * MIB}\r\n").encode() + credentials + b"\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status), head
    assert b"Content-Type: text/plain" in head
    assert message in body.decode()
    assert files_under(data_dir) == before
    status_code, page, _ = await api.get("/workspaces/")
    assert status_code == 200 and page["count"] == 1


@pytest.mark.gen_test
async def test_a_bad_big_upload_is_answered_before_its_body(api, make, http_port, data_dir):
    """An operator's 200 MiB upload with a bad file name: the 400 comes from the headers."""
    ws = await make.workspace("inbox")
    before = files_under(data_dir)
    response = await raw_request(http_port, (
        f"POST /files/?workspace_id={ws['id']}&file_name=..%2Fx HTTP/1.1\r\n"
        f"Host: localhost\r\nContent-Type: application/octet-stream\r\n"
        f"Authorization: {OPERATOR_HEADERS['Authorization']}\r\n"
        f"Content-Length: {200 * MIB}\r\n\r\n").encode())
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert body == b"file_name must be a plain file name without folders, not '../x'\n"
    assert files_under(data_dir) == before


@pytest.mark.gen_test(timeout=120)
async def test_a_big_upload_is_streamed_to_disk(api, make, http_client, base_url):
    """50 MiB sent in 64 KiB chunks: Python's allocations during the upload (tracemalloc's
    peak, the test and the in-process server together) stay far below the file's size, and
    the file arrives whole."""
    ws = await make.workspace("big")
    size, chunk = 50 * MIB, bytes(range(256)) * 256
    digest = hashlib.sha256()
    for _ in range(size // len(chunk)):
        digest.update(chunk)

    async def produce(write):
        for _ in range(size // len(chunk)):
            await write(chunk)

    query = urlencode({"workspace_id": ws["id"], "file_name": "big.bin"})
    tracemalloc.start()
    try:
        response = await http_client.fetch(
            f"{base_url}/files/?{query}", method="POST", body_producer=produce,
            headers={**OPERATOR_HEADERS, "Content-Type": "application/octet-stream",
                     "Content-Length": str(size)}, request_timeout=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.code == 201
    assert peak < 8 * MIB, f"{peak / MIB:.1f} MiB allocated at the peak of a 50 MiB upload"
    status, doc, _ = await api.get(response.headers["Location"])
    assert status == 200 and doc["file_size"] == size
    folder = Path(ws["json_config"]["broker"]["host_path"])
    stored = list(folder.rglob("*.bin"))
    assert [p.name for p in stored] == ["big.bin"]
    assert [p.name for p in stored[0].parent.iterdir()] == ["big.bin"]  # no temp file left
    received = hashlib.sha256()
    await http_client.fetch(doc["url"], headers=OPERATOR_HEADERS,
                            streaming_callback=received.update, request_timeout=100)
    assert received.hexdigest() == digest.hexdigest()


@pytest.mark.gen_test
async def test_an_upload_cut_off_midway_leaves_nothing(api, make, store, http_port):
    """The client sends 1 MiB of a declared 10 MiB and hangs up: the temp file and the folder
    made for it go."""
    ws = await make.workspace("cut")
    folder = Path(ws["json_config"]["broker"]["host_path"])
    _, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write((f"POST /files/?workspace_id={ws['id']}&file_name=cut.bin HTTP/1.1\r\n"
                  f"Host: localhost\r\nContent-Type: application/octet-stream\r\n"
                  f"Authorization: {OPERATOR_HEADERS['Authorization']}\r\n"
                  f"Content-Length: {10 * MIB}\r\n\r\n").encode() + b"x" * MIB)
    await writer.drain()

    async def partial_on_disk():
        return [p for p in folder.rglob("*") if p.is_file()]

    assert [p.name for p in await wait_for(partial_on_disk, "the upload's temp file")] == \
        [".upload.part"]
    writer.close()

    async def cleaned():
        return files_under(folder) == []

    await wait_for(cleaned, "the cut-off upload's files to go", deadline=10)
    assert await store.db.count("files", {}) == 0


@pytest.mark.gen_test
async def test_a_form_upload_naming_its_workspace_last_still_lands_there(api, make, data_dir):
    """The form's file arrives before its workspace_id: it waits in the data folder and is
    moved into the workspace; nothing stays behind."""
    ws = await make.workspace("late")
    status, body, _ = await api.post_form(form_file("late.csv", "a,b\r\n1,2", "text/csv"),
                                          form_field("workspace_id", ws["id"]))
    assert status == 201, body
    assert (body["file_name"], body["media_type"], body["file_size"]) == \
        ("late.csv", "text/csv", 8)
    assert not (data_dir / ".incoming").exists()
    folder = Path(ws["json_config"]["broker"]["host_path"])
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["late.csv"]
    status, raw, _ = await api.get(f"/files/{body['id']}/download/")
    assert (status, raw) == (200, "a,b\r\n1,2")


# -- item 10: names and media types that were 500s ------------------------------------------

@pytest.mark.gen_test
async def test_a_file_name_longer_than_the_filesystem_takes_is_a_400(api, make):
    ws = await make.workspace("names")
    name = "\u00e9" * 128  # 128 characters, 256 bytes in UTF-8
    query = urlencode({"workspace_id": ws["id"], "file_name": name})
    status, body, headers = await api.call("POST", f"/files/?{query}", raw=b"x",
                                           headers={"Content-Type": "text/plain"})
    assert_plain_error(status, body, headers, 400)
    assert body == "file_name is too long: 256 bytes in UTF-8, at most 255\n"
    name = "\u00e9" * 127 + "a"  # 255 bytes: the longest that fits
    body = await make.upload(ws["id"], name, b"x")
    assert body["file_name"] == name


@pytest.mark.gen_test
@pytest.mark.parametrize("media_type", [
    "text/plain\r\nX-Injected: yes", "text/plain\n", "text/plain\r", "text", "text/", "/plain",
    "text/plain; charset", "text/plain; charset=\"a\nb\"", "text /plain", "te\x00xt/plain",
    "text/pl@in", "x" * 128 + "/y",
])
async def test_a_bad_media_type_is_a_400_and_breaks_no_download(api, make, store,
                                                                 media_type):
    ws = await make.workspace("types")
    query = urlencode({"workspace_id": ws["id"], "file_name": "a.txt",
                       "media_type": media_type})
    status, body, headers = await api.call("POST", f"/files/?{query}", raw=b"x",
                                           headers={"Content-Type": "text/plain"})
    assert_plain_error(status, body, headers, 400)
    assert body == ("media_type must be an RFC 6838 media type such as text/plain "
                    "(type/subtype, optionally '; name=value' parameters), not "
                    f"{media_type!r}\n")
    assert await store.db.count("files", {}) == 0
    assert list(Path(ws["json_config"]["broker"]["host_path"]).rglob("*")) == []


@pytest.mark.gen_test
async def test_a_bad_media_type_in_a_form_part_is_a_400(api, make):
    ws = await make.workspace("forms")
    status, body, headers = await api.post_form(
        form_field("workspace_id", ws["id"]), form_file("a.txt", "bytes", "text/plain; charset==x"))
    assert_plain_error(status, body, headers, 400,
                       "media_type must be an RFC 6838 media type", "'text/plain; charset==x'")
    assert [p for p in Path(ws["json_config"]["broker"]["host_path"]).rglob("*")] == []


@pytest.mark.gen_test
@pytest.mark.parametrize("media_type", [
    "text/plain", "text/plain; charset=utf-8", 'text/plain;charset="utf-8"',
    "application/vnd.example+json; a=1; b=\"two words\"", "image/png",
])
async def test_good_media_types_are_kept_as_given(api, make, media_type):
    ws = await make.workspace("good")
    body = await make.upload(ws["id"], "a.bin", b"x", media_type)
    assert body["media_type"] == media_type


# -- item 14: downloads are never active content in the app's origin ----------------------------

DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


async def download(http_client, url: str):
    return await http_client.fetch(url, headers=OPERATOR_HEADERS)


@pytest.mark.gen_test
@pytest.mark.parametrize("file_name, media_type, served", [
    ("app.js", "text/javascript", "application/octet-stream"),
    ("app.js", "application/javascript", "application/octet-stream"),
    ("page.html", "text/html", "application/octet-stream"),
    ("page.html", "text/html; charset=utf-8", "application/octet-stream"),
    ("pic.svg", "image/svg+xml", "application/octet-stream"),
    ("page.xhtml", "application/xhtml+xml", "application/octet-stream"),
    ("style.css", "text/css", "application/octet-stream"),
    ("doc.xml", "text/xml", "application/octet-stream"),
    ("notes.txt", "text/plain; charset=utf-8", "text/plain"),
    ("pic.png", "IMAGE/PNG", "image/png"),
    ("table.csv", "text/csv", "text/csv"),
])
async def test_downloads_are_sandboxed_attachments(api, make, http_client, file_name, media_type,
                                                   served):
    ws = await make.workspace("active")
    body = await make.upload(ws["id"], file_name, b"alert(document.cookie)", media_type)
    assert body["media_type"] == media_type  # the record keeps what was declared
    response = await download(http_client, body["url"])
    assert response.body == b"alert(document.cookie)"
    assert response.headers["Content-Type"] == served
    assert response.headers["Content-Disposition"] == f'attachment; filename="{file_name}"'
    assert response.headers["Content-Security-Policy"] == DOWNLOAD_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.gen_test
async def test_a_product_a_job_wrote_is_served_the_same_way(api, make, store, http_client,
                                                            base_url):
    """Products are files too: a job's HTML output is a sandboxed octet-stream attachment."""
    ws = await make.workspace("products")
    folder = Path(ws["json_config"]["broker"]["host_path"])
    (folder / "out").mkdir()
    (folder / "out" / "report.html").write_bytes(b"<script>alert(1)</script>")
    job_type = await make.job_type()
    job = await make.pending(job_type)
    doc = await store.files.create_file(
        ws["id"], "report.html", "text/html", 25, "out/report.html",
        product_of={"job_type_id": job_type["id"], "job_id": job["id"], "job_exe_id": 1})
    response = await download(http_client, f"{base_url}/files/{doc['id']}/download/")
    assert response.body == b"<script>alert(1)</script>"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="report.html"'
    assert response.headers["Content-Security-Policy"] == DOWNLOAD_CSP


@pytest.mark.gen_test
async def test_the_attachment_name_is_encoded(api, make, http_client):
    ws = await make.workspace("encoded")
    name = "a'b;c%d \u00e9.txt"
    body = await make.upload(ws["id"], name, b"x")
    response = await download(http_client, body["url"])
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"a'b;c%d _.txt\"; filename*=UTF-8''a%27b%3Bc%25d%20%C3%A9.txt")


# -- item 15: workspaces only under the workspace roots --------------------------------------

def outside(base_path: str, shared: Path, data_dir: Path) -> str:
    return (f"base_path {base_path!r} is outside the workspace roots; it must be a folder in "
            f"{shared.resolve()}, {data_dir.resolve()} (workspace_roots)\n")


@pytest.mark.gen_test
async def test_workspaces_outside_the_roots_are_refused(api, data_dir, shared, tmp_path):
    (data_dir / "escape").symlink_to("/etc")
    (tmp_path / "sharedx").mkdir()
    for base_path in ("/", "/etc", "/proc/self", "/proc/self/cwd", "/tmp", str(tmp_path),
                      f"{data_dir}/escape", f"{data_dir}/escape/cron.d", f"{data_dir}/../x",
                      f"{shared}/../../", f"{tmp_path}/sharedx"):
        status, body, headers = await api.post("/workspaces/", {"name": "w",
                                                                "base_path": base_path})
        assert_plain_error(status, body, headers, 400)
        assert body == outside(base_path, shared, data_dir), base_path
    assert not (tmp_path / "x").exists()
    status, page, _ = await api.get("/workspaces/")
    assert (status, page["count"]) == (200, 0)


@pytest.mark.gen_test
async def test_workspaces_inside_the_roots_are_made(api, data_dir, shared):
    (data_dir / "link").symlink_to(shared)
    for name, base_path, made in (
            ("a", str(shared), shared),
            ("b", f"{shared}/team/raw", shared / "team" / "raw"),
            ("c", f"{data_dir}/link/x", shared / "x"),
            ("d", f"{data_dir}/sub/../inbox", data_dir / "inbox")):
        status, body, _ = await api.post("/workspaces/", {"name": name, "base_path": base_path})
        assert status == 201, body
        assert body["json_config"]["broker"]["host_path"] == str(made.resolve())
        assert made.is_dir()


@pytest.mark.gen_test
async def test_a_file_name_with_a_quote_in_a_form_is_kept(api, make):
    """The streamed form reader takes RFC 2231 file names as tornado's did."""
    ws = await make.workspace("quoted")
    encoded = quote("r\u00e9sum\u00e9.txt")
    status, body, _ = await api.post_form(
        form_field("workspace_id", ws["id"]),
        form_file("", "bytes", None, disposition=f"filename*=utf-8''{encoded}"))
    assert status == 201, body
    assert (body["file_name"], body["file_size"]) == ("r\u00e9sum\u00e9.txt", 5)


# -- the streamed form reader ------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1000, 100_000])
def test_the_form_reader_matches_tornados_parser_at_any_chunk_size(chunk_size):
    """Boundaries split across chunks, and a file whose bytes look like a boundary's start."""
    boundary = b"xyzzy"
    content = b"--xyzz\r\n--xyz\r\r\n-" * 300 + bytes(range(256))
    form = (b"--xyzzy\r\n"
            b'Content-Disposition: form-data; name="workspace_id"\r\n\r\n12\r\n'
            b"--xyzzy\r\n"
            b'Content-Disposition: form-data; name="file"; filename="f.bin"\r\n'
            b"Content-Type: application/x-thing\r\n\r\n" + content + b"\r\n"
            b"--xyzzy\r\n"
            b'Content-Disposition: form-data; name="media_type"\r\n\r\ntext/plain\r\n'
            b"--xyzzy--\r\nepilogue")
    arguments: dict = {}
    files: dict = {}
    httputil.parse_multipart_form_data(boundary, form, arguments, files)
    reader = MultipartReader(boundary)
    events = []
    for at in range(0, len(form), chunk_size):
        events += reader.feed(form[at:at + chunk_size])
    reader.close()
    fields = {e[1]: [e[2]] for e in events if e[0] == "field"}
    starts = [e[1:] for e in events if e[0] == "file"]
    data = b"".join(e[1] for e in events if e[0] == "data")
    assert fields == arguments
    assert starts == [("file", "f.bin", "application/x-thing")]
    assert data == files["file"][0]["body"] == content
    assert events[-1] == ("field", "media_type", b"text/plain")


@pytest.mark.parametrize("form, problem", [
    (b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b", "no final boundary"),
    (b"--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\n1\r\n--b--", "not form-data"),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--", "has no name"),
    (b"--bXY", "not followed by a line break"),
    (b"--b\r\n" + b"X-Pad: " + b"p" * 20_000 + b"\r\n\r\n", "part header too large"),
    (b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + b"v" * 70_000,
     "larger than 64 KiB"),
])
def test_the_form_reader_names_a_broken_form(form, problem):
    reader = MultipartReader(b"b")
    with pytest.raises(FormError, match=problem):
        reader.feed(form)
        reader.close()
