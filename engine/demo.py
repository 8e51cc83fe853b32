"""`server.py --demo`: real demo job types and a steady trickle of jobs, so a new user sees the
engine, the API and the dashboards at work at once.

Three job types run small scripts from engine/demo_jobs/ (their source on the command line, so
a sandboxed job needs no access to the checkout): a word count of a text file, a SHA-256
checksum of a file (both write products into the `demo` workspace), and one that sleeps a few
seconds and fails one time in four (exit code 3, mapped to the `demo-flaky` error). The inputs are
this project's own source files, uploaded into the workspace like any user's file.
"""

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
import shlex
import shutil
import sys
import uuid
from pathlib import Path

from core.interface import validate_error_mapping, validate_interface, validate_job_data
from core.times import now_ms
from engine.runner import CLEAN_PATH
from engine.scheduler import Engine
from store import Store
from store.documents import JobDoc

log = logging.getLogger("jobdeck.demo")

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "demo_jobs"
WORKSPACE = "demo"
# Submit while fewer than this many demo jobs wait, one every INTERVAL seconds.
MAX_WAITING = 6
INTERVAL = 2.0
# The scripts need only the standard library: the jobs' PATH's python3, which a sandboxed job's
# user can run (the server's own interpreter may lie where it cannot, e.g. under /root).
PYTHON = shutil.which("python3", path=CLEAN_PATH) or sys.executable


def demo_type(name: str, title: str, description: str, script: str, arguments: str,
              **fields) -> dict:
    """A demo job type: version 1.0, category `demo`, 128 MiB, three tries."""
    # The script's source goes on the command line (`python3 -c SOURCE ARGS`): a sandboxed job
    # sees neither /tmp nor folders only root may enter, where a checkout may lie.
    source = (SCRIPTS / script).read_text()
    interface = {"command": shlex.quote(PYTHON),
                 "command_arguments": f"-c {shlex.quote(source)} {arguments}",
                 "input_data": fields.pop("inputs"), "output_data": fields.pop("outputs", [])}
    return {"name": name, "version": "1.0", "title": title, "description": description,
            "category": "demo", "mem_required": 128.0, "max_tries": 3, **fields,
            "interface": interface}


JOB_TYPES = [
    demo_type("demo-word-count", "Word count",
              "Counts the lines, words and characters of a text file.",
              "word_count.py", "${text} ${job_output_dir}", priority=100, cpus_required=0.5,
              timeout=60,
              inputs=[{"name": "text", "type": "file",
                       "media_types": ["text/plain", "text/x-python"]}],
              outputs=[{"name": "counts", "type": "file", "media_type": "application/json"}]),
    demo_type("demo-sha256", "SHA-256 checksum", "Computes the SHA-256 checksum of a file.",
              "checksum.py", "${file} ${job_output_dir}", priority=50, cpus_required=0.25,
              timeout=60, inputs=[{"name": "file", "type": "file"}],
              outputs=[{"name": "checksum", "type": "file", "media_type": "text/plain"}]),
    demo_type("demo-flaky-sleep", "Flaky sleeper",
              "Works for a few seconds and fails one time in four.",
              "flaky_sleep.py", "${seconds}", priority=200, cpus_required=1.0, timeout=30,
              error_mapping={"version": "1.0", "exit_codes": {"3": "demo-flaky"}},
              inputs=[{"name": "seconds", "type": "property"}]),
]


class Demo:
    def __init__(self, store: Store, engine: Engine | None, data_dir: str | os.PathLike[str]):
        self.store = store
        self.engine = engine
        self.data_dir = Path(data_dir).resolve()
        self.job_types: dict[str, dict] = {}
        self.workspace: dict | None = None
        self.task: asyncio.Task | None = None
        self.submitted = 0

    async def start(self) -> None:
        await self.setup()
        self.task = asyncio.create_task(self._loop(), name="jobdeck-demo")
        log.info("demo: submitting jobs of %s", ", ".join(self.job_types))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def setup(self) -> None:
        """The workspace, the `demo-flaky` error and the job types (created once, kept current)."""
        files = self.store.files
        self.workspace = next((w for w in await files.list_workspaces()
                               if w["name"] == WORKSPACE), None)
        if self.workspace is None:
            base = self.data_dir / "workspaces" / WORKSPACE
            base.mkdir(parents=True, exist_ok=True)
            self.workspace = await files.create_workspace(WORKSPACE, "Demo", str(base),
                                                          "Inputs and products of demo jobs")
        if await self.store.errors.by_name("demo-flaky") is None:
            await self.store.errors.create("demo-flaky", "Demo flaky step",
                                           "The demo sleeper's flaky step failed.", "ALGORITHM")
        names = await self.store.errors.names()
        for spec in JOB_TYPES:
            fields = {k: v for k, v in spec.items() if k not in ("name", "version", "interface")}
            if "error_mapping" in fields:
                fields["error_mapping"] = validate_error_mapping(fields["error_mapping"], names)
            interface = validate_interface(spec["interface"])
            existing = None
            for type_id in await self.store.job_types.ids_matching([spec["name"]]):
                job_type = await self.store.job_types.get(type_id)
                if job_type is not None and job_type["version"] == spec["version"]:
                    existing = job_type
            if existing is None:
                job_type = await self.store.job_types.create(spec["name"], spec["version"],
                                                             interface, fields)
            else:
                job_type = await self.store.job_types.update(existing, {}, interface)
            self.job_types[spec["name"]] = job_type

    def _workspace(self) -> dict:
        if self.workspace is None:
            raise RuntimeError("the demo has no workspace yet: setup() makes it")
        return self.workspace

    async def _loop(self) -> None:
        kinds = itertools.cycle(["demo-word-count", "demo-sha256", "demo-flaky-sleep"])
        while True:
            try:
                waiting = await self.store.jobs.count_queued(
                    t["id"] for t in self.job_types.values())
                if waiting < MAX_WAITING:
                    await self.submit(next(kinds))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("demo: submitting a job failed")
            await asyncio.sleep(INTERVAL)

    async def upload_source_file(self) -> dict:
        """One of the project's own Python files, uploaded into the demo workspace."""
        sources = sorted(p for p in ROOT.glob("*/*.py")
                         if ".venv" not in p.parts and p.stat().st_size > 0)
        source = random.choice(sources)
        relative = Path("uploads") / uuid.uuid4().hex / source.name
        workspace = self._workspace()
        target = Path(workspace["base_path"]) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return await self.store.files.create_file(
            workspace["id"], source.name, "text/x-python", target.stat().st_size,
            str(relative))

    async def submit(self, name: str) -> JobDoc:
        job_type = self.job_types[name]
        interface = job_type["interface"]
        files = {}
        outputs = [{"name": o["name"], "workspace_id": self._workspace()["id"]}
                   for o in interface["output_data"]]
        if name == "demo-flaky-sleep":
            inputs = [{"name": "seconds", "value": f"{random.uniform(2, 8):.1f}"}]
        else:
            upload = await self.upload_source_file()
            files[upload["id"]] = upload
            inputs = [{"name": interface["input_data"][0]["name"], "file_id": upload["id"]}]
        data = validate_job_data(interface, {"version": "1.0", "input_data": inputs,
                                             "output_data": outputs}, files)
        disk_in = math.ceil(sum(f["file_size"] for f in files.values()) / (1024 * 1024))
        event = await self.store.jobs.create_event("USER", {"user": "demo",
                                                            "submitted": now_ms()})
        job, _ = await self.store.jobs.submit_job(
            job_type, data, event, interface["command_arguments"], input_file_ids=files.keys(),
            disk_in_mb=disk_in)
        self.submitted += 1
        if self.engine is not None:
            self.engine.wake()
        return job
