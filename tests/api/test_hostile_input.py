"""Hostile input against the real app on a real port: malformed JSON, wrong types, huge numbers,
10,000 repeated parameters, non-UTF-8 bytes, path traversal in file names and oversized bodies.
Each gets a 4xx text/plain line naming the problem, nothing is written to the store or the
workspace folder, and the server answers a normal request afterwards."""

import asyncio
import json
from pathlib import Path
from urllib.parse import quote

import pytest
import tornado.httpserver
from tornado.httpclient import HTTPClientError

from core.settings import DEFAULTS
from http_server import http_server_options
from server import make_app
from tests.fixtures import form_field, form_file
from tests.responses import assert_plain_error
from tests.tokens import OPERATOR_HEADERS, TEST_SETTINGS

COLLECTIONS = ("jobs", "job_exes", "job_types", "job_type_revs", "trigger_events", "files",
               "workspaces")
UPLOAD_LIMIT_MB = 1
BODY_LIMIT = DEFAULTS.max_body_kb * 1024  # in bytes


@pytest.fixture
def settings(tmp_path):
    return TEST_SETTINGS.replace(data_dir=str(tmp_path / "data"), max_upload_mb=UPLOAD_LIMIT_MB)


@pytest.fixture
def app(store, hub, settings):
    return make_app(store, settings, hub)


@pytest.fixture
def http_server(app, settings, io_loop, _unused_port):
    """The test server with server.py's listening options (header and body caps)."""
    server = tornado.httpserver.HTTPServer(app, **http_server_options(settings))
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections)


@pytest.fixture
def workspace_dir(tmp_path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def world(io_loop, make, store, workspace_dir):
    """One job type, one PENDING job and one workspace, made before the attack."""
    async def build():
        job_type = await make.job_type()
        job = await make.pending(job_type)
        workspace_dir.mkdir()
        workspace = await store.files.create_workspace("ws", "WS", str(workspace_dir))
        return {"job_type": job_type, "job": job, "workspace": workspace}
    return io_loop.run_sync(build)


async def snapshot(store, workspace_dir: Path) -> dict:
    """Every collection's count and every file under the test's folders."""
    counts = {name: await store.db.count(name, {}) for name in COLLECTIONS}
    return {**counts, "disk": sorted(str(p) for p in workspace_dir.parent.rglob("*"))}


async def assert_untouched(api, store, workspace_dir: Path, before: dict) -> None:
    assert await snapshot(store, workspace_dir) == before
    status, body, _ = await api.get("/jobs/")
    assert status == 200 and body["count"] == before["jobs"]


# -- malformed JSON, wrong types ---------------------------------------------------------------

NOT_JSON = "Request body is not valid JSON: "


def body_routes(world) -> list[tuple[str, str]]:
    return [("POST", "/queue/new-job/"), ("POST", "/job-types/"),
            ("PATCH", f"/job-types/{world['job_type']['id']}/"),
            ("PATCH", f"/jobs/{world['job']['id']}/"), ("POST", "/queue/requeue-jobs/"),
            ("POST", "/workspaces/")]


@pytest.mark.gen_test
@pytest.mark.parametrize("raw, message", [
    (b'{"job_type_id": 1,', NOT_JSON + "Expecting property name enclosed in double quotes: "
                                       "line 1 column 19 (char 18)"),
    (b'{"a": 1} {"b": 2}', NOT_JSON + "Extra data: line 1 column 10 (char 9)"),
    (b"[1, 2]", "Request body must be a JSON object"),
    (b'"text"', "Request body must be a JSON object"),
    (b"null", "Request body must be a JSON object"),
    (b"[" * 50_000, "Request body is nested too deeply"),
])
async def test_bodies_that_are_not_json_objects(api, store, world, workspace_dir, raw, message):
    before = await snapshot(store, workspace_dir)
    for method, path in body_routes(world):
        status, body, headers = await api.call(method, path, raw=raw)
        assert_plain_error(status, body, headers, 400)
        assert body == message + "\n", (method, path)
    await assert_untouched(api, store, workspace_dir, before)


@pytest.mark.gen_test
async def test_wrong_types_name_the_field(api, store, world, workspace_dir):
    job_type_id, job_id = world["job_type"]["id"], world["job"]["id"]
    cases = [
        ("POST", "/queue/new-job/", {"job_type_id": "1"},
         "Parameter must be an integer: \"job_type_id\" (got '1')"),
        ("POST", "/queue/new-job/", {"job_type_id": True},
         'Parameter must be an integer: "job_type_id" (got True)'),
        ("POST", "/queue/new-job/", {"job_type_id": job_type_id, "job_data": []},
         'Parameter must be a valid JSON object: "job_data"'),
        ("POST", "/queue/requeue-jobs/", {"job_ids": "1"}, "job_ids must be a list of integers"),
        ("POST", "/queue/requeue-jobs/", {"job_ids": [1], "priority": "high"},
         "priority must be an integer"),
        ("POST", "/queue/requeue-jobs/", {"started": 5}, "started must be an ISO-8601 string"),
        ("POST", "/workspaces/", {"name": "ok", "title": 5}, "title must be a string"),
        ("PATCH", f"/jobs/{job_id}/", {"status": 5},
         "status 5 is not allowed; the only change allowed is CANCELED"),
        ("PATCH", f"/job-types/{job_type_id}/", {"priority": "high"},
         "priority must be an integer"),
        ("POST", "/job-types/", {"name": 5, "version": "1.0", "interface": {}},
         "name must be a non-empty string"),
    ]
    before = await snapshot(store, workspace_dir)
    for method, path, payload, message in cases:
        status, body, headers = await api.call(method, path, payload)
        assert_plain_error(status, body, headers, 400)
        assert body == message + "\n", (path, payload)
    await assert_untouched(api, store, workspace_dir, before)


# -- huge numbers ------------------------------------------------------------------------------

GOOGOL = "1" + "0" * 100


def too_big(path: str, text: str) -> str:
    return f"{path} {text[:40]} is out of range; integers must fit in 64 bits"


@pytest.mark.gen_test
async def test_huge_numbers_in_bodies(api, store, world, workspace_dir):
    """Checked before any handler runs: a huge number deep in job_data writes no event."""
    job_type_id = world["job_type"]["id"]
    cases = [
        ("POST", "/queue/new-job/", f'{{"job_type_id": {GOOGOL}}}',
         too_big("job_type_id", GOOGOL)),
        ("POST", "/queue/new-job/", f'{{"job_type_id": {GOOGOL * 50}}}',
         too_big("job_type_id", GOOGOL)),
        ("POST", "/queue/new-job/", '{"job_type_id": 9223372036854775808}',
         too_big("job_type_id", "9223372036854775808")),
        ("POST", "/queue/new-job/", '{"job_type_id": 1e400}',
         "job_type_id inf is not allowed; numbers must be finite"),
        ("POST", "/queue/new-job/", '{"job_type_id": -Infinity}',
         "job_type_id -inf is not allowed; numbers must be finite"),
        ("POST", "/queue/new-job/",
         json.dumps({"job_type_id": job_type_id, "job_data": {"input_data": [
             {"name": "x", "value": "1"}, {"name": "y", "value": 10**100}]}}),
         too_big("job_data.input_data[1].value", GOOGOL)),
        ("POST", "/queue/new-job/",
         f'{{"job_type_id": {job_type_id}, "job_data": {{"input_data": [NaN]}}}}',
         "job_data.input_data[0] nan is not allowed; numbers must be finite"),
        ("POST", "/queue/requeue-jobs/", f'{{"job_ids": [1, -{GOOGOL}]}}',
         too_big("job_ids[1]", f"-{GOOGOL}")),
        ("POST", "/queue/requeue-jobs/", f'{{"job_ids": [1], "priority": {GOOGOL}}}',
         too_big("priority", GOOGOL)),
        ("PATCH", f"/job-types/{job_type_id}/", f'{{"priority": -{GOOGOL}}}',
         too_big("priority", f"-{GOOGOL}")),
        ("PATCH", f"/job-types/{job_type_id}/", '{"cpus_required": 1e400}',
         "cpus_required inf is not allowed; numbers must be finite"),
        ("POST", "/workspaces/", '{"name": "ws2", "title": "t", "0": [[[1e999]]]}',
         "0[0][0][0] inf is not allowed; numbers must be finite"),
    ]
    before = await snapshot(store, workspace_dir)
    for method, path, raw, message in cases:
        status, body, headers = await api.call(method, path, raw=raw.encode())
        assert_plain_error(status, body, headers, 400)
        assert body == message + "\n", raw[:80]
    await assert_untouched(api, store, workspace_dir, before)


@pytest.mark.gen_test
@pytest.mark.parametrize("path, code, message", [
    (f"/jobs/?page={GOOGOL}", 404, f"page {GOOGOL} is past the last page"),
    (f"/jobs/?page_size={GOOGOL}", 400,
     f"page_size {GOOGOL} is out of range; integers must fit in 64 bits"),
    (f"/jobs/?job_id={GOOGOL}", 400,
     f"job_id {GOOGOL} is out of range; integers must fit in 64 bits"),
    (f"/job-executions/?node_id=-{GOOGOL}", 400,
     f"node_id -{GOOGOL} is out of range; integers must fit in 64 bits"),
    ("/jobs/?page=1e400", 400, "page must be an integer, not '1e400'"),
    ("/jobs/1234567890123456789/", 404, "No such endpoint: /jobs/1234567890123456789/"),
    ("/jobs/999999999999999999/", 404, "Job 999999999999999999 does not exist"),
])
async def test_huge_numbers_in_queries_and_paths(api, path, code, message):
    status, body, headers = await api.get(path)
    assert_plain_error(status, body, headers, code)
    assert body == message + "\n"


@pytest.mark.gen_test
async def test_huge_workspace_id_in_an_upload(api, store, world, workspace_dir):
    before = await snapshot(store, workspace_dir)
    for query, message in (
            (f"workspace_id={GOOGOL}",
             f"workspace_id {GOOGOL} is out of range; integers must fit in 64 bits"),
            (f"workspace_id={GOOGOL * 50}", f"workspace_id must be an integer, not '{GOOGOL[:40]}'"),
            ("workspace_id=", 'Missing required parameter: "workspace_id"')):
        status, body, headers = await api.call(
            "POST", f"/files/?{query}&file_name=a.txt", raw=b"data",
            headers={"Content-Type": "application/octet-stream"})
        assert_plain_error(status, body, headers, 400)
        assert body == message + "\n"
    await assert_untouched(api, store, workspace_dir, before)


# -- repeated parameters -----------------------------------------------------------------------

@pytest.mark.gen_test
async def test_ten_thousand_repeated_parameters_are_a_400(api, store, world, workspace_dir):
    before = await snapshot(store, workspace_dir)
    many = "&".join(["job_id=1"] * 10_000)
    message = ("Too many query parameter values: 10000, 'job_id' 10000 times; at most 1000 per "
               "request (max_query_values)\n")
    for method, path, payload in (
            ("GET", f"/jobs/?{many}", None),
            ("POST", f"/queue/new-job/?{many}", {"job_type_id": world["job_type"]["id"]}),
            ("POST", f"/queue/requeue-jobs/?{many}", {"job_ids": [world["job"]["id"]]})):
        status, body, headers = await api.call(method, path, payload)
        assert_plain_error(status, body, headers, 400)
        assert body == message
    await assert_untouched(api, store, workspace_dir, before)
    status, body, _ = await api.get("/jobs/?" + "&".join(["job_id=1"] * 1000))
    assert status == 200 and body["count"] == 1


# -- non-UTF-8 bytes ---------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_non_utf8_bytes(api, store, world, workspace_dir):
    workspace_id = world["workspace"]["id"]
    before = await snapshot(store, workspace_dir)
    status, body, headers = await api.get("/jobs/?job_type_name=%FF%FE")
    assert_plain_error(status, body, headers, 400)
    assert body == "Invalid unicode in job_type_name: b'\\xff\\xfe'\n"
    status, body, headers = await api.call("POST", "/queue/new-job/",
                                           raw=b'{"job_type_id": "\xff"}')
    assert_plain_error(status, body, headers, 400)
    assert body == ("Request body is not valid JSON: 'utf-8' codec can't decode byte 0xff in "
                    "position 17: invalid start byte\n")
    status, body, headers = await api.call(
        "POST", f"/files/?workspace_id={workspace_id}&file_name=%FF.txt", raw=b"data",
        headers={"Content-Type": "application/octet-stream"})
    assert_plain_error(status, body, headers, 400)
    assert body == "file_name must be UTF-8 text\n"
    await assert_untouched(api, store, workspace_dir, before)


# -- path traversal in file names --------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("quoted, name", [
    ("..%2Fx", "../x"), ("..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd"),
    ("%2Fetc%2Fpasswd", "/etc/passwd"), ("a%2F..%2F..%2Fb", "a/../../b"), ("..", ".."),
    ("..%5Cx", "..\\x"), ("a%00b", "a\x00b"), ("x%0Ay", "x\ny"),
])
async def test_path_traversal_in_upload_file_names(api, store, world, workspace_dir, quoted,
                                                   name):
    workspace_id = world["workspace"]["id"]
    before = await snapshot(store, workspace_dir)
    message = f"file_name must be a plain file name without folders, not {name!r}\n"
    status, body, headers = await api.call(
        "POST", f"/files/?workspace_id={workspace_id}&file_name={quoted}", raw=b"secret",
        headers={"Content-Type": "application/octet-stream"})
    assert_plain_error(status, body, headers, 400)
    assert body == message
    status, body, headers = await api.post_form(form_field("workspace_id", workspace_id),
                                                form_file(name, "secret"))
    if name.isprintable():
        assert_plain_error(status, body, headers, 400)
        assert body == message
    else:  # a control character breaks the part's header line: Tornado refuses the form
        assert_plain_error(status, body, headers, 400, "Invalid body: Invalid multipart/form-data:")
    await assert_untouched(api, store, workspace_dir, before)


# -- oversized bodies --------------------------------------------------------------------------

JSON_TOO_LARGE = "Request body too large: the limit is 1024 KiB (max_body_kb)\n"
UPLOAD_TOO_LARGE = f"Upload too large: the limit is {UPLOAD_LIMIT_MB} MiB (max_upload_mb)\n"


def padded_json(payload: dict, size: int) -> bytes:
    """`payload` as JSON of exactly `size` bytes (trailing spaces are valid JSON)."""
    raw = json.dumps(payload).encode()
    return raw + b" " * (size - len(raw))


@pytest.mark.gen_test
async def test_oversized_json_bodies_are_413(api, store, world, workspace_dir):
    new_job = {"job_type_id": world["job_type"]["id"]}
    before = await snapshot(store, workspace_dir)
    for method, path in body_routes(world):
        status, body, headers = await api.call(method, path,
                                               raw=padded_json(new_job, BODY_LIMIT + 1))
        assert_plain_error(status, body, headers, 413)
        assert body == JSON_TOO_LARGE
    status, body, headers = await api.call("POST", "/queue/new-job/",
                                           raw=padded_json(new_job, 50 * BODY_LIMIT))
    assert_plain_error(status, body, headers, 413)
    assert body == JSON_TOO_LARGE
    await assert_untouched(api, store, workspace_dir, before)
    status, body, _ = await api.call("POST", "/queue/new-job/",
                                     raw=padded_json(new_job, BODY_LIMIT))
    assert status == 201 and body["status"] == "QUEUED"


@pytest.mark.gen_test
async def test_oversized_uploads_are_413(api, store, world, workspace_dir):
    workspace_id = world["workspace"]["id"]
    limit = UPLOAD_LIMIT_MB * 1024 * 1024
    path = f"/files/?workspace_id={workspace_id}&file_name=big.bin"
    raw_headers = {"Content-Type": "application/octet-stream"}
    before = await snapshot(store, workspace_dir)
    status, body, headers = await api.call("POST", path, raw=b"x" * (limit + 1),
                                           headers=raw_headers)
    assert_plain_error(status, body, headers, 413)
    assert body == UPLOAD_TOO_LARGE
    status, body, headers = await api.post_form(form_file("big.bin", b"x" * limit, None),
                                                path=f"/files/?workspace_id={workspace_id}")
    assert_plain_error(status, body, headers, 413)
    assert body == UPLOAD_TOO_LARGE
    await assert_untouched(api, store, workspace_dir, before)
    status, body, _ = await api.call("POST", path, raw=b"x" * limit, headers=raw_headers)
    assert status == 201 and body["file_size"] == limit


@pytest.mark.gen_test
async def test_a_chunked_upload_is_cut_off_at_the_limit(api, http_client, base_url, store, world,
                                                        workspace_dir):
    """No Content-Length to judge by: the bytes are counted as they come."""
    before = await snapshot(store, workspace_dir)
    chunk = b"x" * (256 * 1024)

    async def produce(write):
        for _ in range(4 * UPLOAD_LIMIT_MB + 1):
            await write(chunk)

    with pytest.raises(HTTPClientError) as caught:
        await http_client.fetch(
            f"{base_url}/files/?workspace_id={world['workspace']['id']}&file_name=big.bin",
            method="POST", body_producer=produce,
            headers={**OPERATOR_HEADERS, "Content-Type": "application/octet-stream"})
    assert caught.value.code == 413
    assert caught.value.response.body.decode() == UPLOAD_TOO_LARGE
    await assert_untouched(api, store, workspace_dir, before)


@pytest.mark.gen_test
async def test_a_huge_declared_body_is_answered_before_it_is_sent(api, http_port, store, world,
                                                                  workspace_dir):
    """Content-Length far past the limit: the 413 comes at once and the connection closes,
    without the server reading a byte of the body."""
    before = await snapshot(store, workspace_dir)
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"POST /queue/new-job/ HTTP/1.1\r\nHost: localhost\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n"
                 b"Authorization: " + OPERATOR_HEADERS["Authorization"].encode() + b"\r\n\r\n")
    await writer.drain()
    response = await reader.read()  # up to the server's close
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nConnection: close" in head
    assert body.decode() == JSON_TOO_LARGE
    await assert_untouched(api, store, workspace_dir, before)


@pytest.mark.gen_test
async def test_a_file_name_no_header_can_carry_still_downloads(api, http_client, base_url,
                                                               world):
    """Found by the fuzz test: a name outside Latin-1 made the download's header a 500."""
    name = "r\u00e9sum\u00e9 \U000ae251\".txt"
    status, body, _ = await api.call(
        "POST", f"/files/?workspace_id={world['workspace']['id']}&file_name={quote(name)}",
        raw=b"bytes", headers={"Content-Type": "application/octet-stream"})
    assert status == 201 and body["file_name"] == name
    response = await http_client.fetch(f"{base_url}/files/{body['id']}/download/",
                                       headers=OPERATOR_HEADERS)
    assert response.body == b"bytes"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ __.txt\"; "
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%F2%AE%89%91%22.txt")
