"""One server per data folder: an exclusive lock on DATA_DIR/server.lock.

A server on the embedded store holds `flock(LOCK_EX)` on the lock file for as long as it runs (the
kernel drops it when the process ends, however it ends, so a killed server never leaves a stale
lock). The file holds the holder's pid and, once it listens, its port, as text
(`pid 1234\nport 8000\n`), so a second server started on the same folder can name the one that
runs. The file is never removed: removing it would let two servers lock two different files.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from core.private import PRIVATE_FILE_MODE, private_dir

LOCK_FILE = "server.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data folder's lock."""

    def __init__(self, data_dir: Path, pid: int | None, port: int | None):
        self.data_dir, self.pid, self.port = data_dir, pid, port
        holder = f"pid {pid if pid is not None else 'unknown'}, " + (
            f"port {port}" if port is not None else "still starting")
        super().__init__(
            f"another Jobdeck server ({holder}) is using the data folder {data_dir}; stop it "
            "first, or give this one another --data-dir (several servers can share one store "
            "with --mongo-url)")


def read_holder(text: str) -> tuple[int | None, int | None]:
    """The pid and port written by `DataDirLock.record`, None for what is missing."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            fields[key] = int(value)
    return fields.get("pid"), fields.get("port")


class DataDirLock:
    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock or raise DataDirInUse naming its holder; never waits."""
        private_dir(self.data_dir)  # made, or tightened, before anything is written in it
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)  # not inherited
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            finally:
                os.close(fd)
            raise DataDirInUse(self.data_dir, *read_holder(text)) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._write(f"pid {os.getpid()}\n")
        return self

    def record(self, port: int) -> None:
        """Add the port the server listens on, for a second server's message."""
        self._write(f"pid {os.getpid()}\nport {port}\n")

    def release(self) -> None:
        """Empty the file and drop the lock (ending the process drops it too). Idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def _write(self, text: str) -> None:
        if self._fd is None:
            raise RuntimeError(f"the lock on {self.data_dir} is not held")
        data = text.encode()
        os.pwrite(self._fd, data, 0)  # then cut: a reader never sees the file empty
        os.ftruncate(self._fd, len(data))
