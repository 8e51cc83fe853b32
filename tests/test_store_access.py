"""The embedded store and the data folder are the server's alone (issue 11, item 1).

The attack: the embedded nx-27017 has no authentication, so any local account that can connect
to it can insert a job type and a job, which the engine then runs as the server's user; and the
data folder's files (the store's SQLite files, auth.json, the logs) were readable by everyone.
Here another local user (`nobody`, through setpriv) tries both, with a stdlib-only client (the
system Python; it sends a ready-made OP_MSG `insert`), against the store alone and against a
whole server that has run a job. The data folders live under a folder every user can enter,
since pytest's own temporary folders (0700) would hide them anyway."""

import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import bson
import pymongo
import pytest
from pymongo.uri_parser import parse_uri

from engine.sandbox import probe
from store.embedded import EmbeddedMongo
from tests.test_faults import Server, job_type, submit, until_jobs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nobody")

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# Runs as nobody: connect to the store (a Unix socket path or host:port), send the message, print
# the reply in hex, or the error's name; then try to read each path (a folder: list it).
CLIENT = r"""
import json, os, socket, sys
target, message, *paths = sys.argv[1:]

def ask():
    if target.startswith("/"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(target)
    else:
        host, port = target.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=5)
    with sock:
        sock.sendall(bytes.fromhex(message))
        reply = b""
        while len(reply) < 4 or len(reply) < int.from_bytes(reply[:4], "little"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.hex()

def read(path):
    if os.path.isdir(path):
        os.listdir(path)
    else:
        open(path, "rb").close()
    return "read"

def attempt(action, *args):
    try:
        return action(*args)
    except OSError as exc:
        return type(exc).__name__

print(json.dumps({"store": attempt(ask), **{path: attempt(read, path) for path in paths}}))
"""

PLANTED = {"name": "planted", "version": "1.0",
           "interface": {"command": "sh", "command_arguments": "-c 'id > /tmp/owned'"}}
READY = re.compile(r"embedded store \(nx-27017\) ready at (\S+), data in")


def op_msg(command: dict) -> bytes:
    """One OP_MSG (opcode 2013) with the command as its body section."""
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(command)
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body


def stdlib_python() -> str:
    """A Python that nobody can run (the venv's may sit under root's 0700 home)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([*NOBODY, candidate, "-I", "-c", "pass"],
                          check=False, capture_output=True).returncode == 0:
            return candidate
    pytest.fail("no Python that the user nobody can run")


def as_nobody(url: str, paths: list[Path]) -> dict:
    """What the user nobody gets: from the store at `url` ("store": the reply, in hex, to an
    insert of a job type into the jobdeck database, or the error's name), and from each path
    ("read" or the error's name)."""
    host, port = parse_uri(url)["nodelist"][0]
    target = host if port is None else f"{host}:{port}"
    message = op_msg({"insert": "job_types", "documents": [PLANTED], "$db": "jobdeck"})
    proc = subprocess.run([*NOBODY, stdlib_python(), "-I", "-c", CLIENT, target, message.hex(),
                           *map(str, paths)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tcp_listeners(pid: int) -> list[int]:
    """The TCP ports the process `pid` listens on (its sockets, found in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def modes(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (and the folder, "."), by relative path: its permission bits."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def private(found: dict[str, str], folder: Path) -> dict[str, str]:
    """What `modes` should be: 0700 for folders, 0600 for everything else; but a sandboxed job's
    execution folder is root's with the job user's group, 1770 (engine/sandbox.py: the job
    writes there, inside the 0700 data folder no other user can enter)."""
    sandboxed = probe() == ""
    return {name: oct(0o1770 if sandboxed and re.fullmatch(r"executions/\d+", name)
                      else 0o700 if (folder / name).is_dir() else 0o600) for name in found}


@pytest.fixture
def open_base():
    """A folder every local user can enter, removed after the test."""
    base = Path(tempfile.mkdtemp(prefix="jobdeck-access-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_another_local_user_cannot_reach_the_embedded_store_or_read_its_files(open_base):
    data = open_base / "data"
    embedded = EmbeddedMongo(data)
    url = embedded.start()
    try:
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
            client.jobdeck.jobs.insert_one({"_id": 1})
            files = [data, data / "jobdeck.db", data / "admin.db", embedded.log_path]
            assert as_nobody(url, files) == {
                "store": "PermissionError", **{str(path): "PermissionError" for path in files}}
            assert client.jobdeck.job_types.count_documents({}) == 0
        assert tcp_listeners(embedded.pid) == []
        found = modes(data)
        assert found == private(found, data)
        assert {"jobdeck.db", "admin.db", "nx-27017.log", "embedded-store.pid"} <= set(found)
    finally:
        embedded.stop()


@pytest.mark.gen_test(timeout=120)
async def test_another_local_user_cannot_reach_a_servers_store_or_read_its_data_folder(
        open_base):
    server = Server(open_base)
    try:
        await server.start()
        await check_server(server)
    finally:
        server.stop()


async def check_server(server: Server) -> None:
    job_id = await submit(server.api, await job_type(server.api, "quick", "echo done"))
    await until_jobs(server.api, [job_id], "COMPLETED")
    status, detail, _ = await server.api.get(f"/jobs/{job_id}/")
    assert status == 200, detail
    status, workspace, _ = await server.api.post("/workspaces/", {"name": "uploads"})
    assert status == 201, workspace
    status, upload, _ = await server.api.call(
        "POST", f"/files/?workspace_id={workspace['id']}&file_name=note.txt&media_type=text/plain",
        raw=b"secret", headers={"Content-Type": "application/octet-stream"})
    assert status == 201, upload
    url = READY.findall(server.log())[-1]
    data = server.data_dir
    exe = data / "executions" / str(detail["job_exes"][0]["id"])
    (uploaded,) = (data / "workspaces" / "uploads").rglob("note.txt")
    files = [data, data / "auth.json", data / "jobdeck.db", data / "server.lock",
             data / "nx-27017.log", exe, exe / "stdout.log", uploaded]
    assert (exe / "stdout.log").read_text() == "done\n"
    assert uploaded.read_bytes() == b"secret"

    assert as_nobody(url, files) == {
        "store": "PermissionError", **{str(path): "PermissionError" for path in files}}
    status, body, _ = await server.api.get("/job-types/?name=planted")
    assert (status, body["count"]) == (200, 0)
    assert tcp_listeners(server.store_pid) == []
    found = modes(data)
    assert found == private(found, data)
