"""Run an embedded MongoDB-wire-compatible store as a child process.

Jobdeck talks to its store only through pymongo, so for a single-box
install we launch a pure-Python wire-compatible server (nx-27017 on
SQLite, or SecantusDB on WiredTiger) next to it instead of requiring a
real mongod. The store runs as our child, not as a daemon, so its
lifetime is tied to ours: it is stopped with ``stop()``, and it also
stops itself within a second if we die without stopping it. While we
run, ``supervise()`` restarts it on the same data dir and address if it
dies, so our client reconnects to it without being rebuilt.

The store has no authentication, so it is reachable only by the server's own user: nx-27017
serves a Unix socket inside the data folder (store/nx_socket.py adapts it; it only knows TCP),
the data folder is 0700 (core/private.py), and the store process makes its files with umask
0077. pymongo connects to ``mongodb://%2Fpath%2Fto%2Fnx-27017.sock``. SecantusDB, which only the
store tests start (server.py embeds nx-27017 alone), still listens on a loopback port.

nx runs in its ``--data-dir`` mode: each logical database is its own SQLite
file, ``<name>.db`` in the data dir, so no other database name can read,
write or drop Jobdeck's. (Its ``--db FILE`` mode, used before, kept every
database name on one set of tables: an insert into ``other.jobs`` showed up
in ``jobdeck.jobs``, and dropping ``other`` emptied ``jobdeck``.) The file
that mode wrote, ``jobdeck.db``, is where data-dir mode keeps the database
``jobdeck``, so an existing install finds its data unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pymongo
from pymongo.errors import PyMongoError

from core.private import PRIVATE_UMASK, private_dir, private_file
from core.settings import DEFAULTS

log = logging.getLogger("jobdeck.store")

KINDS = ("nx", "secantus")
READY_TIMEOUT = {"nx": 30.0, "secantus": 60.0}
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
PID_FILE = "embedded-store.pid"
# Substrings of a store's command line; a pid file is only trusted if the
# process it names still looks like a store (pids get reused).
_STORE_MARKERS = ("nx_27017", "nx_socket", "secantus")
_LOG_TAIL_BYTES = 4000
# How often the supervisor checks the child, and how long it waits between failed restarts
# (doubling up to the maximum: an address another process took may be freed again).
WATCH_INTERVAL = 0.2
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 10.0
# The one file nx's old single-file mode kept every database in (DATA_DIR/jobdeck.db), whatever
# database name the server was configured with.
SINGLE_FILE_DB = "jobdeck"
# nx-27017 maps a database name to a file name, and answers ok: 0 for any name not like this.
_NX_DB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# nx's Unix socket, in the data dir, and the adapter that serves it (run as a file: see
# _BOOTSTRAP).
SOCKET_FILE = "nx-27017.sock"
NX_SOCKET = Path(__file__).resolve().with_name("nx_socket.py")
# A Unix socket's path must fit sockaddr_un.sun_path: 108 bytes with the final NUL on Linux.
# A longer data dir path fails at start with a message saying so, rather than the socket going
# to a short private folder elsewhere: in the data folder it is covered by the folder's 0700,
# follows a moved or restored data folder, and is hidden from jobs with the rest of it.
SOCKET_PATH_MAX = 107

# A store's address: its Unix socket's path (nx), or its loopback TCP port (SecantusDB).
Address = str | int


class EmbeddedStoreError(RuntimeError):
    """The embedded store could not be started."""


def _url(address: Address) -> str:
    """The mongodb URL of a store at ``address``."""
    host = quote(address, safe="") if isinstance(address, str) else f"127.0.0.1:{address}"
    return f"mongodb://{host}/?directConnection=true"


def _free_port() -> int:
    """Ask the kernel for an unused loopback port.

    The port is released before the child binds it, so another process
    can race us for it; ``start()`` retries on a new port if that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Runs in the child before the store's own entry point. Its watchdog sends
# the store SIGTERM (a clean shutdown for both stores) once we are gone, so
# a SIGKILLed Jobdeck does not leave a store holding the data dir. It polls
# getppid() rather than using prctl(PR_SET_PDEATHSIG): that signal fires
# when the *thread* that forked exits, so a store started from a worker
# thread would die with that thread. The entry is `module:function`, or `path.py:function` for a
# file run with runpy (store/nx_socket.py: the project's packages are not importable there).
_BOOTSTRAP = """
import importlib, logging, os, runpy, signal, sys, threading, time
parent, entry, *args = sys.argv[1:]


def watch_parent():
    while os.getppid() == int(parent):
        time.sleep(0.5)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
# The stores' own basicConfig() is then a no-op: nx would otherwise log
# every command, with its documents, at INFO, growing its log per request.
logging.basicConfig(
    level=logging.WARNING,
    format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
)
module, _, func = entry.partition(":")
sys.argv = [entry, *args]
names = runpy.run_path(module) if module.endswith(".py") else vars(importlib.import_module(module))
sys.exit(names[func]())
"""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _terminate(proc: psutil.Process | subprocess.Popen) -> None:
    """SIGTERM, give the store time to flush, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except (psutil.TimeoutExpired, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


def _kill_stale(pid_file: Path) -> None:
    """Terminate a store left running by a killed run on the same data dir.

    Two stores on one data dir would corrupt it (SQLite) or fail to
    start (WiredTiger lock), so the leftover must go first.
    """
    pid = _read_pid(pid_file)
    if pid is None or pid == os.getpid():
        return
    try:
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
        if any(marker in cmdline for marker in _STORE_MARKERS):
            _terminate(proc)
    except psutil.Error:
        pass  # gone already, or not ours to inspect
    pid_file.unlink(missing_ok=True)


def _answers_ping(address: Address, pid: int | None = None) -> bool:
    """Whether the store at ``address`` answers ping; with ``pid``, whether the store process
    ``pid`` does (nx tells its pid in serverStatus): not another one serving the same socket,
    such as a store left by a killed server, that our child then failed to replace.

    A plain connect goes first because a pymongo client that found
    the socket closed only retries every 500 ms, which would dominate the
    sub-second startup.
    """
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(address if isinstance(address, str) else ("127.0.0.1", address))
        except OSError:
            return False
    url = _url(address)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        if pid is None:
            client.admin.command("ping")
            return True
        return client.admin.command("serverStatus").get("pid") == pid
    except PyMongoError:
        return False
    finally:
        client.close()


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def _fold_wal(path: Path) -> None:
    """Checkpoint a stopped SQLite database's write-ahead log into the file and remove the log,
    so the file alone holds every committed write. Raises EmbeddedStoreError if it cannot."""
    conn = sqlite3.connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    wal = Path(f"{path}-wal")
    if busy or (wal.exists() and wal.stat().st_size):
        raise EmbeddedStoreError(f"could not fold the write-ahead log {wal} into {path}; "
                                 "is another process using it?")
    wal.unlink(missing_ok=True)
    Path(f"{path}-shm").unlink(missing_ok=True)


# SQLite result codes that say the file could not be read, not that it is damaged.
_ACCESS_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_PERM",
                  "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_AUTH", "SQLITE_NOMEM",
                  "SQLITE_FULL")


class StoreFileError(EmbeddedStoreError):
    """A store file in the data dir is not a database SQLite can read."""


def check_store_file(path: Path) -> None:
    """Raise StoreFileError, one line naming the file and the way out, when ``path`` exists but
    SQLite cannot read it as a database (not SQLite at all, or a damaged header or schema): nx
    would otherwise die on it with a traceback at the first command. Reads the header and the
    schema only, so it takes milliseconds at any size."""
    if not path.is_file():
        return
    try:
        conn = sqlite3.connect(path)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorname", "") or "").startswith(_ACCESS_ERRORS):
            # Locked, unreadable, out of space: the file may be fine, so no advice to replace it.
            raise StoreFileError(f"cannot read the store file {path}: {exc}") from None
        raise StoreFileError(
            f"the store file {path} is not a usable SQLite database ({exc}): restore a backup "
            f"(python server.py restore BACKUP --data-dir {path.parent} --force), or move the "
            "file and its -wal and -shm files aside to start with an empty store") from None


class EmbeddedMongo:
    """One embedded store process serving ``data_dir``, on a Unix socket in it (nx) or on a
    loopback port (SecantusDB).

    ``db_name``, when given, is the database the server will use: nx checks that it can be a file
    name, and a data dir last served by nx's old single-file mode has that file, ``jobdeck.db``,
    renamed to ``<db_name>.db`` once, so the data stays that database's.
    """

    def __init__(self, data_dir: str | os.PathLike[str], kind: str = "nx",
                 db_name: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown store kind {kind!r}; expected one of {KINDS}")
        if kind == "nx" and db_name is not None and not _NX_DB_NAME.fullmatch(db_name):
            raise ValueError(
                f"database name {db_name!r} cannot be used with the embedded nx-27017 store, "
                "which keeps each database in a file named after it: use 1-64 letters, digits, "
                "'_' or '-', starting with a letter or digit")
        self.data_dir = Path(data_dir).resolve()
        self.kind = kind
        self.db_name = db_name
        self._proc: subprocess.Popen | None = None
        self._url: str | None = None
        self._address: Address | None = None
        self._stopped = True
        # A restart runs in a worker thread; stop() waits for it rather than racing its spawn.
        self._lifecycle = threading.Lock()
        self.restarts = 0

    @property
    def url(self) -> str | None:
        """The mongodb URL of the running store, or None when stopped."""
        return self._url

    def _running_url(self) -> str:
        """The URL of the store this object started and that still runs."""
        if self._url is None:
            raise EmbeddedStoreError(f"the {self.kind} store has not answered yet")
        return self._url

    @property
    def pid(self) -> int | None:
        """The store's process id, or None when stopped."""
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        """Where the store's own log (and any crash traceback) goes."""
        name = "nx-27017.log" if self.kind == "nx" else "secantus.log"
        return self.data_dir / name

    @property
    def socket_path(self) -> Path:
        """The Unix socket nx serves (kept across restarts)."""
        return self.data_dir / SOCKET_FILE

    @property
    def port(self) -> int | None:
        """The loopback port SecantusDB serves (kept across restarts), or None (nx, or before
        start)."""
        return self._address if isinstance(self._address, int) else None

    @property
    def address(self) -> str:
        """Where the store serves, for log lines: its socket's path or its port."""
        if isinstance(self._address, int):
            return f"port {self._address}"
        return f"socket {self.socket_path}"

    @property
    def name(self) -> str:
        return "nx-27017" if self.kind == "nx" else "SecantusDB"

    def db_file(self, name: str) -> Path:
        """The SQLite file nx keeps the logical database ``name`` in."""
        return self.data_dir / f"{name}.db"

    def is_alive(self) -> bool:
        """Whether the store process is still running."""
        return self._proc is not None and self._proc.poll() is None

    def _command(self, address: Address) -> list[str]:
        """The child's argv: bootstrap, then the store's console-script entry (nx: through
        store/nx_socket.py, which serves nx on the socket ``address``)."""
        launcher = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid())]
        if self.kind == "nx":
            # --data-dir: one <name>.db per logical database (see the module docstring); nx
            # lists databases from the *.db files there, so our logs, pid files and socket are
            # no trouble. --log-file is discarded because nx also logs everything to
            # stderr, which we capture in nx-27017.log together with the
            # tracebacks (e.g. a failed bind) that its file log never gets.
            return [
                *launcher,
                f"{NX_SOCKET}:main",
                "--unix-socket", str(address),
                "--data-dir", str(self.data_dir),
                "--log-file", os.devnull,
                "--pid-file", str(self.data_dir / "nx-27017.pid"),
            ]  # fmt: skip
        return [
            *launcher,
            "secantus.cli:main",
            "--host", "127.0.0.1",
            "--port", str(address),
            "--storage-path", str(self.data_dir / "secantus"),
            "--log-level", "WARNING",
        ]  # fmt: skip

    def start(self, ready_timeout: float | None = None) -> str:
        """Launch the store, wait until it answers ping, return its URL.

        Idempotent while the store is alive. Raises EmbeddedStoreError with
        the tail of the store's log if it dies or is not ready in time.
        """
        if self.is_alive():
            return self._running_url()
        self._stopped = False
        self._clear_leftovers()
        self._check_files()
        self._adopt_single_file()
        timeout = READY_TIMEOUT[self.kind] if ready_timeout is None else ready_timeout
        # A port is picked free and may be taken before the child binds it: a new one is
        # tried. The socket's path is fixed: if the store dies at startup, another try would too.
        attempts = 1 if self.kind == "nx" else PORT_ATTEMPTS
        code = None
        for _ in range(attempts):
            address = str(self._socket_address()) if self.kind == "nx" else _free_port()
            proc = self._spawn(address)
            if self._wait_ready(proc, address, timeout):
                return self._running_url()
            code = proc.returncode
        raise EmbeddedStoreError(
            f"{self.kind} store exited at startup {attempts} time{'s' * (attempts > 1)} "
            f"(last exit code {code}); "
            f"log tail of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def _socket_address(self) -> Path:
        """The socket's path, or EmbeddedStoreError if it is too long for a Unix socket."""
        path = self.socket_path
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise EmbeddedStoreError(
                f"the data folder's path is too long for the store's Unix socket {path} "
                f"({len(os.fsencode(path))} bytes; a socket's path is at most {SOCKET_PATH_MAX}): "
                "use a data folder with a shorter path (--data-dir)")
        return path

    def restart(self, ready_timeout: float | None = None) -> str:
        """Start the store again at the address it had, so clients holding its URL reconnect.

        Raises EmbeddedStoreError if it does not come up there (e.g. another process took the
        port, or serves the socket).
        """
        with self._lifecycle:
            if self._address is None or self._stopped:
                raise EmbeddedStoreError("the store is stopped; start() it instead")
            if self.is_alive():
                return self._running_url()
            self._clear_leftovers()
            proc = self._spawn(self._address)
            if not self._wait_ready(proc, self._address, READY_TIMEOUT[self.kind]
                                    if ready_timeout is None else ready_timeout):
                raise EmbeddedStoreError(
                    f"{self.kind} store exited at restart at {self.address} (exit code "
                    f"{proc.returncode}); log tail of {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            self.restarts += 1
            return self._running_url()

    async def supervise(self, on_restart=None) -> None:
        """Until cancelled or stopped: restart the store whenever it dies, then await
        ``on_restart()``; failed restarts are retried with a growing delay."""
        delay = RESTART_DELAY
        while not self._stopped:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._stopped or self.is_alive():
                continue
            code = self._proc.returncode if self._proc is not None else None
            log.error("the embedded %s store (data in %s) exited with code %s; restarting it "
                      "at %s", self.name, self.data_dir, code, self.address)
            try:
                await asyncio.to_thread(self.restart)
            except EmbeddedStoreError as exc:
                log.error("could not restart the embedded store; retrying in %.1f s: %s",
                          delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX)
                continue
            delay = RESTART_DELAY
            log.warning("the embedded %s store is back (pid %s, %s, restart %d)",
                        self.name, self.pid, self.address, self.restarts)
            if on_restart is not None:
                try:
                    await on_restart()
                except Exception:
                    log.exception("recovering after the store restart failed")

    def _clear_leftovers(self) -> None:
        private_dir(self.data_dir)
        _kill_stale(self.data_dir / PID_FILE)
        # nx refuses to start if its own pid file names a live process,
        # which after a crash may be an unrelated one reusing the pid.
        _kill_stale(self.data_dir / "nx-27017.pid")

    def _check_files(self) -> None:
        """Fail with one line (StoreFileError) before nx starts on a file it cannot read: its own
        ``admin.db``, the server's database, and the old single-file ``jobdeck.db`` that
        ``_adopt_single_file`` would take over."""
        if self.kind != "nx":
            return
        names = ["admin", self.db_name or DEFAULTS.db_name]
        if not self.db_file("admin").exists():
            names.append(SINGLE_FILE_DB)
        for name in dict.fromkeys(names):
            check_store_file(self.db_file(name))

    def _adopt_single_file(self) -> None:
        """Give ``db_name`` the data nx's old single-file mode kept in ``jobdeck.db``.

        That mode served every database name from that one file, so an install configured
        with another name had its data there. Data-dir mode reads ``<db_name>.db``, so the file
        is renamed, once, before nx starts: only when the data dir has no ``admin.db`` (nx
        makes one at every start in data-dir mode, never in the old mode) and no
        ``<db_name>.db`` yet. For the default name nothing moves.
        """
        if self.kind != "nx" or self.db_name in (None, SINGLE_FILE_DB):
            return
        legacy, target = self.db_file(SINGLE_FILE_DB), self.db_file(self.db_name)
        if not legacy.is_file() or target.exists() or self.db_file("admin").exists():
            return
        _fold_wal(legacy)
        legacy.rename(target)
        log.warning("moved %s, written by the old single-file store, to %s: it holds the "
                    "data of the database %r", legacy, target, self.db_name)

    def _spawn(self, address: Address) -> subprocess.Popen:
        with private_file(self.log_path) as log:
            proc = self._proc = subprocess.Popen(
                self._command(address),
                cwd=self.data_dir,  # keeps secantus from picking up ./secantusd.toml
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in a terminal signals the whole foreground group, and
                # the store must outlive the server's clean shutdown (the engine still writes).
                start_new_session=True,
                umask=PRIVATE_UMASK,  # its databases, logs and pid file: the server's user only
            )
        with private_file(self.data_dir / PID_FILE, truncate=True) as out:
            out.write(f"{proc.pid}\n".encode())
        return proc

    def _wait_ready(self, proc: subprocess.Popen, address: Address, timeout: float) -> bool:
        """Ping until the store answers (True) or exits early (False).

        Raises EmbeddedStoreError, after stopping the child, if it is still
        alive but silent at the deadline.
        """
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if _answers_ping(address, proc.pid if self.kind == "nx" else None):
                self._url = _url(address)
                self._address = address
                return True
            if time.monotonic() >= deadline:
                self._halt()
                raise EmbeddedStoreError(
                    f"{self.kind} store not ready after {timeout:.0f}s; "
                    f"log tail of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)
        (self.data_dir / PID_FILE).unlink(missing_ok=True)
        return False

    def stop(self) -> None:
        """Stop the store (SIGTERM, then SIGKILL after 10 s) and its supervision. Idempotent."""
        self._stopped = True
        with self._lifecycle:
            self._halt()

    def _halt(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                _terminate(self._proc)
            self._proc = None
            if self.kind == "nx":
                self.socket_path.unlink(missing_ok=True)  # nx's asyncio server leaves it
        self._url = None
        (self.data_dir / PID_FILE).unlink(missing_ok=True)
