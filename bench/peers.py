"""The engine benchmark's peers: the same trivial jobs (`true`) through Celery and RQ, each on a
private Debian `redis-server` this module starts and stops (a Unix socket in a temporary folder,
no TCP port, nothing saved to disk).

Each job is submitted with one call (Celery's `delay`, RQ's `enqueue`) once the workers are up;
the time runs from the first submission to the last completion. Celery: one prefork worker with
`parallel` processes, Redis broker and result backend. RQ: `parallel` workers, each forking a
work horse per job (RQ's model).
"""

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TASK_NAME = "jobdeck_bench_true"
READY_TIMEOUT = 60.0
POLL = 0.01


def run_true() -> None:
    """The job: spawn `true` and wait for it, as the Jobdeck engine does."""
    subprocess.run([shutil.which("true") or "/bin/true"], check=True)


@contextlib.contextmanager
def redis_server() -> Iterator[Path]:
    """A private redis-server for one peer; yields its socket. It and its folder go at the end."""
    program = shutil.which("redis-server")
    if program is None:
        raise RuntimeError("redis-server is missing (Debian: apt-get install redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="jobdeck-peer-redis-"))
    socket = folder / "redis.sock"
    proc = subprocess.Popen([program, "--port", "0", "--unixsocket", str(socket),
                             "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: socket.exists() or proc.poll() is not None, "redis-server to listen")
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        yield socket
    finally:
        stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker(call: str) -> subprocess.Popen:
    """A peer's worker process running `call` (a call of a function here), started from this
    checkout so that bench.peers imports."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-c", f"import bench.peers; bench.peers.{call}"],
                            cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- Celery ----------------------------------------------------------------------------------

def celery_app(socket: Path):
    from celery import Celery

    url = f"redis+socket://{socket}"
    app = Celery("jobdeck_bench", broker=url, backend=url)
    app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
    app.task(name=TASK_NAME)(run_true)
    return app


def celery_worker(socket: str, parallel: int) -> None:
    """The worker process's entry point (see `worker`)."""
    celery_app(Path(socket)).worker_main([
        "worker", "--pool=prefork", f"--concurrency={parallel}", "--loglevel=WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat"])


def celery_seconds(count: int, parallel: int) -> float:
    with redis_server() as socket:
        app = celery_app(socket)
        proc = worker(f"celery_worker({str(socket)!r}, {parallel})")
        try:
            task = app.tasks[TASK_NAME]
            task.delay().get(timeout=READY_TIMEOUT)  # the worker is up and has run one
            started = time.perf_counter()
            results = [task.delay() for _ in range(count)]
            for result in results:
                result.get(timeout=READY_TIMEOUT)
            return time.perf_counter() - started
        finally:
            stop(proc)


# -- RQ --------------------------------------------------------------------------------------

def rq_worker(socket: str, name: str) -> None:
    """One RQ worker process's entry point (see `worker`)."""
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis(unix_socket_path=socket)
    Worker([Queue("bench", connection=connection)], connection=connection,
           name=name).work(logging_level="WARNING")


def rq_seconds(count: int, parallel: int) -> float:
    from redis import Redis
    from rq import Queue, Worker
    from rq.registry import FinishedJobRegistry

    with redis_server() as socket:
        connection = Redis(unix_socket_path=str(socket))
        queue = Queue("bench", connection=connection)
        procs = [worker(f"rq_worker({str(socket)!r}, 'bench-{n}')") for n in range(parallel)]
        try:
            wait_for(lambda: Worker.count(connection=connection) >= parallel, "the RQ workers")
            finished = FinishedJobRegistry(queue=queue)
            started = time.perf_counter()
            for _ in range(count):
                queue.enqueue(run_true)
            wait_for(lambda: finished.count >= count, f"{count} RQ jobs")
            return time.perf_counter() - started
        finally:
            stop(*procs)
            connection.close()
