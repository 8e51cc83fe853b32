"""The job sandbox: each job's command runs under bubblewrap (`bwrap`, Debian's `bubblewrap`).

`wrap()` turns a command line, its execution folder and its staged inputs into the sandboxed
command line; every backend that starts jobs (the local one, a Slurm one) calls it, with
`prepare()` run first on the execution folder. Inside the sandbox:

- the whole system is mounted read-only, with its own /tmp, /proc and /dev;
- the data folder is replaced by an empty folder: only the execution folder (read-write) and the
  staged input files (read-only) are mounted back into it, so the store's files and socket,
  auth.json, the workspaces there and other executions' folders cannot be reached;
- there is no network (a network namespace of its own with only loopback, and an empty /run, so
  no Unix socket there either) unless the job type's interface says `"network": true`;
- it has its own PID, IPC and UTS namespaces and dies with the server;
- when the server runs as root, the command runs as `job_user` (default `nobody`) without
  capabilities or supplementary groups; bwrap mounts first as root, so the 0700 data folder does
  not keep the job from its own folder.

The job's stdout and stderr logs stay root-owned in a sticky execution folder, so the job can
neither rewrite nor replace them (e.g. with a link to auth.json). A job keeps no controlling
terminal (the backend starts it in a session of its own), so bwrap's --new-session is not needed;
without it the job stays in the backend's process group and a cancel's SIGTERM reaches it.
"""

import functools
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import SettingsError

log = logging.getLogger("jobdeck.engine")

BWRAP = "bwrap"
SETPRIV = "/usr/bin/setpriv"
# bwrap always sets PWD; env drops it, so the job's environment stays the runner's.
CLEAN_ENV = ("/usr/bin/env", "-u", "PWD", "--")
# Folders the job may write: its outputs and its TMPDIR (HOME is the execution folder itself).
WRITABLE = ("outputs", "tmp")


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int


def job_user(name: str) -> JobUser:
    """The account sandboxed jobs run as; SettingsError if it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SettingsError(f"job_user {name!r} is not a user on this machine") from None
    return JobUser(name, entry.pw_uid, entry.pw_gid)


def _ancestors_below(path: Path, mounts: Iterable[Path]) -> list[Path]:
    """The folders between a tmpfs mount in `mounts` and `path` (outermost first): bwrap would
    make them 0700, and the job user must be able to walk through them."""
    return [a for a in reversed(path.parents)
            if any(a != m and a.is_relative_to(m) for m in mounts)]


def wrap(argv: Sequence[str], work_dir: Path, inputs: Iterable[Path] = (), *,
         network: bool = False, hidden: Iterable[Path] = (), user: JobUser | None = None,
         bwrap: str = BWRAP) -> list[str]:
    """The sandboxed command line for `argv`, run in `work_dir`.

    `inputs`: files the job reads (the staged inputs' real locations), mounted read-only at
    their own paths; `hidden`: folders replaced by an empty one (the data folder); `network`:
    keep the server's network; `user`: run as this user (the server is root)."""
    work_dir = Path(work_dir)
    tmpfs = [Path("/tmp"), *(Path(h) for h in hidden)]
    if not network and Path("/run").is_dir():
        # Unix sockets ignore network namespaces: without the network, those under /run
        # (/var/run: a database's, D-Bus, Docker's) go too. With it, DNS may need /run.
        tmpfs.append(Path("/run"))
    args = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/tmp"]
    for folder in tmpfs[1:]:
        args += ["--tmpfs", str(folder)]
    made: set[Path] = set()
    for path in (work_dir, *inputs):
        for folder in _ancestors_below(Path(path), tmpfs):
            if folder not in made:
                made.add(folder)
                args += ["--perms", "0755", "--dir", str(folder)]
        if path == work_dir:
            args += ["--bind", str(path), str(path)]
        else:
            args += ["--ro-bind", str(path), str(path)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--chdir", str(work_dir)]
    if not network:
        args.append("--unshare-net")
    if user is None:
        return [*args, "--", *CLEAN_ENV, *argv]
    # Root mounts, then the command drops to the job user: bwrap keeps only the two capabilities
    # setpriv needs, and setuid clears them.
    return [*args, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
            "--", SETPRIV, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
            "--inh-caps=-all", "--", *CLEAN_ENV, *argv]


def _readable_by(path: Path, user: JobUser) -> bool:
    info = path.stat()
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


@dataclass(frozen=True)
class Sandbox:
    """A backend's sandbox: `kind` is "bwrap" or "none" (the command as given)."""

    kind: str
    hidden: tuple[Path, ...] = ()
    user: JobUser | None = None
    bwrap: str = BWRAP
    reason: str = field(default="", compare=False)

    @property
    def on(self) -> bool:
        return self.kind == "bwrap"

    def prepare(self, work_dir: Path, staged: Iterable[Path]) -> list[Path]:
        """Make the execution folder usable by the job user and return the input files to mount
        (in a worker thread: it touches the file system). The folder becomes root-owned, group
        `user`, sticky (1770): the job makes files there but cannot touch the logs; outputs/ and
        tmp/ become the user's, the folders inputs are staged in readable by its group. A staged
        input the user cannot read is copied for it."""
        sources = []
        user = self.user if self.on else None
        if user is not None:
            os.chown(work_dir, 0, user.gid)
            os.chmod(work_dir, 0o1770)
            for name in WRITABLE:
                (work_dir / name).mkdir(exist_ok=True)
                os.chown(work_dir / name, user.uid, user.gid)
                os.chmod(work_dir / name, 0o700)
        for link in staged:
            if user is not None:  # the folders it is staged in (inputs/NAME/I): readable too
                for folder in link.relative_to(work_dir).parents[:-1]:
                    os.chown(work_dir / folder, 0, user.gid)
                    os.chmod(work_dir / folder, 0o750)
            source = link.resolve()
            if user is not None and not _readable_by(source, user):
                link.unlink()
                shutil.copyfile(source, link)
                os.chown(link, user.uid, user.gid)
                os.chmod(link, 0o400)
                continue
            if source != link:
                sources.append(source)
        return sorted(set(sources))

    def wrap(self, argv: Sequence[str], work_dir: Path, inputs: Iterable[Path] = (), *,
             network: bool = False) -> list[str]:
        if not self.on:
            return list(argv)
        return wrap(argv, work_dir, inputs, network=network, hidden=self.hidden,
                    user=self.user, bwrap=self.bwrap)


NO_SANDBOX = Sandbox("none")


@functools.cache
def probe(bwrap: str = BWRAP, as_root: bool | None = None) -> str:
    """Why bwrap cannot sandbox jobs here ("" when it can): runs `true` in the sandbox the jobs
    get, once per process."""
    path = shutil.which(bwrap)
    if path is None:
        return f"{bwrap} is not installed (Debian: apt-get install bubblewrap)"
    root = os.geteuid() == 0 if as_root is None else as_root
    user = JobUser("root", 0, 0) if root else None
    try:
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run(wrap(["true"], Path(folder), user=user, bwrap=path),
                                  check=False, capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} does not run: {exc}"
    if done.returncode != 0:
        return f"{bwrap} fails here: {done.stderr.strip() or f'exit code {done.returncode}'}"
    return ""


def make_sandbox(kind: str | None, user_name: str, data_dir: Path) -> Sandbox:
    """The sandbox for the `sandbox` and `job_user` settings: None means bwrap where it works
    (checked once), else none with a warning. SettingsError when `bwrap` is asked for and does not
    work, or job_user does not exist."""
    hidden = (Path(data_dir).resolve(),)
    if kind in (None, "bwrap"):
        problem = probe()
        if problem and kind == "bwrap":
            raise SettingsError(f"sandbox: bwrap cannot run jobs: {problem}")
        if problem:
            log.warning("jobs run without a sandbox: %s", problem)
            kind = "none"
    if kind == "none":
        if os.geteuid() == 0:
            log.warning("sandbox: none while the server runs as root: every job runs as root "
                        "and can read the data folder, auth.json and the store")
        return NO_SANDBOX
    user = job_user(user_name) if os.geteuid() == 0 else None
    log.info("jobs run in a bubblewrap sandbox as %s",
             user.name if user else "the server's user (job_user needs root)")
    return Sandbox("bwrap", hidden, user, shutil.which(BWRAP) or BWRAP)
