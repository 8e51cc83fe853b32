"""`python server.py backup DEST` and `restore` (store/backup.py) with real processes: an online
backup under write load, restored into a fresh data folder, holds every job acknowledged before
it began with its status and ids, the uploads and the execution logs; restore refuses a folder a
server holds; bad input is one line and exit 2."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.backup import MANIFEST, command
from tests.test_faults import Server, job_type, until_jobs
from tests.test_server import ROOT, STARTUP_LIMIT
from tests.tokens import OPERATOR_HEADERS

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone

WRITERS = 4
LOADED = 30  # jobs acknowledged before the backup starts
UPLOAD = b"uploaded before the backup\n" * 100


def jobdeck(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "server.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=STARTUP_LIMIT * 2, check=False, **kw)


async def ajobdeck(*args: str) -> tuple[int, str, str]:
    """The command as a child process, awaited, so the write load goes on meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


class Load:
    """Writers submitting jobs of a paused job type (they stay QUEUED) and canceling some,
    recording when each change was acknowledged (monotonic time) and every answer that was not
    the change made."""

    def __init__(self, api, held: dict):
        self.api, self.held = api, held
        self.submitted: dict[int, dict] = {}  # job id -> sent, acked, job_type_id, exe_ids
        self.cancel_sent: dict[int, float] = {}
        self.cancel_acked: dict[int, float] = {}
        self.bad: list[tuple] = []
        self.latencies: list[tuple[float, float]] = []  # (sent, seconds)
        self.stopping = False

    async def writer(self) -> None:
        count = 0
        while not self.stopping:
            count += 1
            sent = time.monotonic()
            status, body, _ = await self.api.post("/queue/new-job/",
                                                  {"job_type_id": self.held["id"]})
            acked = time.monotonic()
            self.latencies.append((sent, acked - sent))
            if status != 201 or body["status"] != "QUEUED":
                self.bad.append(("submit", status, body))
                continue
            self.submitted[body["id"]] = {"sent": sent, "acked": acked, "job_type_id": body["job_type"]["id"],
                                          "exe_ids": [e["id"] for e in body["job_exes"]]}
            if count % 3 == 0:  # cancel one job in three, a little after its submission
                await self.cancel(body["id"])

    async def cancel(self, job_id: int) -> None:
        sent = self.cancel_sent[job_id] = time.monotonic()
        status, body, _ = await self.api.patch(f"/jobs/{job_id}/", {"status": "CANCELED"})
        acked = time.monotonic()
        self.latencies.append((sent, acked - sent))
        if status != 200 or body["status"] != "CANCELED":
            self.bad.append(("cancel", status, body))
        else:
            self.cancel_acked[job_id] = acked

    def expected_status(self, job_id: int, began: float, ended: float) -> set[str]:
        """The statuses the snapshot may show for a job acknowledged before the backup began:
        CANCELED once its cancel was acknowledged before, QUEUED if no cancel was sent before
        the backup ended, either when the cancel raced the backup."""
        if self.cancel_acked.get(job_id, float("inf")) < began:
            return {"CANCELED"}
        if self.cancel_sent.get(job_id, float("inf")) > ended:
            return {"QUEUED"}
        return {"QUEUED", "CANCELED"}


async def all_jobs(api) -> dict[int, dict]:
    jobs, page = {}, 1
    while True:
        status, body, _ = await api.get(f"/jobs/?page_size=1000&page={page}")
        assert status == 200, body
        jobs.update((row["id"], row) for row in body["results"])
        if not body["next"]:
            return jobs
        page += 1


def ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


@pytest.mark.gen_test(timeout=300)
async def test_online_backup_under_write_load_restores_every_acknowledged_job(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old, new = Server(tmp_path / "old"), Server(tmp_path / "new")
    try:
        await old.start()
        api = old.api
        # Before the load: a job that ran (its execution log), an upload, a paused job type.
        hello = await job_type(api, "hello", "echo hello from the backup test")
        status, ran, _ = await api.post("/queue/new-job/", {"job_type_id": hello["id"]})
        assert status == 201, ran
        await until_jobs(api, [ran["id"]], "COMPLETED")
        status, ws, _ = await api.post("/workspaces/", {"name": "inbox"})
        assert status == 201, ws
        status, upload, _ = await api.post(
            f"/files/?workspace_id={ws['id']}&file_name=notes.txt&media_type=text/plain",
            raw=UPLOAD)
        assert status == 201, upload
        held = await job_type(api, "held", "exit 0")
        status, body, _ = await api.patch(f"/job-types/{held['id']}/", {"is_paused": True})
        assert status == 200 and body["is_paused"] is True, body

        load = Load(api, held)
        writers = [asyncio.create_task(load.writer()) for _ in range(WRITERS)]
        while len(load.submitted) < LOADED or len(load.cancel_acked) < LOADED // 4:
            await asyncio.sleep(0.05)
        dest = tmp_path / "backup"
        began = time.monotonic()
        code, out, err = await ajobdeck("backup", str(dest), "--data-dir", str(old.data_dir))
        ended = time.monotonic()
        await asyncio.sleep(1)
        load.stopping = True
        await asyncio.gather(*writers)
        assert code == 0, err
        assert err == "" and out.startswith(f"backed up {old.data_dir} to {dest} in "), out

        # The server went on serving while the backup ran: every write was acknowledged as
        # the change made, some of them during the backup.
        assert load.bad == []
        during = [s for sent, s in load.latencies if began <= sent and sent + s <= ended]
        before = [s for sent, s in load.latencies if sent + s < began]
        assert during, "no write was acknowledged while the backup ran"
        print(f"\nwrites: {len(before)} before the backup (median {ms(before, .5):.0f} ms, "
              f"p99 {ms(before, .99):.0f} ms), {len(during)} during its {ended - began:.2f} s "
              f"(median {ms(during, .5):.0f} ms, max {ms(during, 1):.0f} ms)")

        manifest = json.loads((dest / MANIFEST).read_text())
        assert [e["file"] for e in manifest["store"]] == ["jobdeck.db", "admin.db"]
        assert (dest / "auth.json").stat().st_mode & 0o777 == 0o600
        assert dest.stat().st_mode & 0o777 == 0o700
        assert manifest["workspaces"] == {"files": 1, "bytes": len(UPLOAD)}
        assert manifest["execution_logs"]["files"] == 2

        # A second backup into the same folder needs --force.
        again = jobdeck("backup", str(dest), "--data-dir", str(old.data_dir))
        assert again.returncode == 2
        assert again.stderr == (f"jobdeck: backup: {dest} already holds a backup; give another "
                                "folder, or add --force to replace it\n")
        # Restore refuses the folder the running server holds, and leaves it alone.
        refused = jobdeck("restore", str(dest), "--data-dir", str(old.data_dir), "--force")
        assert refused.returncode == 2
        [line] = refused.stderr.splitlines()
        assert line.startswith(f"jobdeck: restore: another Jobdeck server (pid {old.proc.pid}, "
                               f"port {old.port}) is using the data folder"), line
        assert not list((tmp_path / "old").glob("*before-restore*"))

        old.stop()
        # The old folder goes away, so nothing restored can lean on it.
        old.data_dir.rename(tmp_path / "old" / "gone")
        code, out, err = await ajobdeck("restore", str(dest), "--data-dir", str(new.data_dir))
        assert code == 0, err
        assert out.startswith(f"restored {dest} (taken {manifest['started']}"), out
        await new.start()
        restored = await all_jobs(new.api)

        acknowledged = {i: job for i, job in load.submitted.items() if job["acked"] < began}
        assert len(acknowledged) >= LOADED
        missing = sorted(set(acknowledged) - set(restored))
        assert missing == [], f"jobs acknowledged before the backup are missing: {missing[:10]}"
        wrong = []
        for job_id, job in acknowledged.items():
            status, details, _ = await new.api.get(f"/jobs/{job_id}/")
            assert status == 200, details
            if (details["status"] not in load.expected_status(job_id, began, ended)
                    or details["job_type"]["id"] != job["job_type_id"]
                    or [e["id"] for e in details["job_exes"]] != job["exe_ids"]):
                wrong.append((job_id, details["status"], job))
        assert wrong == []
        # Nothing that was never submitted, nothing submitted after the backup ended.
        assert set(restored) <= set(load.submitted) | {ran["id"]}
        assert not {i for i, job in load.submitted.items() if job["sent"] > ended} & set(restored)
        assert manifest["store"][0]["collections"]["jobs"] == len(restored)

        # The job that ran: COMPLETED, with its log; the upload, byte for byte, in the workspace
        # now inside the new folder.
        assert restored[ran["id"]]["status"] == "COMPLETED"
        status, logs, _ = await new.api.get(f"/job-executions/{ran['job_exes'][0]['id']}/logs/")
        assert status == 200 and "hello from the backup test" in logs["stdout"], logs
        response = await new.api.http_client.fetch(
            f"{new.url}/files/{upload['id']}/download/", headers=OPERATOR_HEADERS)
        assert response.body == UPLOAD
        status, workspace, _ = await new.api.get(f"/workspaces/{ws['id']}/")
        assert workspace["json_config"]["broker"]["host_path"] == str(
            new.data_dir.resolve() / "workspaces" / "inbox")
    finally:
        old.stop()
        new.stop()


# -- without a server: a data folder laid out as nx-27017 and the engine leave it ----------------

def make_data_dir(root: Path) -> Path:
    """A data folder with a store file in nx-27017's layout (a table per collection, documents as
    JSON in `data`), an upload, an execution's log and scratch, auth.json and the store's own
    leftovers."""
    data = root / "data"
    upload = data / "workspaces" / "inbox" / "uploads" / "u1" / "a.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("a")
    exe = data / "executions" / "1"
    (exe / "tmp").mkdir(parents=True)
    (exe / "stdout.log").write_text("out\n")
    (exe / "stderr.log").write_text("")
    (exe / "tmp" / "scratch").write_text("scratch")
    (data / "auth.json").write_text('{"cookie_secret": "s"}')
    (data / "auth.json").chmod(0o600)
    (data / "nx-27017.log").write_text("log")
    conn = sqlite3.connect(data / "jobdeck.db")
    for table in ("jobs", "job_exes", "workspaces"):
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, _id TEXT, "
                     "data TEXT NOT NULL)")
    work = str(data.resolve() / "executions" / "1")
    docs = {"jobs": [{"id": 1, "status": "QUEUED"}],
            "job_exes": [{"id": 1, "work_dir": work, "stdout_file": f"{work}/stdout.log",
                          "stderr_file": f"{work}/stderr.log", "environment": {"HOME": work}}],
            "workspaces": [{"id": 1, "name": "inbox",
                            "base_path": str(data.resolve() / "workspaces" / "inbox")},
                           {"id": 2, "name": "shared", "base_path": "/srv/shared"},
                           {"id": 3, "name": "near", "base_path": f"{data.resolve()}-near"}]}
    for table, rows in docs.items():
        conn.executemany(f"INSERT INTO {table} (_id, data) VALUES (?, ?)",
                         [(str(doc["id"]), json.dumps(doc)) for doc in rows])
    conn.commit()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    sqlite3.connect(data / "admin.db").execute("CREATE TABLE t (x)").connection.close()
    return data


@pytest.fixture(autouse=True)
def keep_priority(monkeypatch):
    """`command` runs in the test process here: it must not lower pytest's priority (and that of
    every server later tests start) the way the backup command lowers its own."""
    monkeypatch.setattr("store.backup._lower_priority", lambda: None)


def docs(db: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        return [json.loads(row[0]) for row in conn.execute(f"SELECT data FROM {table} ORDER BY id")]
    finally:
        conn.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = command(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backup_and_restore_elsewhere_move_the_paths_into_the_new_folder(tmp_path, capsys):
    data = make_data_dir(tmp_path)
    (data / "workspaces" / "inbox" / "linked").symlink_to("/srv/elsewhere")  # kept as a link
    dest, target = tmp_path / "backup", tmp_path / "restored"
    code, out, err = run(capsys, "backup", str(dest), "--data-dir", str(data))
    assert code == 0, err
    assert out.startswith(f"backed up {data} to {dest} in ") and "1 jobs" in out
    # The workspace outside the data folder is named, not copied.
    assert err == ("jobdeck: workspace 'shared' keeps its files in /srv/shared, outside the data "
                   "folder: they are not in the backup; back that folder up too\n"
                   f"jobdeck: workspace 'near' keeps its files in {data}-near, outside the data "
                   "folder: they are not in the backup; back that folder up too\n")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "admin.db", "auth.json", "executions/1/stderr.log", "executions/1/stdout.log",
        "jobdeck.db", "manifest.json", "workspaces/inbox/uploads/u1/a.txt"]
    assert not (dest / "jobdeck.db-wal").exists()
    assert os.readlink(dest / "workspaces" / "inbox" / "linked") == "/srv/elsewhere"

    code, out, err = run(capsys, "restore", str(dest), "--data-dir", str(target))
    assert code == 0, err
    assert (target / "workspaces/inbox/uploads/u1/a.txt").read_text() == "a"
    assert (target / "executions/1/stdout.log").read_text() == "out\n"
    assert (target / "auth.json").stat().st_mode & 0o777 == 0o600
    new, old = str(target.resolve()), str(data.resolve())
    [exe] = docs(target / "jobdeck.db", "job_exes")
    assert exe["work_dir"] == f"{new}/executions/1"
    assert exe["stdout_file"] == f"{new}/executions/1/stdout.log"
    assert exe["stderr_file"] == f"{new}/executions/1/stderr.log"
    assert exe["environment"] == {"HOME": f"{old}/executions/1"}  # what the job saw
    assert [w["base_path"] for w in docs(target / "jobdeck.db", "workspaces")] == [
        f"{new}/workspaces/inbox", "/srv/shared", f"{old}-near"]
    assert docs(target / "jobdeck.db", "jobs") == [{"id": 1, "status": "QUEUED"}]
    assert not list(target.glob(".*restoring"))


def test_restore_force_moves_what_was_there_aside_and_backup_force_replaces(tmp_path, capsys):
    data = make_data_dir(tmp_path)
    dest = tmp_path / "backup"
    assert run(capsys, "backup", str(dest), "--data-dir", str(data))[0] == 0
    (data / "workspaces" / "after.txt").write_text("after")
    code, _, err = run(capsys, "backup", str(dest), "--data-dir", str(data), "--force")
    assert code == 0, err
    assert (dest / "workspaces" / "after.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    code, out, err = run(capsys, "restore", str(dest), "--data-dir", str(data), "--force")
    assert code == 0, err
    [aside] = tmp_path.glob("data.before-restore-*")
    assert f"what was there is in {aside}" in out
    assert (aside / "nx-27017.log").read_text() == "log"
    assert not (data / "nx-27017.log").exists() and (data / "jobdeck.db").exists()


def bad_input(case: str, tmp_path: Path, data: Path, backup: Path, other: Path):
    """(argv, the start of the one line expected after `jobdeck: `) for each case."""
    target = str(tmp_path / "t")
    if case == "no dest":
        return (["backup", "--data-dir", str(data)],
                ("backup: the following arguments are required: DEST (usage: python server.py "
                "backup DEST [--force] [--data-dir DIR] [--db-name NAME] [--settings FILE])"))
    if case == "no store":
        return (["backup", str(tmp_path / "b2"), "--data-dir", str(other)],
                (f"backup: no store in {other}: jobdeck.db is missing; give the server's "
                "--data-dir (and --db-name)"))
    if case == "dest not empty":  # a folder with other things in it is never written into
        (other / "notes.txt").write_text("mine")
        return (["backup", str(other), "--data-dir", str(data), "--force"],
                f"backup: {other} is not empty and holds no backup; give a new or empty folder")
    if case == "dest inside":
        return (["backup", str(data / "backups" / "b"), "--data-dir", str(data)],
                (f"backup: the backup folder {data / 'backups' / 'b'} and the data folder "
                 f"{data} overlap; choose a backup folder outside the data folder"))
    if case == "data inside dest":  # --force would otherwise replace the folder holding the data
        nested = backup / "data"
        make_data_dir(backup)
        return (["backup", str(backup), "--data-dir", str(nested), "--force"],
                f"backup: the backup folder {backup} and the data folder {nested} overlap")
    if case == "restore inside backup":
        return (["restore", str(backup), "--data-dir", str(backup / "data")],
                f"restore: the backup {backup} and the data folder {backup / 'data'} overlap")
    if case == "dest is a file":
        (tmp_path / "file").write_text("x")
        return (["backup", str(tmp_path / "file"), "--data-dir", str(data)],
                f"backup: {tmp_path / 'file'} exists and is not a folder")
    if case == "mongo url":
        return (["backup", str(tmp_path / "b3"), "--mongo-url", "mongodb://db:27017"],
                ("backup: backup and restore are for the embedded store; a server on "
                "--mongo-url keeps its data in that MongoDB: use mongodump and mongorestore"))
    if case == "not a backup":
        return (["restore", str(other), "--data-dir", target],
                f"restore: {other} holds no backup (manifest.json is missing)")
    if case == "damaged backup":
        with (backup / "jobdeck.db").open("r+b") as fh:
            fh.seek(200)
            fh.write(b"x")
        return (["restore", str(backup), "--data-dir", target],
                (f"restore: the backup is damaged: {backup / 'jobdeck.db'} is missing or "
                "differs from what its manifest recorded"))
    if case == "other db name":
        return (["restore", str(backup), "--data-dir", target, "--db-name", "ops"],
                "restore: the backup has no database 'ops' (it holds: jobdeck); give --db-name")
    if case == "target not empty":
        return (["restore", str(backup), "--data-dir", str(data)],
                (f"restore: the data folder {data} is not empty (admin.db, auth.json, "
                "executions, jobdeck.db, nx-27017.log, ...); restore into a new or empty folder, or "
                "add --force to move what is there aside"))
    assert case == "unknown flag"
    return (["restore", str(backup), "--port", "1"], "restore: unrecognized arguments: --port 1")


@pytest.mark.parametrize("case", [
    "no dest", "no store", "dest not empty", "dest inside", "data inside dest", "dest is a file",
    "mongo url", "not a backup", "damaged backup", "other db name", "target not empty",
    "restore inside backup", "unknown flag"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    data = make_data_dir(tmp_path)
    backup = tmp_path / "backup"
    assert run(capsys, "backup", str(backup), "--data-dir", str(data))[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    argv, expected = bad_input(case, tmp_path, data, backup, other)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"jobdeck: {expected}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made, nothing moved
