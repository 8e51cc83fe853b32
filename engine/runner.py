"""One execution through Scale's three phases: pre (stage inputs, build the command line),
job (the backend runs the command), post (turn output files into products).

Every job runs in a clean environment holding only these variables:

- PATH=/usr/local/bin:/usr/bin:/bin, LANG=C.UTF-8, HOME and TMPDIR (inside the working folder);
- JOBDECK_JOB_ID, JOBDECK_EXE_ID, JOBDECK_JOB_TYPE, JOBDECK_JOB_TYPE_VERSION;
- JOBDECK_WORK_DIR (the execution's working folder, also the current directory),
  JOBDECK_OUTPUT_DIR (the same folder as ${job_output_dir});
- JOBDECK_CPUS and JOBDECK_MEM (the CPUs and MiB scheduled for it).

Outputs: files the job writes into ${job_output_dir} become products. An optional
`results_manifest.json` there names them, `{"output_data": [{"name": "x", "file": "a.txt"},
{"name": "y", "files": ["b.png", "c.png"]}]}` (paths relative to the output folder); without
one, each output of the interface takes the files whose names start with the output's name or,
failing that, whose media type is the output's media type.
"""

import asyncio
import json
import logging
import mimetypes
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from core.model import FINAL_JOB_STATUSES
from core.times import now_ms
from engine.executor import (
    CANCELED,
    EXECUTION_DIR_MODE,
    LOST,
    TIMED_OUT,
    Backend,
    ExitReport,
    LaunchError,
    LaunchSpec,
    Running,
    open_log,
)

log = logging.getLogger("jobdeck.engine")

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
MANIFEST = "results_manifest.json"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
# Seconds a job runs before its start is written on its own (see ExecutionRunner._record_start).
START_RECORD_DELAY = 1.0


class PhaseError(Exception):
    """A pre or post phase failed; `error_name` names the Scale error to fail with."""

    def __init__(self, error_name: str, message: str):
        super().__init__(message)
        self.error_name = error_name


def inside(base: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(base.resolve())


def file_location(workspace: dict, file_doc: dict) -> Path:
    return Path(workspace["base_path"]) / file_doc["file_path"]


def guess_media_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def note(log_path: Path, message) -> None:
    """Tell the job's owner, in its stderr log, why the engine failed it."""
    with open_log(log_path) as handle:
        handle.write(f"jobdeck: {message}\n".encode())


def build_argv(command: str, arguments: str, values: dict) -> list[str]:
    """The command line: `command` and `arguments` split like a shell would (no shell runs),
    then each ${name} replaced inside its word. A word that is only a `files` placeholder
    becomes one word per path; an absent optional input's lone placeholder word disappears."""
    argv = shlex.split(command)
    for word in shlex.split(arguments):
        whole = PLACEHOLDER.fullmatch(word)
        if whole:
            value = values.get(whole.group(1))
            if value is None:
                continue
            argv.extend(value if isinstance(value, list) else [value])
            continue

        def fill(match):
            value = values.get(match.group(1))
            if value is None:
                return ""
            return " ".join(value) if isinstance(value, list) else value

        argv.append(PLACEHOLDER.sub(fill, word))
    return argv


def _manifest_paths(entry) -> list:
    if "file" in entry:
        return [entry["file"]]
    if "files" in entry and isinstance(entry["files"], list):
        return entry["files"]
    return []


def collect_outputs(output_specs: list[dict], output_dir: Path) -> tuple[dict, dict | None]:
    """{output name: [paths]} for the interface's outputs, and the manifest if one was written."""
    manifest = None
    found: dict[str, list[Path]] = {spec["name"]: [] for spec in output_specs}
    manifest_path = output_dir / MANIFEST
    if manifest_path.is_file():
        manifest = _read_manifest(manifest_path)
        _claim_manifest_outputs(manifest, output_dir, found)
    else:
        _claim_outputs_by_match(output_specs, output_dir, found)
    _check_output_counts(output_specs, found)
    return found, manifest


def _read_manifest(manifest_path: Path) -> Any:
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PhaseError("algorithm-unknown", f"{MANIFEST} is not valid JSON: {exc}") from None


def _claim_manifest_outputs(manifest: Any, output_dir: Path,
                            found: dict[str, list[Path]]) -> None:
    """Give each output the files the manifest lists for it; an entry naming no output of the
    interface fails the post phase."""
    entries = manifest.get("output_data") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise PhaseError("algorithm-unknown", f'{MANIFEST} needs an "output_data" list')
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("name") not in found:
            raise PhaseError("algorithm-unknown", f"{MANIFEST} names an unknown output: "
                                                  f"{json.dumps(entry)[:200]}")
        found[entry["name"]].extend(_manifest_files(entry, output_dir))


def _manifest_files(entry: dict, output_dir: Path) -> list[Path]:
    """The files a manifest entry lists, resolved; each must be a file in the output folder."""
    files = []
    for item in _manifest_paths(entry):
        raw = item.get("path") if isinstance(item, dict) else item
        path = output_dir / str(raw)
        if not isinstance(raw, str) or not inside(output_dir, path) or not path.is_file():
            raise PhaseError("algorithm-unknown", f"{MANIFEST}: {raw!r} is not a file "
                                                  "in the output folder")
        files.append(path.resolve())
    return files


def _claim_outputs_by_match(output_specs: list[dict], output_dir: Path,
                            found: dict[str, list[Path]]) -> None:
    """Without a manifest: each output takes the files whose names start with its name; one
    still without files then takes those of its media type. A file is claimed once, and a
    `file` output takes only the first that matches."""
    files = sorted(p for p in output_dir.rglob("*")
                   if p.is_file() and not p.is_symlink() and inside(output_dir, p))
    claimed: set[Path] = set()
    for match_by_name in (True, False):
        for spec in output_specs:
            if found[spec["name"]]:
                continue
            for path in files:
                if path in claimed or not _output_matches(spec, path, match_by_name):
                    continue
                found[spec["name"]].append(path)
                claimed.add(path)
                if spec["type"] == "file":
                    break


def _output_matches(spec: dict, path: Path, by_name: bool) -> bool:
    if by_name:
        return path.name.startswith(spec["name"])
    return bool(spec.get("media_type")) and guess_media_type(path) == spec["media_type"]


def _check_output_counts(output_specs: list[dict], found: dict[str, list[Path]]) -> None:
    """A `file` output has at most one file, and a required output at least one."""
    for spec in output_specs:
        paths = found[spec["name"]]
        if spec["type"] == "file" and len(paths) > 1:
            raise PhaseError("algorithm-unknown",
                             f'output "{spec["name"]}" is one file but {len(paths)} were given')
        if spec.get("required", True) and not paths:
            raise PhaseError("algorithm-unknown",
                             f'required output "{spec["name"]}" was not written')


def claim_fields(data_dir: Path, exe_id: int, when: int) -> dict:
    """Written with the claim itself (one round trip fewer per job): the pre phase starts as
    the execution is claimed, and its folder and logs are known from then on."""
    work_dir = data_dir / "executions" / str(exe_id)
    return {"pre_started": when, "work_dir": str(work_dir),
            "stdout_file": str(work_dir / "stdout.log"),
            "stderr_file": str(work_dir / "stderr.log")}


class ExecutionRunner:
    """Runs one claimed execution and writes each phase and the outcome to the store."""

    def __init__(self, engine, job: dict, exe: dict, job_type: dict,
                 turn: asyncio.Event | None = None):
        self.engine = engine
        # Set by the runner launched before this one once it has handed its job to the backend
        # (a backend that places jobs queues them in the order it gets them); this runner's own
        # `handed` is set likewise, at the latest when it ends.
        self.turn = turn
        self.handed = asyncio.Event()
        self.job_type = job_type
        self.store = engine.store
        self.backend: Backend = engine.backend
        self.job = job
        self.exe = exe
        self.exe_id = exe["id"]
        self.work_dir = engine.data_dir / "executions" / str(self.exe_id)
        self.output_dir = self.work_dir / "outputs"
        self.inputs_dir = self.work_dir / "inputs"
        self.tmp_dir = self.work_dir / "tmp"
        self.running: Running | None = None
        self.canceled = False
        # Set once the execution's own outcome is being recorded: the store then shows a final
        # status this runner wrote, and there is nothing left to stop.
        self.ending = False
        self.arguments = ""
        self.staged: list[Path] = []  # the input files linked into inputs/
        self._start_recorded = False
        self._started: dict[str, Any] = {}  # the end of pre and the start of job, once known
        # Set when the engine stops and leaves the job running for the next server (Slurm).
        self.detached = False
        self._recording: asyncio.Task | None = None

    async def run(self, attach: Running | None = None) -> None:
        """Run the execution, or with `attach`, take over its job phase a previous server
        started and record how it ends."""
        try:
            await (self._run() if attach is None else self._attached(attach))
        except PyMongoError as exc:
            if self.store.writes.failed(exc) is not None:  # logged once per outage there
                log.info("execution %s: the store cannot write its progress (%s); it is failed "
                         "as node-lost (and retried) once the store writes again", self.exe_id,
                         exc)
            else:
                log.warning("execution %s: the store is unreachable (%s); the next engine "
                            "start recovers it", self.exe_id, exc)
        except Exception:
            log.exception("execution %s failed inside the engine", self.exe_id)
            await self._fail("unknown")
        finally:
            self.handed.set()
            # Its room is free once its outcome is in the store: the next pass need not wait
            # for the folders to go.
            self.engine.wake()
            if not self.detached:  # a detached job still runs: its folders are its own
                await asyncio.to_thread(self._clean_up)

    def _clean_up(self) -> None:
        """An ended execution keeps only its logs (served by /job-executions/{id}/logs/): staged
        inputs, leftover outputs and its temporary files go."""
        for folder in (self.inputs_dir, self.output_dir, self.tmp_dir):
            shutil.rmtree(folder, ignore_errors=True)

    async def cancel(self, grace: float) -> None:
        self.canceled = True
        if self.running is not None:
            await self.running.cancel(grace)

    async def _run(self) -> None:
        jobs = self.store.jobs
        job_type = self.job_type
        interface = await self.engine.interface_of(self.job["job_type_rev_id"])
        self.arguments = interface["command_arguments"]
        stdout, stderr = self.work_dir / "stdout.log", self.work_dir / "stderr.log"
        try:
            values, env = await self._pre(job_type, interface)
        except PhaseError as exc:
            log.warning("execution %s: pre phase failed: %s", self.exe_id, exc)
            await jobs.update_execution(self.exe_id, pre_completed=now_ms(), pre_exit_code=1)
            await self._fail(exc.error_name)
            return
        argv = build_argv(interface["command"], self.arguments, values)
        # The execution shows the arguments that ran; the job type keeps the ${...} template.
        resolved = shlex.join(argv[len(shlex.split(interface["command"])):])
        pre_completed = now_ms()
        if self.canceled:
            await jobs.update_execution(self.exe_id, pre_completed=pre_completed, pre_exit_code=0,
                                        environment=env, command_arguments=resolved)
            return
        spec = LaunchSpec(self.exe_id, argv, self.work_dir, env, stdout, stderr,
                          float(self.exe["timeout"]) if self.exe.get("timeout") else None,
                          self.job["cpus_required"], self.job["mem_required"],
                          inputs=self.staged, network=bool(interface.get("network", False)),
                          priority=int(self.job.get("priority") or 0))
        if self.turn is not None:
            await self.turn.wait()
        job_started = now_ms()
        try:
            running = self.running = await self.backend.start(spec)
        except LaunchError as exc:
            self.handed.set()
            log.warning("execution %s: %s", self.exe_id, exc)
            note(stderr, exc)
            await jobs.update_execution(self.exe_id, pre_completed=pre_completed, pre_exit_code=0,
                                        environment=env, command_arguments=resolved,
                                        job_started=job_started, job_completed=now_ms())
            await self._fail(exc.error_name)
            return
        self.handed.set()
        started: dict[str, Any] = {
            "pre_completed": pre_completed, "pre_exit_code": 0, "environment": env,
            "command_arguments": resolved, "job_started": job_started, "process": running.ref.as_doc()}
        self._started = started
        recording = self._recording = asyncio.create_task(self._record_start(started))
        if self.canceled:
            await running.cancel(self.engine.cancel_grace)
        report = await running.wait()
        self.ending = True
        job_phase: dict[str, Any] = {"job_completed": now_ms(),
                                     "job_exit_code": report.exit_code,
                                     "process": running.ref.as_doc()}  # with its node, if known
        if self._start_recorded:
            await recording
        else:
            recording.cancel()
            job_phase = {**started, **job_phase}
        await self._outcome(report, job_phase, interface)

    async def _attached(self, running: Running) -> None:
        self.handed.set()  # the backend has had its job since a previous server
        interface = await self.engine.interface_of(self.job["job_type_rev_id"])
        self.arguments = interface["command_arguments"]
        self.running = running
        if self.canceled:
            await running.cancel(self.engine.cancel_grace)
        report = await running.wait()
        self.ending = True
        await self._outcome(report, {"job_completed": now_ms(), "job_exit_code": report.exit_code,
                                     "process": running.ref.as_doc()}, interface)

    async def detach(self) -> None:
        """Leave the job phase running (the engine stops; the next one attaches to it): its start
        is written now if it was not yet."""
        self.detached = True
        if self._recording is not None:
            self._recording.cancel()
        if self._started and not self._start_recorded:
            self._start_recorded = True
            await self.store.jobs.update_execution(self.exe_id, **self._started)

    async def _outcome(self, report: ExitReport, job_phase: dict, interface: dict) -> None:
        """Record how the job phase ended: canceled, failed with its error, or the post phase."""
        stderr = self.work_dir / "stderr.log"
        if report.reason == CANCELED or self.canceled:
            await self.store.jobs.update_execution(self.exe_id, **job_phase)
            return
        if report.reason == TIMED_OUT:
            await self._fail("timeout", job_phase)
            return
        if report.reason == LOST or report.error:
            log.warning("execution %s: %s", self.exe_id, report.detail)
            if report.detail:
                await asyncio.to_thread(note, stderr, report.detail)
            await self._fail("node-lost" if report.reason == LOST else str(report.error),
                             job_phase)
            return
        if report.exit_code != 0:
            mapping = (self.job_type.get("error_mapping") or {}).get("exit_codes", {})
            await self._fail(mapping.get(str(report.exit_code), "algorithm-unknown"), job_phase)
            return
        await self._post(interface, job_phase)

    async def _pre(self, job_type: dict, interface: dict) -> tuple[dict, dict]:
        """Make the working folders and stage every input file (symlinks into inputs/)."""
        await asyncio.to_thread(self._make_folders)
        data = self.job.get("data") or {}
        entries = {e["name"]: e for e in data.get("input_data", []) if "name" in e}
        values: dict = {"job_output_dir": str(self.output_dir)}
        file_ids = [i for e in entries.values()
                    for i in ([e["file_id"]] if "file_id" in e else e.get("file_ids", []))]
        files = await self.store.files.files_by_ids(file_ids)
        workspaces = await self.store.files.workspaces_by_ids(
            f["workspace_id"] for f in files.values())
        for spec in interface.get("input_data", []):
            entry = entries.get(spec["name"])
            if entry is None:
                continue
            if spec["type"] == "property":
                values[spec["name"]] = str(entry.get("value", ""))
                continue
            ids = [entry["file_id"]] if spec["type"] == "file" else entry.get("file_ids", [])
            staged = []
            for index, file_id in enumerate(ids):
                staged.append(str(self._stage(spec["name"], index, file_id, files, workspaces,
                                              self.inputs_dir)))
            values[spec["name"]] = staged[0] if spec["type"] == "file" else staged
            self.staged.extend(Path(path) for path in staged)
        env = {
            "PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": str(self.work_dir),
            "TMPDIR": str(self.tmp_dir),
            "JOBDECK_JOB_ID": str(self.job["id"]), "JOBDECK_EXE_ID": str(self.exe_id),
            "JOBDECK_JOB_TYPE": job_type["name"], "JOBDECK_JOB_TYPE_VERSION": job_type["version"],
            "JOBDECK_WORK_DIR": str(self.work_dir), "JOBDECK_OUTPUT_DIR": str(self.output_dir),
            "JOBDECK_CPUS": f"{self.job['cpus_required']:g}",
            "JOBDECK_MEM": f"{self.job['mem_required']:g}",
        }
        return values, env

    async def _record_start(self, fields: dict) -> None:
        """Write the end of pre and the start of job once the process has run for
        START_RECORD_DELAY; a shorter job writes them with its final status instead (one round
        trip fewer). Until then a restarted engine finds the process by its environment."""
        await asyncio.sleep(START_RECORD_DELAY)
        self._start_recorded = True
        if self.running is not None:  # with its node, when the cluster has placed it already
            fields = {**fields, "process": self.running.ref.as_doc()}
        await self.store.jobs.update_execution(self.exe_id, **fields)
        await self._record_node(fields["process"])

    async def _record_node(self, recorded: dict) -> None:
        """Write the process again once the cluster has placed the job on a node (the API shows
        where an execution runs while it runs), and count the job's use on that node; nothing
        for a local process."""
        if self.running is None:
            return
        if recorded.get("node") is None:
            await self.running.placed()
            if self.running.ref.node is None:
                return
            await self.store.jobs.update_execution(self.exe_id, process=self.running.ref.as_doc())
        node_id = await self.store.nodes.cluster_node_id(self.running.ref.node)
        if node_id is not None:
            await self.store.jobs.place_running(self.job["id"], self.exe_id, node_id)

    def _make_folders(self) -> None:
        """In a worker thread: folder creation is slow on some file systems and would hold up
        every other execution on the event loop."""
        for folder in (self.work_dir, self.output_dir, self.tmp_dir, self.inputs_dir):
            folder.mkdir(mode=EXECUTION_DIR_MODE, parents=True, exist_ok=True)

    @staticmethod
    def _stage(name, index, file_id, files, workspaces, inputs_dir) -> Path:
        """Link one input file into inputs/<name>/<n>/<file name>; a missing file is SYSTEM."""
        doc = files.get(file_id)
        workspace = workspaces.get(doc["workspace_id"]) if doc else None
        if doc is None or workspace is None:
            raise PhaseError("filesystem-io", f"input file {file_id} is not in the store")
        source = file_location(workspace, doc)
        if not inside(Path(workspace["base_path"]), source) or not source.is_file():
            raise PhaseError("filesystem-io", f"input file {file_id} is missing at {source}")
        target = inputs_dir / name / str(index) / doc["file_name"]
        target.parent.parent.mkdir(mode=EXECUTION_DIR_MODE, parents=True, exist_ok=True)
        target.parent.mkdir(mode=EXECUTION_DIR_MODE, exist_ok=True)
        try:
            target.symlink_to(source.resolve())
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(source, target)
        return target

    async def _post(self, interface: dict, job_phase: dict) -> None:
        """Outputs → product files in the job data's output workspaces, then COMPLETED.

        The job and post phase fields are written with the final status (one write, not three);
        collecting outputs takes milliseconds, so no one watches the post phase run."""
        phases = {**job_phase, "post_started": now_ms()}
        specs = interface.get("output_data", [])
        try:
            found, manifest = collect_outputs(specs, self.output_dir)
        except PhaseError as exc:
            log.warning("execution %s: post phase failed: %s", self.exe_id, exc)
            note(self.work_dir / "stderr.log", exc)
            await self._fail(exc.error_name, {**phases, "post_completed": now_ms(),
                                              "post_exit_code": 1})
            return
        targets = {e["name"]: e["workspace_id"]
                   for e in (self.job.get("data") or {}).get("output_data", [])}
        workspaces = await self.store.files.workspaces_by_ids(targets.values())
        output_data: list[dict] = []
        results = {"version": "1.0", "output_data": output_data}
        for spec in specs:
            paths = found[spec["name"]]
            workspace = workspaces.get(targets.get(spec["name"]))
            if not paths:
                continue
            if workspace is None:
                await self._fail("filesystem-io", {**phases, "post_completed": now_ms(),
                                                   "post_exit_code": 1})
                return
            ids = [await self._product(spec, path, workspace) for path in paths]
            entry = {"name": spec["name"]}
            if spec["type"] == "file":
                entry["file_id"] = ids[0]
            else:
                entry["file_ids"] = ids
            output_data.append(entry)
        # The next pass may give its room away as soon as the completion waits for its group.
        self.engine.wake()
        await self.store.jobs.complete_execution(self.exe_id, results, exe_fields={
            **phases, "post_completed": now_ms(), "post_exit_code": 0,
            "results_manifest": manifest}, job_id=self.job["id"])

    async def _product(self, spec: dict, path: Path, workspace: dict) -> int:
        base = Path(workspace["base_path"])
        relative = Path("products") / str(self.job["id"]) / str(self.exe_id) / path.name
        destination = base / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, destination)
        if os.geteuid() == 0:  # written by the sandboxed job_user: the server's now (and chown
            os.chown(destination, 0, 0)  # clears any set-user-ID bit the job set)
        media_type = spec.get("media_type") or guess_media_type(path)
        doc = await self.store.files.create_file(
            workspace["id"], path.name, media_type, destination.stat().st_size, str(relative),
            product_of={"job_type_id": self.job["job_type_id"], "job_id": self.job["id"],
                        "job_exe_id": self.exe_id})
        return doc["id"]

    async def _fail(self, error_name: str, exe_fields: dict | None = None) -> None:
        self.ending = True
        error = await self.store.errors.by_name(error_name) or \
            await self.store.errors.by_name("unknown")
        job = await self.store.jobs.fail_execution(self.exe_id, error,
                                                   command_arguments=self.arguments,
                                                   exe_fields=exe_fields)
        if job is not None and job["status"] not in FINAL_JOB_STATUSES:
            log.info("execution %s failed with %s; job %s requeued", self.exe_id, error_name,
                     self.job["id"])
