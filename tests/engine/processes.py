"""A job's processes and gates, seen from outside its sandbox (engine/sandbox.py).

A sandboxed job sees only its own execution folder, so a test talks to it there: a gate is a file
the test makes in that folder (`exe_folder(...) / "gate"`, the job waits for `./gate`), and its
processes are found by the folder their environment names (JOBDECK_WORK_DIR), not by a pid the
job writes (the job's pids are its own PID namespace's)."""

import asyncio
import contextlib
from pathlib import Path

import psutil

from tests.waiting import wait_for


def job_processes(work_dir: str | Path) -> list[psutil.Process]:
    """The live processes of one execution (bwrap's included), by their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("JOBDECK_WORK_DIR") == str(work_dir) and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


async def running_exe(store, job_id: int, *programs: str) -> tuple[dict, list[psutil.Process]]:
    """Once the job's latest execution runs each of `programs`: that execution and its
    processes."""
    async def check():
        job = await store.jobs.get_job(job_id)
        exe = job["latest_exe_id"] and await store.jobs.get_exe(job["latest_exe_id"])
        if not exe or not exe.get("work_dir"):
            return None
        procs = job_processes(exe["work_dir"])
        names = set()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                names.add(proc.name())
        return set(programs) <= names and (exe, procs)
    return await wait_for(check, f"job {job_id} to run {', '.join(programs)}")


def all_gone(procs: list[psutil.Process]) -> bool:
    """Each process is dead (reaped, or a zombie a parent will reap)."""
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


class Gate:
    """A gate for gated jobs (`while [ ! -e {gate} ]; ...`: `{gate}` reads `gate`, a file in the
    job's own folder, which its sandbox shows). `touch()` opens it, as Path.touch did for a gate
    file in tmp_path: every execution folder gets its `gate`, now and until the test ends, so a
    gated job that starts later passes too; `touch(but=[exe ids])` leaves those closed (e.g. the
    first try of a job whose retry is to pass)."""

    def __init__(self, data_dir: Path):
        self.executions = Path(data_dir) / "executions"
        self.closed: set[str] = set()
        self._task: asyncio.Task | None = None

    def __str__(self) -> str:
        return "gate"

    def _open_all(self) -> None:
        for folder in self.executions.glob("*"):
            if folder.name in self.closed:
                continue
            with contextlib.suppress(OSError):
                (folder / "gate").touch()

    async def _keep_open(self) -> None:
        while True:
            self._open_all()
            await asyncio.sleep(0.02)

    def touch(self, but=()) -> None:
        self.closed = {str(exe_id) for exe_id in but}
        self._open_all()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_open())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
