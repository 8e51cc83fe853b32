"""Workspaces, uploads, downloads, products and nodes over HTTP."""

from pathlib import Path
from urllib.parse import urlencode

import pytest

from presentation import models
from tests.fixtures import form_field, form_file
from tests.tokens import OPERATOR_HEADERS

FILE_KEYS = list(models.ScaleFile.keys)
WORKSPACE_KEYS = list(models.Workspace.keys)


def assert_plain(status, body, headers, code, fragment):
    assert status == code, body
    assert headers["Content-Type"].startswith("text/plain")
    assert fragment in body, body


@pytest.mark.gen_test
async def test_workspaces_create_list_and_read(api, data_dir):
    status, created, headers = await api.post("/workspaces/", {"name": "raw", "title": "Raw data"})
    assert status == 201
    assert list(created) == [*WORKSPACE_KEYS, "json_config"]
    assert headers["Location"] == f"/workspaces/{created['id']}/"
    assert (created["name"], created["title"], created["is_active"]) == ("raw", "Raw data", True)
    base = Path(created["json_config"]["broker"]["host_path"])
    assert base == Path(data_dir).resolve() / "workspaces" / "raw" and base.is_dir()
    status, page, _ = await api.get("/workspaces/")
    assert status == 200 and page["count"] == 1
    assert page["results"] == [{k: created[k] for k in WORKSPACE_KEYS}]
    status, one, _ = await api.get(f"/workspaces/{created['id']}/")
    assert (status, one) == (200, created)

    assert_plain(*await api.post("/workspaces/", {"name": "raw"}), 400, "already exists")
    assert_plain(*await api.post("/workspaces/", {"name": "../up"}), 400, "letters, digits")
    assert_plain(*await api.post("/workspaces/", {}), 400, '"name"')
    assert_plain(*await api.post("/workspaces/", {"name": 5}), 400,
                 "name must be 1 to 50 letters, digits, '_' or '-'")
    assert_plain(*await api.post("/workspaces/", {"name": "rel", "base_path": "a/b"}), 400,
                 "absolute")
    assert_plain(*await api.get("/workspaces/999/"), 404, "Workspace 999 does not exist")


@pytest.mark.gen_test
async def test_workspaces_are_made_only_in_the_data_folder_by_default(api, data_dir):
    """workspace_roots unset: base_path must be in data_dir (issue 11 item 15)."""
    root = Path(data_dir).resolve()
    for base_path in ("/", "/etc", "/proc/self", f"{root}/../elsewhere"):
        status, body, headers = await api.post("/workspaces/", {"name": "w",
                                                                "base_path": base_path})
        assert_plain(status, body, headers, 400, "")
        assert body == (f"base_path {base_path!r} is outside the workspace roots; it must be a "
                        f"folder in {root} (workspace_roots)\n")
    assert not (root.parent / "elsewhere").exists()
    status, body, _ = await api.post("/workspaces/", {"name": "w", "base_path": f"{root}/mine"})
    assert status == 201 and body["json_config"]["broker"]["host_path"] == f"{root}/mine"


@pytest.mark.gen_test
async def test_upload_and_download_round_trip(api, make):
    ws = await make.workspace("uploads")
    payload = bytes(range(256)) * 1000
    body = await make.upload(ws["id"], "data.bin", payload, "application/octet-stream")
    assert list(body) == FILE_KEYS
    assert (body["file_name"], body["media_type"], body["file_size"]) == \
        ("data.bin", "application/octet-stream", len(payload))
    assert body["workspace"] == {"id": ws["id"], "name": "uploads"}
    assert body["url"] == f"{api.base_url}/files/{body['id']}/download/"
    assert len(body["uuid"]) == 32
    status, same, _ = await api.get(f"/files/{body['id']}/")
    assert (status, same) == (200, body)
    response = await api.http_client.fetch(body["url"], headers=OPERATOR_HEADERS)
    assert response.code == 200 and response.body == payload
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="data.bin"'
    assert_plain(*await api.get("/files/999/"), 404, "File 999 does not exist")
    assert_plain(*await api.get("/files/999/download/"), 404, "File 999 does not exist")


@pytest.mark.gen_test
async def test_multipart_upload(api, make):
    ws = await make.workspace("forms")
    status, body, _ = await api.post_form(form_field("workspace_id", ws["id"]),
                                          form_file("notes.txt", "some notes"))
    assert status == 201, body
    assert (body["file_name"], body["media_type"], body["file_size"]) == \
        ("notes.txt", "text/plain", 10)
    status, raw, _ = await api.get(f"/files/{body['id']}/download/")
    assert (status, raw) == (200, "some notes")


@pytest.mark.gen_test
async def test_uploads_never_leave_the_workspace(api, make, data_dir):
    ws = await make.workspace("safe")
    for name in ("../escape.txt", "a/b.txt", "..", ".", "/etc/passwd", "..\\x.txt", "bad\x01"):
        query = urlencode({"workspace_id": ws["id"], "file_name": name})
        status, body, headers = await api.call("POST", f"/files/?{query}", raw=b"x")
        assert_plain(status, body, headers, 400, "plain file name")
    assert not (Path(data_dir) / "workspaces" / "escape.txt").exists()
    assert_plain(*await api.call("POST", "/files/?file_name=a.txt", raw=b"x"), 400,
                 '"workspace_id"')
    assert_plain(*await api.call("POST", "/files/?file_name=a.txt&workspace_id=77", raw=b"x"),
                 400, "Workspace 77 does not exist")
    assert_plain(*await api.call("POST", "/files/?file_name=a.txt&workspace_id=x", raw=b"x"),
                 400, "workspace_id must be an integer")
    assert_plain(*await api.call("POST", f"/files/?workspace_id={ws['id']}", raw=b"x"), 400,
                 '"file_name"')


@pytest.mark.gen_test
async def test_empty_products_and_nodes(api):
    status, body, _ = await api.get("/products/")
    assert (status, body) == (200, {"count": 0, "next": None, "previous": None, "results": []})
    status, body, _ = await api.get("/nodes/")
    assert (status, body["count"]) == (200, 0)
    assert_plain(*await api.get("/nodes/5/"), 404, "Node 5 does not exist")
    assert_plain(*await api.get("/products/?order=size"), 400, "order")
