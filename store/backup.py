"""Backups of the embedded store's data folder: `python server.py backup DEST` and
`python server.py restore BACKUP`.

A backup is a folder laid out like the data folder, plus `manifest.json`:

- every database file, `<name>.db` (Jobdeck's `jobdeck.db`, or `<db_name>.db`, and nx-27017's
  own `admin.db`): each is an online snapshot through SQLite's backup API, read in one step in one
  read transaction, so it is consistent (every write committed before it began, none after) while
  nx-27017 goes on writing to its WAL (readers never block the writer in WAL mode; nx takes no
  exclusive lock). Each copy is switched out of WAL mode (one self-contained file), checked with
  `PRAGMA quick_check` and listed with its size, SHA-256 and the documents per collection;
- `auth.json` (hashed tokens and the cookie secret, so tokens and sessions keep working after a
  restore), readable by its owner only, like the backup folder itself;
- `workspaces/` (uploads and products), copied after the snapshots: a file's bytes are written
  before its record, so every file recorded in the snapshot is complete in the copy (files that
  arrive later may come along, unrecorded, and are harmless);
- the execution logs, `executions/<id>/stdout.log` and `stderr.log`, which
  `/job-executions/{id}/logs/` serves. The rest of an execution folder is scratch (staged inputs,
  outputs not yet collected, temporary files of running executions) and is left out, as are
  the store's log and pid files and the server lock.

Workspaces whose `base_path` lies outside the data folder are not copied; the backup names them.

`restore` refuses a folder a server holds (it takes the same lock, `datalock.DataDirLock`), and a
non-empty one unless `--force`, which moves what is there aside. Records that hold absolute paths
inside the backed-up data folder (workspace folders, execution folders and logs) are moved to the
new one when the folder differs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from core.datalock import LOCK_FILE, DataDirInUse, DataDirLock
from core.settings import SettingsError, load_settings

FORMAT = "jobdeck-backup"
VERSION = 1
MANIFEST = "manifest.json"
AUTH_FILE = "auth.json"  # auth/sessions.py AUTH_FILE
WORKSPACES = "workspaces"
EXECUTIONS = "executions"
EXECUTION_LOGS = ("stdout.log", "stderr.log")
# Store fields that hold absolute paths inside the data folder (workspaces made without a
# base_path, execution folders and logs), moved by a restore into another folder. Job and
# execution environments keep the paths the job saw: they are a record of what ran.
PATH_FIELDS = (("workspaces", "base_path"), ("job_exes", "work_dir"),
               ("job_exes", "stdout_file"), ("job_exes", "stderr_file"))
CHUNK = 1 << 20


class BackupError(Exception):
    """Bad input or an unusable folder: one line for the operator, exit code 2."""


# -- SQLite ------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _collections(conn: sqlite3.Connection) -> dict[str, int]:
    """Documents per collection: nx-27017 keeps each collection in a table with a `data`
    column (its own bookkeeping tables are `sqlite_*` and `neosqlite_*`)."""
    counts = {}
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'neosqlite_%' ORDER BY name")]
    for table in tables:
        columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if "data" in columns:
            counts[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return counts


def snapshot(source: Path, target: Path) -> dict:
    """Copy the database `source` to `target` as it was at one instant, while its server may
    write: SQLite's backup API in a single step holds one read transaction for the whole copy.
    The copy is self-contained (rollback journal, no WAL) and checked; returns its entry for the
    manifest."""
    began = time.time()
    # Read-write, though it only reads: a read-only connection to a WAL database that no server
    # has open leaves an empty -wal and -shm behind, where this one's close removes them.
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: everything in one step, so one snapshot
            taken = time.time()
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy of {source} failed its check ({check}); is the "
                                  "store file damaged?")
            counts = _collections(dst)
        finally:
            dst.close()
    finally:
        src.close()
    # The copy is the database as it was when its read transaction began, at the step's start.
    return {"file": target.name, "bytes": target.stat().st_size, "sha256": _sha256(target),
            "snapshot_at": _iso(began), "copy_seconds": round(taken - began, 3),
            "collections": counts}


def _workspace_paths(db: Path) -> list[tuple[str, str]]:
    """(name, base_path) of every workspace in a database copy."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'workspaces'").fetchone():
            return []
        return [(str(name), str(path)) for name, path in conn.execute(
            "SELECT json_extract(data, '$.name'), json_extract(data, '$.base_path') "
            "FROM workspaces") if path]
    finally:
        conn.close()


def relocate(db: Path, old: str, new: str) -> int:
    """Point the records' paths inside the data folder `old` at the same place in `new` (a
    restore into another folder); returns the number of records changed. One pass per table."""
    conn = sqlite3.connect(db, isolation_level=None)
    # A staging copy that is thrown away if anything fails: no journal, and one fsync at the end.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    changed = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in dict.fromkeys(table for table, _ in PATH_FIELDS):
            types = {row[1]: (row[2] or "").upper()
                     for row in conn.execute(f'PRAGMA table_info("{table}")')}
            if "data" in types:
                fields = [field for name, field in PATH_FIELDS if name == table]
                changed += conn.execute(_relocate_sql(table, fields, types["data"], old), {
                    "new": new, "old": old, "cut": len(old) + 1,
                    **{f"p{i}": f"$.{field}" for i, field in enumerate(fields)}}).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return changed


def _relocate_sql(table: str, fields: list[str], data_type: str, old: str) -> str:
    """UPDATE rewriting each of `fields` (parameters :p0, :p1, ...) that is `old` or lies under
    it, in nx-27017's `data` column (JSON text, or JSONB where SQLite has it)."""
    setter = "jsonb_set" if data_type == "JSONB" else "json_set"

    def matches(i: int) -> str:  # the path is `old` or under it: one JSON lookup
        return f"(substr(json_extract(data, :p{i}) || '/', 1, :cut) = :old || '/')"

    value = "data"
    for i in range(len(fields)):
        value = (f"CASE WHEN {matches(i)} THEN {setter}({value}, :p{i}, "
                 f":new || substr(json_extract(data, :p{i}), :cut)) ELSE {value} END")
    # A plain substring test skips the rows that cannot match without parsing them, where the
    # path is stored as written (JSON text, and nothing in the path that JSON escapes).
    plain = data_type != "JSONB" and old.isascii() and old.isprintable() \
        and '"' not in old and "\\" not in old
    where = " OR ".join(matches(i) for i in range(len(fields)))
    return (f'UPDATE "{table}" SET data = {value} WHERE '
            f"{'instr(data, :old) AND ' if plain else ''}({where})")


# -- files -------------------------------------------------------------------------------------

def _copy_file(source: Path, target: Path) -> int:
    """Copy one file (a symlink as a symlink), keeping its times and mode; the bytes copied, or
    -1 when it vanished meanwhile (a running execution's scratch)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy2(source, target, follow_symlinks=False)
    except FileNotFoundError:
        return -1
    return 0 if target.is_symlink() else target.stat().st_size


def _copy_tree(source: Path, target: Path) -> dict:
    """Copy every file under `source`; returns the files and bytes copied."""
    files = size = 0
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        rel = Path(folder).relative_to(source)
        # os.walk lists a symlink to a folder with the folders and does not follow it: it is
        # copied as the link it is, like a symlink to a file.
        links = [d for d in dirs if (Path(folder) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        for name in sorted(names + links):
            copied = _copy_file(Path(folder) / name, target / rel / name)
            if copied >= 0:
                files, size = files + 1, size + copied
    return {"files": files, "bytes": size}


def _copy_logs(source: Path, target: Path) -> dict:
    """Copy the execution logs only (`executions/<id>/stdout.log`, `stderr.log`)."""
    files = size = 0
    if source.is_dir():
        for exe in sorted(source.iterdir()):
            for name in EXECUTION_LOGS:
                log = exe / name
                if log.is_file():
                    copied = _copy_file(log, target / exe.name / name)
                    if copied >= 0:
                        files, size = files + 1, size + copied
    return {"files": files, "bytes": size}


def _copy_private(source: Path, target: Path) -> dict:
    """A secret file, readable by its owner only."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as fh:
        shutil.copyfileobj(fh, out)
    os.chmod(target, 0o600)
    return {"file": target.name, "bytes": target.stat().st_size, "sha256": _sha256(target)}


def _store_files(data_dir: Path, db_name: str) -> list[Path]:
    """The data folder's database files, the server's first and nx-27017's `admin.db` last."""
    return sorted(data_dir.glob("*.db"), key=lambda p: (
        p.name != f"{db_name}.db", p.name == "admin.db", p.name))


def _lower_priority() -> None:
    """Run the backup at a lower CPU and disk priority than the server it copies from, so the
    server keeps answering while the copy reads the whole store."""
    try:
        os.nice(10)
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    except (OSError, AttributeError, ImportError, ValueError):
        pass  # not on this platform, or not allowed: the backup runs as it is


def _fsync(path: Path) -> None:
    """Make a folder's entries (a rename in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _versions() -> dict:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in ("nx-27017", "neosqlite"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,} bytes"


# -- backup ------------------------------------------------------------------------------------

def backup(data_dir: Path, dest: Path, db_name: str, force: bool = False,
           warn=lambda line: print(f"jobdeck: {line}", file=sys.stderr)) -> dict:
    """Write a backup of `data_dir` to the folder `dest`, online; returns the manifest.

    The backup is built in a hidden sibling folder and renamed to `dest` once complete, so
    `dest` never holds half a backup; with `force` an existing backup there is replaced (removed
    only once the new one is in place)."""
    data_dir, dest = data_dir.resolve(), dest.resolve()
    if not data_dir.is_dir():
        raise BackupError(f"the data folder {data_dir} does not exist; give the server's "
                          "--data-dir")
    main_db = data_dir / f"{db_name}.db"
    if not main_db.is_file():
        raise BackupError(f"no store in {data_dir}: {main_db.name} is missing; give the "
                          "server's --data-dir (and --db-name)")
    if _inside(dest, data_dir) or _inside(data_dir, dest):
        raise BackupError(f"the backup folder {dest} and the data folder {data_dir} overlap; "
                          "choose a backup folder outside the data folder (ideally on another "
                          "disk)")
    replacing = _check_dest(dest, force)
    _lower_priority()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    began = time.time()
    try:
        stores = [snapshot(path, work / path.name) for path in _store_files(data_dir, db_name)]
        manifest = {"format": FORMAT, "version": VERSION, "started": _iso(began),
                    "source": {"data_dir": str(data_dir), "db_name": db_name,
                               "host": platform.node()},
                    "versions": _versions(), "store": stores}
        auth = data_dir / AUTH_FILE
        manifest["auth"] = _copy_private(auth, work / AUTH_FILE) if auth.is_file() else None
        manifest["workspaces"] = _copy_tree(data_dir / WORKSPACES, work / WORKSPACES)
        manifest["execution_logs"] = _copy_logs(data_dir / EXECUTIONS, work / EXECUTIONS)
        outside = [{"workspace": name, "base_path": path}
                   for name, path in _workspace_paths(work / main_db.name)
                   if not _inside(Path(path), data_dir)]
        manifest["not_copied"] = {
            "workspaces_outside_the_data_folder": outside,
            "left_out": ["executions/*/ except stdout.log and stderr.log (scratch)",
                         "*.db-wal and *.db-shm (folded into the copies)",
                         "store logs and pid files, server.lock"]}
        finished = time.time()
        manifest.update(finished=_iso(finished), seconds=round(finished - began, 3))
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.sync()  # the whole backup is on disk before it takes DEST's name
        _put_in_place(work, dest, replacing)
        _fsync(dest.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for entry in outside:
        warn(f"workspace {entry['workspace']!r} keeps its files in {entry['base_path']}, "
             "outside the data folder: they are not in the backup; back that folder up too")
    return manifest


def _check_dest(dest: Path, force: bool) -> bool:
    """Whether `dest` holds a backup to replace; raises BackupError if it cannot be used."""
    if not dest.exists():
        return False
    if not dest.is_dir():
        raise BackupError(f"{dest} exists and is not a folder; give a new or empty folder")
    if (dest / MANIFEST).exists():
        if not force:
            raise BackupError(f"{dest} already holds a backup; give another folder, or add "
                              "--force to replace it")
        return True
    if any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty and holds no backup; give a new or empty "
                          "folder")
    return False


def _put_in_place(work: Path, dest: Path, replacing: bool) -> None:
    if replacing:
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
        work.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return
    if dest.exists():
        dest.rmdir()  # empty, checked before
    work.rename(dest)


# -- restore -----------------------------------------------------------------------------------

def read_manifest(source: Path) -> dict:
    """The manifest of the backup in `source`, its files checked (sizes, and SHA-256 for the
    database files and auth.json); raises BackupError naming what is wrong."""
    path = source / MANIFEST
    if not source.is_dir():
        raise BackupError(f"the backup folder {source} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} holds no backup ({MANIFEST} is missing)") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a Jobdeck backup manifest")
    if manifest.get("version") != VERSION:
        raise BackupError(f"{source} is a version {manifest.get('version')} backup; this "
                          f"Jobdeck restores version {VERSION}")
    for entry in [*manifest["store"], *([manifest["auth"]] if manifest.get("auth") else [])]:
        file = source / entry["file"]
        if not file.is_file() or file.stat().st_size != entry["bytes"] \
                or _sha256(file) != entry["sha256"]:
            raise BackupError(f"the backup is damaged: {file} is missing or differs from what "
                              "its manifest recorded")
    return manifest


def restore(source: Path, data_dir: Path, db_name: str, force: bool = False) -> dict:
    """Restore the backup in `source` into `data_dir`; returns what was restored.

    Holds the data folder's lock throughout, so it refuses to run while a server uses the folder
    (DataDirInUse) and no server starts on a half-restored one. A non-empty folder is refused
    unless `force`, which first moves its contents to `<data_dir>.before-restore-<time>`."""
    source, data_dir = source.resolve(), data_dir.resolve()
    began = time.time()
    manifest = read_manifest(source)
    names = [entry["file"] for entry in manifest["store"]]
    if f"{db_name}.db" not in names:
        held = ", ".join(n.removesuffix(".db") for n in names if n != "admin.db") or "none"
        raise BackupError(f"the backup has no database {db_name!r} (it holds: {held}); give "
                          "--db-name")
    if _inside(source, data_dir) or _inside(data_dir, source):
        raise BackupError(f"the backup {source} and the data folder {data_dir} overlap; restore "
                          "into a folder outside the backup, from a backup outside it")
    lock = DataDirLock(data_dir).acquire()
    try:
        aside = _clear(data_dir, force)
        restored = {"workspaces": _copy_tree(source / WORKSPACES, data_dir / WORKSPACES),
                    "execution_logs": _copy_logs(source / EXECUTIONS, data_dir / EXECUTIONS)}
        if manifest.get("auth"):
            _copy_private(source / AUTH_FILE, data_dir / AUTH_FILE)
        old = manifest["source"]["data_dir"]
        moved = 0
        # The databases last, each complete under a temporary name first: a folder with a
        # store in it is a whole restore.
        staged = [(data_dir / f".{name}.restoring", data_dir / name) for name in names]
        try:
            for (temp, _), name in zip(staged, names, strict=True):
                shutil.copyfile(source / name, temp)
                if old != str(data_dir):
                    moved += relocate(temp, old, str(data_dir))
            os.sync()  # everything restored is on disk before the databases appear
        except BaseException:
            for temp, _ in staged:
                temp.unlink(missing_ok=True)
            raise
        for temp, final in staged:
            os.replace(temp, final)
        _fsync(data_dir)
    finally:
        lock.release()
    return {**restored, "manifest": manifest, "relocated_records": moved,
            "moved_aside": str(aside) if aside else None,
            "seconds": round(time.time() - began, 3)}


def _clear(data_dir: Path, force: bool) -> Path | None:
    """Make sure `data_dir` is empty but for our lock; with `force` move what is there aside."""
    present = sorted(entry.name for entry in data_dir.iterdir() if entry.name != LOCK_FILE)
    if not present:
        return None
    if not force:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise BackupError(f"the data folder {data_dir} is not empty ({shown}); restore into a "
                          "new or empty folder, or add --force to move what is there aside")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
    aside.mkdir()
    for name in present:
        (data_dir / name).rename(aside / name)
    return aside


# -- the command line --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BackupError(f"{message} (usage: {self.usage})")


def _parser(command: str) -> argparse.ArgumentParser:
    what = {"backup": ("DEST", "the folder to write the backup to (new or empty)"),
            "restore": ("BACKUP", "the folder a backup was written to")}[command]
    parser = _Parser(prog=f"python server.py {command}", usage=(
        f"python server.py {command} {what[0]} [--force] [--data-dir DIR] [--db-name NAME] "
        "[--settings FILE]"), description=(
        "Back up the embedded store's data folder while the server runs" if command == "backup"
        else "Restore a backup into a data folder no server is using"))
    parser.add_argument("path", metavar=what[0], help=what[1])
    parser.add_argument("--force", action="store_true", help=(
        "replace a backup already in DEST" if command == "backup"
        else "restore into a non-empty data folder, moving its contents aside first"))
    for flag in ("--data-dir", "--db-name", "--mongo-url", "--settings"):
        parser.add_argument(flag, help="as for the server" if flag != "--settings"
                            else "settings file (YAML), as for the server")
    return parser


MONGO_URL_ADVICE = (
    "backup and restore are for the embedded store; a server on --mongo-url keeps its data in "
    "that MongoDB: use mongodump and mongorestore (mongodump --uri URL --db {db} --archive=FILE "
    "--gzip), or the deployment's own backups (Atlas or Ops Manager snapshots, filesystem "
    "snapshots of a replica set member)")


def command(argv: list[str]) -> int:
    """`backup DEST` or `restore BACKUP` with --force, --data-dir, --db-name, --mongo-url and
    --settings (the server's settings, with the same precedence); 0 when done, 2 on bad input
    or a folder in use, 1 when the copy fails."""
    name = argv[0]
    try:
        args = _parser(name).parse_args(argv[1:])
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in vars(args).items()
                 if key not in ("path", "force") and value is not None]
        settings = load_settings(flags)
        if settings.mongo_url:
            raise BackupError(MONGO_URL_ADVICE.format(db=settings.db_name))
        data_dir, path = Path(settings.data_dir), Path(args.path)
        if name == "backup":
            manifest = backup(data_dir, path, settings.db_name, args.force)
            print(_backup_line(manifest, path.resolve()))
        else:
            done = restore(path, data_dir, settings.db_name, args.force)
            print(_restore_line(done, path.resolve(), data_dir.resolve(), settings.db_name))
    except (BackupError, SettingsError, DataDirInUse) as exc:
        print(f"jobdeck: {name}: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"jobdeck: {name} failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _jobs(manifest: dict, db_name: str) -> str:
    for entry in manifest["store"]:
        if entry["file"] == f"{db_name}.db":
            counts = entry["collections"]
            return (f"{counts.get('jobs', 0):,} jobs, {counts.get('job_exes', 0):,} "
                    "executions")
    return "no jobs"


def _backup_line(manifest: dict, dest: Path) -> str:
    ws, logs = manifest["workspaces"], manifest["execution_logs"]
    main, *others = manifest["store"]
    return (f"backed up {manifest['source']['data_dir']} to {dest} in "
            f"{manifest['seconds']:.1f} s: {main['file']} "
            f"({_jobs(manifest, manifest['source']['db_name'])}, snapshot at "
            f"{main['snapshot_at']}), {''.join(e['file'] + ', ' for e in others)}"
            f"{'auth.json, ' if manifest['auth'] else ''}"
            f"{ws['files']:,} workspace files ({_size(ws['bytes'])}), "
            f"{logs['files']:,} execution logs")


def _restore_line(done: dict, source: Path, data_dir: Path, db_name: str) -> str:
    manifest = done["manifest"]
    aside = f"; what was there is in {done['moved_aside']}" if done["moved_aside"] else ""
    return (f"restored {source} (taken {manifest['started']} from "
            f"{manifest['source']['data_dir']}: {_jobs(manifest, db_name)}, "
            f"{done['workspaces']['files']:,} workspace files, "
            f"{done['execution_logs']['files']:,} execution logs) into {data_dir} in "
            f"{done['seconds']:.1f} s{aside}; start the server with --data-dir {data_dir}")
