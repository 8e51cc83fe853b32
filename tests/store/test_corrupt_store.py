"""A store file SQLite cannot read: the server exits 2 with one line naming the file and the way
out (restore a backup, or move the file aside), no traceback, and leaves the file as it was."""

import os
import sqlite3
import subprocess
import sys

import pytest

from store.embedded import StoreFileError, check_store_file
from tests.test_server import ROOT, STARTUP_LIMIT, free_port

CONTENTS = {
    "random bytes": os.urandom(64 * 1024),
    "text": b"this is not a database\n" * 1000,
    # A SQLite header over garbage: SQLite reads the header, then fails on the schema.
    "damaged header": b"SQLite format 3\x00\x10\x00\x01\x01\x00\x40\x20\x20" + os.urandom(8192),
}


@pytest.mark.parametrize(("name", "content"), [
    ("jobdeck", "random bytes"), ("jobdeck", "text"), ("jobdeck", "damaged header"),
    ("admin", "random bytes")])
def test_a_store_file_that_is_not_sqlite_exits_2_with_one_line(tmp_path, name, content):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    bad = data_dir / f"{name}.db"
    bad.write_bytes(CONTENTS[content])
    proc = subprocess.run(
        [sys.executable, "server.py", "--port", str(free_port()), "--data-dir", str(data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=STARTUP_LIMIT, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert f"the store file {bad.resolve()} is not a usable SQLite database (" in line, line
    assert line.endswith(
        f": restore a backup (python server.py restore BACKUP --data-dir {data_dir.resolve()} "
        "--force), or move the file and its -wal and -shm files aside to start with an empty "
        "store"), line
    assert bad.read_bytes() == CONTENTS[content]  # untouched
    assert not (data_dir / "embedded-store.pid").exists()  # no store was started


def test_check_store_file_passes_real_empty_and_missing_files(tmp_path):
    real = tmp_path / "real.db"
    sqlite3.connect(real).execute("CREATE TABLE t (x)").connection.close()
    (tmp_path / "empty.db").write_bytes(b"")  # SQLite's empty database
    for path in (real, tmp_path / "empty.db", tmp_path / "missing.db"):
        check_store_file(path)
    (tmp_path / "bad.db").write_bytes(CONTENTS["text"])
    with pytest.raises(StoreFileError, match="file is not a database"):
        check_store_file(tmp_path / "bad.db")
