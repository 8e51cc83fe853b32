"""A throwaway Slurm cluster on this one machine, posing as two nodes (n1 and n2), for the tests.

    python -m slurm.cluster start [--dir DIR] [--accounting]   # prints `export SLURM_CONF=...`
    python -m slurm.cluster status [--dir DIR]   # the daemons and the nodes' states
    python -m slurm.cluster stop [--dir DIR]     # cancels every job, then kills the daemons

Debian's `slurmctld`, `slurmd`, `slurm-client` and `munge` are installed with apt-get when
missing. munged (as the munge user, on its own socket and key), slurmctld and one slurmd per node
(`slurmd -N n1`) run as root without systemd, and are stopped by pid. Everything (slurm.conf,
munge's key and socket, spool and state folders, logs, pid files) lives under one folder, a fresh
temporary one unless told, so clients find the cluster through `SLURM_CONF` alone and several
clusters (one per pytest-xdist worker) never collide with each other or with a system config.
Without --dir, status and stop use the folder of `$SLURM_CONF`.

With --accounting (for the QOS test only: it starts in about 2.4 s instead of 0.1), Debian's
`slurmdbd` and `mariadb-server` are installed too, a private mariadbd runs as root in the folder
(its own data folder, socket and loopback port; a `slurm` user with a password made for this
cluster), slurmdbd (slurmdbd.conf, 0600, beside slurm.conf) stores into it, `sacctmgr` registers
the cluster (root gets its association), and slurmctld enforces associations and QOS: sbatch
refuses a --qos that does not exist or is not root's. Without it there is no accounting at all
(`AccountingStorageType=accounting_storage/none`) and sbatch takes any --qos.

The facts behind every setting are in ../shared/spec/slurm-notes.md (the accounting's, measured
on the same Slurm 22.05.8 and MariaDB 10.11, in the comments here). Standard library only: no
project module is imported here (tests/test_layers.py).

Python API: `start_cluster(directory, accounting=False) -> Cluster`; `ClusterUnavailable` means
this machine can't run one at all (not root, no apt-get): the tests skip on it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
# The binaries that show the packages are installed.
BINARIES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/sbin/munged",
            "/usr/sbin/mungekey")
# The accounting cluster's too: slurmdbd keeping its records in a private MariaDB.
ACCOUNTING_PACKAGES = ("slurmdbd", "mariadb-server")
ACCOUNTING_BINARIES = ("/usr/sbin/slurmdbd", "/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db",
                       "/usr/bin/sacctmgr")
NODES = ("n1", "n2")
CPUS_PER_NODE = 2
MEM_PER_NODE = 1024  # MiB
READY_TIMEOUT = 30.0
STATE_FILE = "cluster.json"
INSTALL_LOCK = "/tmp/jobdeck-slurm-install.lock"


class ClusterUnavailable(RuntimeError):
    """This machine can't run the cluster at all (not root, no apt-get, the packages can't be
    installed). The message is one line; the tests skip with it."""


class ClusterError(RuntimeError):
    """The cluster was set up but did not come up (or a node did not come back). The message ends
    with the daemons' log tails."""


def _log(message: str) -> None:
    print(f"slurm-cluster: {message}", file=sys.stderr, flush=True)


# -- installing ------------------------------------------------------------------------------


def _binaries(accounting: bool) -> tuple[str, ...]:
    return BINARIES + ACCOUNTING_BINARIES if accounting else BINARIES


def _packages(accounting: bool) -> tuple[str, ...]:
    return PACKAGES + ACCOUNTING_PACKAGES if accounting else PACKAGES


def check_machine(accounting: bool = False) -> None:
    """Raise ClusterUnavailable when the cluster (with accounting: and its slurmdbd and MariaDB)
    can't be installed or run here."""
    if sys.platform != "linux":
        raise ClusterUnavailable("the Slurm test cluster needs Linux")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the Slurm test cluster needs root (it installs Slurm with "
                                 "apt-get and runs its daemons as root)")
    if all(Path(binary).exists() for binary in _binaries(accounting)):
        return
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("Slurm is not installed and there is no apt-get to install it")


def install_packages(accounting: bool = False) -> None:
    """apt-get install the packages (with accounting: slurmdbd's and MariaDB's too) when a binary
    is missing (idempotent, quiet). Several processes (pytest-xdist workers) may call it at once:
    one installs, the others wait."""
    check_machine(accounting)
    binaries = _binaries(accounting)
    if all(Path(binary).exists() for binary in binaries):
        return
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(Path(binary).exists() for binary in binaries):
            _apt_get_install(_packages(accounting))


def _apt_get_install(packages: Sequence[str]) -> None:
    _log("installing " + " ".join(packages) + " with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=300", *packages]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # The package lists may be missing on a fresh machine: update them once and retry.
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClusterUnavailable(f"apt-get could not install Slurm: {last}")


# -- configuration ---------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# Read from slurm.conf's folder: jobs are held to their --mem (no swap on top).
CGROUP_CONF = ("CgroupPlugin=cgroup/v1\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n"
               "AllowedSwapSpace=0\n")
# cgroup v1's memory controller: where it is mounted, the cluster holds jobs to their --mem.
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")


def memory_limits() -> bool:
    """Whether this machine lets the cluster enforce jobs' memory (Slurm 22.05's cgroup/v2
    needs systemd, which these machines lack)."""
    return CGROUP_V1_MEMORY.is_dir()


def slurm_conf(directory: Path, ports: Sequence[int], kill_wait: int,
               dbd_port: int | None = None) -> str:
    """slurm.conf for one host posing as NODES; `ports`: slurmctld's, then one per node.
    `dbd_port`: slurmdbd's, for a cluster with accounting (None: without)."""
    host = socket.gethostname().split(".", 1)[0]
    d = directory
    lines = [
        f"ClusterName=jobdeck{ports[0]}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={d}/munge/munge.socket",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool/%n",
        f"SlurmctldPidFile={d}/run/slurmctld.pid",
        f"SlurmdPidFile={d}/run/slurmd-%n.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # The fake nodes would be drained for not matching the real hardware without this.
        "SlurmdParameters=config_overrides",
        # cgroup v1 where mounted: each job's memory is limited to its --mem (cgroup.conf), and
        # one that goes over it ends OUT_OF_MEMORY.
        *(("ProctrackType=proctrack/cgroup", "TaskPlugin=task/cgroup") if memory_limits()
          else ("ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none")),
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        # A job without --mem would otherwise take all of its node's memory.
        f"DefMemPerCPU={MEM_PER_NODE // CPUS_PER_NODE // 4}",
        "SchedulerType=sched/backfill",
        # batch_sched_delay: without it the first job starts about 2 s late. bf_interval: a node
        # the backfill planned a pending job on shows PLANNED until its next cycle (30 s by
        # default), even once that job is canceled; each second, it is idle again at once.
        "SchedulerParameters=batch_sched_delay=0,bf_interval=1",
        "PriorityType=priority/basic",
        "JobAcctGatherType=jobacct_gather/linux",
        *accounting_lines(d, dbd_port),
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={d}/log/jobcomp.txt",
        f"KillWait={kill_wait}",
        "SlurmdTimeout=10",
        # `scontrol show job` knows a finished job for 10 minutes.
        "MinJobAge=600",
        "JobRequeue=0",
        "ReturnToService=2",
    ]
    for name, port in zip(NODES, ports[1:], strict=True):
        lines.append(f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
                     f"CPUs={CPUS_PER_NODE} RealMemory={MEM_PER_NODE} State=UNKNOWN")
    lines.append(f"PartitionName=main Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE "
                 "State=UP")
    return "\n".join(lines) + "\n"


def accounting_lines(directory: Path, dbd_port: int | None) -> tuple[str, ...]:
    """slurm.conf's accounting: none, or slurmdbd on `dbd_port`, enforcing associations and QOS
    (a job whose user has no association, or whose --qos does not exist or is not the user's,
    is refused at submission)."""
    if dbd_port is None:
        return ("AccountingStorageType=accounting_storage/none",)
    return ("AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={dbd_port}",
            # The munge socket of the connection to slurmdbd (AuthInfo is not used for it).
            f"AccountingStoragePass={directory}/munge/munge.socket",
            "AccountingStorageEnforce=associations,limits,qos")


def slurmdbd_conf(directory: Path, dbd_port: int, db_port: int, db_password: str) -> str:
    """slurmdbd.conf (read from slurm.conf's folder; slurmdbd wants it 0600): slurmdbd on
    `dbd_port`, storing into the private MariaDB on `db_port`."""
    host = socket.gethostname().split(".", 1)[0]
    d = directory
    return "\n".join([
        "AuthType=auth/munge",
        f"AuthInfo=socket={d}/munge/munge.socket",
        f"DbdHost={host}",
        "DbdAddr=127.0.0.1",
        f"DbdPort={dbd_port}",
        "SlurmUser=root",
        f"PidFile={d}/run/slurmdbd.pid",
        f"LogFile={d}/log/slurmdbd.log",
        "DebugLevel=info",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={db_port}",
        "StorageUser=slurm",
        f"StoragePass={db_password}",
        "StorageLoc=slurm_acct_db",
    ]) + "\n"


# -- processes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (PID 1 here may never reap the daemons)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _kill(pids: Iterable[int], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send `sig` to each live pid and wait until all are gone; SIGKILL whatever outlives
    `timeout`."""
    pids = [pid for pid in pids if _alive(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if _alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.02)


def _processes() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, command line) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue
        found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def _descendants(roots: Iterable[int], processes: dict[int, tuple[int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"--- {path.name}: missing"
    return f"--- {path.name}:\n" + "\n".join(text[-lines:])


# -- the cluster -----------------------------------------------------------------------------


class Cluster:
    """A cluster whose state lives under `directory`; `env` is what a client needs. With
    `accounting`, slurmdbd (on a private MariaDB) keeps its associations and QOS."""

    def __init__(self, directory: Path, nodes: Sequence[str] = NODES, accounting: bool = False):
        self.directory = Path(directory).resolve()
        self.nodes = tuple(nodes)
        self.accounting = accounting
        self.conf = self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment a client (sbatch, squeue, ...) needs: `{"SLURM_CONF": ...}`."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """A Slurm command against this cluster; its stdout. Raises ClusterError when `check`
        and it fails."""
        result = subprocess.run(args, env={**os.environ, **self.env}, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(args)} exited {result.returncode}: "
                               f"{result.stderr.strip()}")
        return result.stdout

    # -- daemons ---------------------------------------------------------------------------

    def _pid_file(self, daemon: str) -> Path:
        names = {"munged": "munge/munged.pid", "slurmctld": "run/slurmctld.pid"}
        return self.directory / names.get(daemon, f"run/{daemon}.pid")

    def pids(self) -> dict[str, int | None]:
        """Each daemon's pid when it is alive, else None: munged, (mariadbd, slurmdbd,)
        slurmctld, slurmd-n1, ..."""
        daemons = ["munged", *(("mariadbd", "slurmdbd") if self.accounting else ()),
                   "slurmctld", *(f"slurmd-{node}" for node in self.nodes)]
        found = {}
        for daemon in daemons:
            pid = _read_pid(self._pid_file(daemon))
            found[daemon] = pid if pid is not None and _alive(pid) else None
        return found

    def _launch(self, argv: Sequence[str], pid_file: Path, name: str) -> int:
        """Run a daemon that forks into the background; its pid, once its pid file names a live
        process."""
        with (self.directory / "log" / "launch.log").open("a") as out:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env={**os.environ, **self.env}, check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = _read_pid(pid_file)
            if pid is not None and _alive(pid):
                return pid
            time.sleep(0.02)
        raise ClusterError(f"{name} did not start (exit {result.returncode})\n"
                           + self.log_tails())

    def _start_munged(self) -> None:
        munge = self.directory / "munge"
        key = munge / "munge.key"
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True,
                       capture_output=True)
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        shutil.chown(munge, "munge", "munge")
        self._launch(["runuser", "-u", "munge", "--", "/usr/sbin/munged",
                      f"--socket={munge}/munge.socket", f"--key-file={key}",
                      f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                      f"--seed-file={munge}/munged.seed"],
                     self._pid_file("munged"), "munged")

    def _wait_listening(self, port: int, daemon: str) -> None:
        """Until `daemon` (alive) accepts connections on 127.0.0.1:`port`."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.pids()[daemon] is None:
                break
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise ClusterError(f"{daemon} is not listening on port {port}\n" + self.log_tails())

    def _start_mariadbd(self, db_port: int, password: str) -> None:
        """A private MariaDB for slurmdbd, as root on its own data folder, socket and port, with
        the `slurm` user slurmdbd logs in as."""
        db = self.directory / "mariadb"
        db.mkdir(exist_ok=True)
        with (self.directory / "log" / "launch.log").open("a") as out:
            made = subprocess.run(["/usr/bin/mariadb-install-db", "--no-defaults", "--user=root",
                                   f"--datadir={db}/data",
                                   "--auth-root-authentication-method=socket", "--skip-test-db",
                                   "--skip-name-resolve"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False)
        if made.returncode != 0:
            raise ClusterError(f"mariadb-install-db exited {made.returncode}\n"
                               + self.log_tails())
        init = db / "init.sql"
        init.touch(mode=0o600)
        init.write_text(
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';\n")
        # mariadbd stays in the foreground: it runs in a session of its own, and is stopped by
        # the pid it writes like the daemons that fork.
        with (self.directory / "log" / "mariadbd.log").open("a") as out:
            subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", "--user=root",
                              f"--datadir={db}/data", f"--socket={db}/mariadbd.sock",
                              f"--pid-file={self._pid_file('mariadbd')}", f"--port={db_port}",
                              "--bind-address=127.0.0.1", "--skip-name-resolve",
                              f"--init-file={init}", "--innodb-buffer-pool-size=32M"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             start_new_session=True)
        self._wait_pid_file("mariadbd")
        self._wait_listening(db_port, "mariadbd")

    def _wait_pid_file(self, daemon: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while self.pids()[daemon] is None:
            if time.monotonic() > deadline:
                raise ClusterError(f"{daemon} did not start\n" + self.log_tails())
            time.sleep(0.02)

    def _start_accounting(self, name: str, dbd_port: int, db_port: int) -> None:
        """MariaDB, then slurmdbd, then the cluster `name` in it (which gives root an association
        to the account root: slurmctld, enforcing associations, takes root's jobs), all before
        slurmctld starts, so that it finds them at once."""
        password = secrets.token_hex(16)
        dbd_conf = self.directory / "slurmdbd.conf"
        dbd_conf.touch(mode=0o600)
        dbd_conf.write_text(slurmdbd_conf(self.directory, dbd_port, db_port, password))
        self._start_mariadbd(db_port, password)
        self._launch(["/usr/sbin/slurmdbd"], self._pid_file("slurmdbd"), "slurmdbd")
        self._wait_listening(dbd_port, "slurmdbd")
        self.run("sacctmgr", "-i", "add", "cluster", name)

    def start_node(self, node: str) -> None:
        """Start that node's slurmd (again, after kill_node)."""
        (self.directory / "spool" / node).mkdir(parents=True, exist_ok=True)
        self._launch(["/usr/sbin/slurmd", "-f", str(self.conf), "-N", node],
                     self._pid_file(f"slurmd-{node}"), f"slurmd -N {node}")

    def start(self, kill_wait: int = 2) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        closed = [str(p) for p in d.parents if not p.stat().st_mode & 0o001]
        if closed:
            # pytest's tmp_path is one: its pytest-of-root folder is private.
            raise ClusterError(f"{d}: munged (as the munge user) can't reach it through "
                               f"{closed[0]}; use a folder every user can traverse")
        d.chmod(0o755)  # munged (as munge) must reach its folder inside
        for sub in ("munge", "state", "run", "log", "spool"):
            (d / sub).mkdir(exist_ok=True)
        ports = free_ports(1 + len(self.nodes) + (2 if self.accounting else 0))
        # The accounting cluster's last two: slurmdbd's and MariaDB's.
        dbd_port, db_port = ports[-2:] if self.accounting else (None, None)
        slurm_ports = ports[:1 + len(self.nodes)]
        self.conf.write_text(slurm_conf(d, slurm_ports, kill_wait, dbd_port))
        (d / "cgroup.conf").write_text(CGROUP_CONF)
        (d / STATE_FILE).write_text(json.dumps({"nodes": list(self.nodes), "ports": ports,
                                                "accounting": self.accounting}))
        self._start_munged()
        if dbd_port is not None and db_port is not None:
            self._start_accounting(f"jobdeck{slurm_ports[0]}", dbd_port, db_port)
        self._launch(["/usr/sbin/slurmctld", "-f", str(self.conf)],
                     self._pid_file("slurmctld"), "slurmctld")
        for node in self.nodes:
            self.start_node(node)
        self.wait_idle(self.nodes)

    # -- state -----------------------------------------------------------------------------

    def node_states(self) -> dict[str, str]:
        """name: state as sinfo reports it (idle, mixed, allocated, drained, down*, ...)."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False, timeout=10)
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    def wait_idle(self, nodes: Iterable[str], timeout: float = READY_TIMEOUT) -> None:
        """Until each of `nodes` is idle; ClusterError with the log tails after `timeout`."""
        nodes = list(nodes)
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.node_states()
            if all(states.get(node) == "idle" for node in nodes):
                return
            time.sleep(0.1)
        raise ClusterError(f"nodes not idle after {timeout:.0f} s: {states or 'no answer'}\n"
                           + self.log_tails())

    def log_tails(self) -> str:
        logs = self.directory / "log"
        files = [logs / "launch.log", self.directory / "munge" / "munged.log",
                 *((logs / "mariadbd.log", logs / "slurmdbd.log") if self.accounting else ()),
                 logs / "slurmctld.log", *(logs / f"slurmd-{node}.log" for node in self.nodes)]
        return "\n".join(_tail(path) for path in files)

    def job_ids(self) -> list[str]:
        """Every job slurmctld still knows that has not ended (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%A", check=False, timeout=10).split()

    # -- node loss and stopping ------------------------------------------------------------

    def kill_node(self, node: str) -> None:
        """Simulate the loss of `node`: SIGKILL its slurmd, the slurmstepd of each job running
        there and the jobs' processes (slurmd alone is not enough: slurmstepd keeps the job
        alive). slurmctld marks the node DOWN and its jobs NODE_FAIL after about 25-30 s;
        `start_node` brings it back."""
        jobs = self.run("squeue", "-h", "-w", node, "-o", "%A").split()
        slurmd = _read_pid(self._pid_file(f"slurmd-{node}"))
        processes = _processes()
        # A step daemon's command line is "slurmstepd: [JOBID.STEP]" and its working folder is
        # this cluster's log folder (job ids are only unique within one cluster).
        logs = str(self.directory / "log")
        stepds = [pid for pid, (_, cmd) in processes.items()
                  if cmd.startswith("slurmstepd:")
                  and any(f"[{job}." in cmd for job in jobs)
                  and os.path.realpath(f"/proc/{pid}/cwd") == logs]
        victims = _descendants(stepds, processes)
        for pid in [slurmd or 0, *victims]:
            if pid and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _kill([slurmd or 0, *victims], signal.SIGKILL, timeout=5)

    def cancel_all(self, timeout: float = 30.0) -> None:
        """scancel every job and wait (up to `timeout`) until squeue lists none."""
        jobs = self.job_ids()
        if jobs:
            self.run("scancel", *jobs, check=False)
            deadline = time.monotonic() + timeout
            while self.job_ids() and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job, wait until squeue is empty, then stop the daemons by pid (slurmd,
        slurmctld, then slurmdbd and mariadbd when there, munged). Idempotent."""
        pids = self.pids()
        if pids["slurmctld"] is not None:
            self.cancel_all(timeout)
        _kill(pid for name, pid in pids.items() if name.startswith("slurmd-") and pid)
        for daemon in ("slurmctld", "slurmdbd", "mariadbd", "munged"):
            pid = pids.get(daemon)
            if pid:
                # After a node loss slurmctld takes ~3 s to end on SIGTERM; its state (and the
                # accounting's) is throwaway, so each gets SIGKILL after 1 s.
                _kill([pid], timeout=1.0)

    def status(self) -> str:
        pids = self.pids()
        lines = [f"{daemon}: {'pid ' + str(pid) if pid else 'not running'}"
                 for daemon, pid in pids.items()]
        if pids["slurmctld"]:
            lines += [f"node {node}: {state}" for node, state in self.node_states().items()]
        return "\n".join(lines)


def start_cluster(directory: str | os.PathLike[str] | None = None, kill_wait: int = 2,
                  accounting: bool = False) -> Cluster:
    """Install Slurm if needed and start a cluster under `directory` (a fresh temporary folder
    when None); it returns once both nodes are idle. `kill_wait`: seconds between SIGTERM and
    SIGKILL when Slurm ends a job. `accounting`: with slurmdbd on a private MariaDB, enforcing
    associations and QOS (root's jobs go to the account root). ClusterUnavailable
    when this machine can't run it; ClusterError (the daemons stopped again) when it does not
    come up."""
    install_packages(accounting)
    if directory is None:
        directory = tempfile.mkdtemp(prefix="slurm-cluster-")
    cluster = Cluster(Path(directory), accounting=accounting)
    try:
        cluster.start(kill_wait)
    except BaseException:
        cluster.stop(timeout=5)
        raise
    return cluster


def existing_cluster(directory: str | os.PathLike[str]) -> Cluster:
    """The cluster a previous `start` left under `directory`."""
    state_file = Path(directory) / STATE_FILE
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return Cluster(Path(directory), state.get("nodes", NODES), state.get("accounting", False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.cluster", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--accounting", action="store_true", help="start: with slurmdbd on a "
                        "private MariaDB, enforcing associations and QOS")
    parser.add_argument("--dir", help="the cluster's folder (start: a fresh temporary folder "
                        "unless given; stop, status: the folder of $SLURM_CONF unless given)")
    args = parser.parse_args(argv)
    directory = args.dir
    if directory is None and args.command != "start":
        if not os.environ.get("SLURM_CONF"):
            parser.error("--dir is required when SLURM_CONF is not set")
        directory = str(Path(os.environ["SLURM_CONF"]).parent)
    try:
        if args.command == "start":
            began = time.monotonic()
            cluster = start_cluster(directory, accounting=args.accounting)
            _log(f"up in {time.monotonic() - began:.1f} s: nodes {', '.join(cluster.nodes)} "
                 f"idle; folder {cluster.directory}")
            print(f"export SLURM_CONF={cluster.conf}")
        elif args.command == "stop":
            existing_cluster(directory).stop()
        else:
            print(existing_cluster(directory).status())
    except ClusterUnavailable as exc:
        print(f"slurm-cluster: {exc}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"slurm-cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
