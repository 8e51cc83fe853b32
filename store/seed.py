"""Fast bulk seeding of realistic jobs for benchmarks and demos.

Documents come from `JobStore.new_job_doc` and are then moved to the state the transition
functions would have left them in, so they have exactly the store's shape; they are written with
`insert_many` in batches (ids reserved per batch with `next_ids`), which is orders of magnitude
faster than going through one transition call per job. A `bulk` seeding (into a store nothing
else uses yet, as the benchmarks' fresh ones) also writes without waiting for the journal
(nx-27017 syncs its SQLite file once per document otherwise) and drops the indexes of the three
collections it fills, rebuilding them once at the end: 2.3x the rate at 30,000 jobs. Either
way it ends with one queue sample, which records the seeded jobs' finished minutes as a running
server would have.

Run `python -m store.seed --mongo-url URL N` to seed a database and print the rate.
"""

import argparse
import asyncio
import random
import time

from pymongo import WriteConcern

from core.interface import validate_interface
from core.model import FINAL_JOB_STATUSES, ExeStatus, JobStatus
from core.settings import DEFAULTS
from core.times import now_ms
from store.job_types import JobTypeExists
from store.jobs import run_on
from store.reads import find_all

WEEK_MS = 7 * 24 * 3600 * 1000

# (name, version, category, title, priority, timeout) of the seeded job types.
SEED_JOB_TYPES = (
    ("ingest-file", "1.0", "ingest", "Ingest File", 10, 600),
    ("convert-image", "2.1", "processing", "Convert Image", 100, 1800),
    ("detect-objects", "1.3", "processing", "Detect Objects", 150, 3600),
    ("classify-scene", "0.9", "analysis", "Classify Scene", 200, 3600),
    ("build-report", "1.0", "export", "Build Report", 250, 900),
    ("archive-products", "3.0", "export", "Archive Products", 300, 7200),
)
SEED_INTERFACE = {
    "command": "run.sh",
    "command_arguments": "--mode ${mode} ${job_output_dir}",
    "input_data": [{"name": "mode", "type": "property"}],
}
# Share of each final state, as seen on a busy Scale cluster: most jobs long finished.
STATUS_WEIGHTS = {JobStatus.COMPLETED: 62, JobStatus.FAILED: 8, JobStatus.CANCELED: 4,
                  JobStatus.RUNNING: 5, JobStatus.QUEUED: 10, JobStatus.PENDING: 8,
                  JobStatus.BLOCKED: 3}
JOB_TYPE_WEIGHTS = (30, 25, 20, 12, 8, 5)
EVENT_TYPES = ("USER", "PARSE", "INGEST")
MODES = ("fast", "full", "verify")
# Errors a failed execution records: SYSTEM ones are retried by Scale, the others are not.
RETRIED_ERRORS = ("node-lost", "task-launch", "docker-task-launch")
FINAL_ERRORS = ("timeout", "algorithm-unknown")
SEEDED_COLLECTIONS = ("jobs", "job_exes", "trigger_events")
UNJOURNALED = WriteConcern(w=1, j=False)


async def seed_job_types(store) -> list[dict]:
    """Create the seeded job types, reusing any that a previous seeding created."""
    interface = validate_interface(SEED_INTERFACE)
    job_types = []
    for name, version, category, title, priority, timeout in SEED_JOB_TYPES:
        try:
            job_type = await store.job_types.create(
                name, version, interface,
                {"category": category, "title": title, "priority": priority,
                 "timeout": timeout, "description": f"{title} (seeded)"})
        except JobTypeExists:
            job_type = await store.db["job_types"].find_one({"name": name, "version": version})
        job_types.append(job_type)
    return job_types


class _Batch:
    """Builds the jobs of one batch and collects the executions they imply in `exes`."""

    def __init__(self, store, rng: random.Random, errors: dict, now: int):
        self.store = store
        self.rng = rng
        self.errors = errors
        self.now = now
        self.exes: list[dict] = []

    def job(self, job_id: int, event: dict, job_type: dict, status: JobStatus) -> dict:
        rng = self.rng
        created = event["occurred"]
        data = {"version": "1.0", "input_data": [{"name": "mode", "value": rng.choice(MODES)}],
                "output_data": []}
        job = self.store.jobs.new_job_doc(job_id, job_type, data, event, created,
                                          disk_in_mb=float(rng.randint(0, 2048)))
        if status in (JobStatus.PENDING, JobStatus.BLOCKED):
            if status == JobStatus.BLOCKED:
                self._set_status(job, JobStatus.BLOCKED, created + rng.randint(10, 5000))
            return job
        if status == JobStatus.CANCELED and rng.random() < 0.4:
            self._set_status(job, JobStatus.CANCELED, created + rng.randint(1000, 600_000),
                             ended=True)
            return job
        self._run(job, status)
        return job

    def _set_status(self, job: dict, status: JobStatus, when: int, ended: bool = False) -> None:
        when = min(when, self.now)
        job.update(status=status, last_status_change=when, last_modified=when)
        if ended:
            job["ended"] = when

    def _run(self, job: dict, status: JobStatus) -> None:
        """Give the job the executions its status implies; retries precede the last one."""
        rng = self.rng
        tries = 1
        if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RUNNING) and \
                rng.random() < 0.1:
            tries = rng.randint(2, job["max_tries"])
        clock = job["created"]
        for attempt in range(1, tries + 1):
            last = attempt == tries
            queued = clock + rng.randint(50, 30_000)
            exe_status = ExeStatus(status) if last else ExeStatus.FAILED
            if last and status == JobStatus.CANCELED:
                exe_status = rng.choice((ExeStatus.QUEUED, ExeStatus.RUNNING))
            exe = self._exe(job, queued, exe_status, retried=not last)
            clock = exe["ended"] or exe["started"] or queued
            # The execution's id is reserved once the whole batch is built; see seed_jobs.
            job.update(num_exes=attempt, queued=exe["queued"], started=exe["started"], ended=None,
                       latest_exe_id=exe)
        error_id = self.exes[-1]["error_id"]
        if status == JobStatus.CANCELED:
            clock += rng.randint(1000, 60_000)
            self._finish_exe(self.exes[-1], ExeStatus.CANCELED, min(clock, self.now), None)
        job.update(status=status, error_id=error_id if status == JobStatus.FAILED else None)
        if status == JobStatus.COMPLETED:
            job["results"] = {"version": "1.0", "output_data": []}
        when = min(clock, self.now)
        job.update(last_status_change=when, last_modified=when)
        if status in FINAL_JOB_STATUSES:
            job["ended"] = when

    def _exe(self, job: dict, queued: int, status: ExeStatus, retried: bool) -> dict:
        rng = self.rng
        exe = self.store.jobs._new_exe(0, job, min(queued, self.now),
                                       f"--mode {job['data']['input_data'][0]['value']} /out")
        self.exes.append(exe)
        if status == ExeStatus.QUEUED:
            return exe
        started = min(exe["queued"] + rng.randint(100, 120_000), self.now)
        exe.update(status=ExeStatus.RUNNING, started=started, last_modified=started, node_id=None,
                   pre_started=started, cpus_scheduled=job["cpus_required"],
                   mem_scheduled=job["mem_required"],
                   disk_in_scheduled=job["disk_in_required"],
                   disk_out_scheduled=job["disk_out_required"],
                   disk_total_scheduled=job["disk_in_required"] + job["disk_out_required"])
        pre_done = min(started + rng.randint(500, 20_000), self.now)
        exe.update(pre_completed=pre_done, pre_exit_code=0, job_started=pre_done,
                   last_modified=pre_done)
        if status == ExeStatus.RUNNING:
            return exe
        ended = min(pre_done + rng.randint(1000, job["timeout"] * 1000), self.now)
        if status == ExeStatus.COMPLETED:
            exe.update(job_completed=ended, job_exit_code=0, post_started=ended,
                       post_completed=ended, post_exit_code=0)
            self._finish_exe(exe, ExeStatus.COMPLETED, ended, None,
                             results={"version": "1.0", "output_data": []})
        else:
            names = RETRIED_ERRORS if retried else FINAL_ERRORS + RETRIED_ERRORS[:1]
            exe.update(job_completed=ended, job_exit_code=rng.choice((1, 2, 137)))
            self._finish_exe(exe, ExeStatus.FAILED, ended, self.errors[rng.choice(names)])
        return exe

    def link(self, jobs: list[dict], exe_ids) -> None:
        """Give the executions their reserved ids and the jobs their latest execution's."""
        for exe, exe_id in zip(self.exes, exe_ids, strict=True):
            exe["id"] = exe_id
            exe["_id"] = exe_id
        for job in jobs:
            exe = job["latest_exe_id"]
            if exe is not None:
                job["latest_exe_id"] = exe["id"]
                if job["status"] == JobStatus.RUNNING:
                    job["run_on"] = run_on(exe["node_id"], exe)
            # Inserted already counted (store/counts.py): add_counted marks them.
            job.pop("fold_gen", None)

    @staticmethod
    def _finish_exe(exe: dict, status: ExeStatus, when: int, error_id, results=None) -> None:
        exe.update(status=status, ended=when, last_modified=when, error_id=error_id)
        if results is not None:
            exe["results"] = results


async def seeded_collections(store, bulk: bool) -> dict:
    """The collections seeding writes to; for a `bulk` one unjournaled and without indexes."""
    collections = {name: store.db[name] for name in SEEDED_COLLECTIONS}
    if bulk:
        for name in SEEDED_COLLECTIONS:
            collections[name] = collections[name].with_options(write_concern=UNJOURNALED)
            await collections[name].drop_indexes()
    return collections


async def seed_jobs(store, n: int, batch: int = 5000, rng_seed: int = 27017,
                    progress=print, bulk: bool = False) -> dict:
    """Insert `n` jobs spread over the last 7 days, with executions for those that ran.

    Returns counts and the rate; `progress` (print by default, None for silence) gets one line
    per batch and a summary. `bulk`: see the module docstring; only for a store no server or
    engine uses meanwhile, since its lookups go unindexed until the end.
    """
    rng = random.Random(rng_seed)
    job_types = await seed_job_types(store)
    errors = {doc["name"]: doc["id"]
              for doc in await find_all(store.db["errors"], {}, projection={"name": 1, "id": 1})}
    statuses, status_weights = zip(*STATUS_WEIGHTS.items(), strict=True)
    started = time.perf_counter()
    now = now_ms()
    collections = await seeded_collections(store, bulk)
    totals = {"jobs": 0, "job_exes": 0, "trigger_events": 0}
    while totals["jobs"] < n:
        size = min(batch, n - totals["jobs"])
        builder = _Batch(store, rng, errors, now)
        job_ids = await store.db.next_ids("jobs", size)
        # One trigger event per job, as POST /queue/new-job/ and Scale's parse/ingest rules make.
        event_ids = await store.db.next_ids("trigger_events", size)
        events = []
        jobs = []
        for job_id, event_id in zip(job_ids, event_ids, strict=True):
            event_type = rng.choice(EVENT_TYPES)
            events.append({"_id": event_id, "id": event_id, "type": event_type, "rule_id": None,
                           "occurred": now - rng.randint(0, WEEK_MS),
                           "description": {"user": "Anonymous"} if event_type == "USER"
                           else {"seeded": True}})
            job_type = rng.choices(job_types, JOB_TYPE_WEIGHTS)[0]
            status = rng.choices(statuses, status_weights)[0]
            jobs.append(builder.job(job_id, events[-1], job_type, status))
        exe_ids = await store.db.next_ids("job_exes", len(builder.exes)) if builder.exes else []
        builder.link(jobs, exe_ids)
        await store.counts.add_counted(jobs)
        await collections["trigger_events"].insert_many(events, ordered=False)
        if builder.exes:
            await collections["job_exes"].insert_many(builder.exes, ordered=False)
        await collections["jobs"].insert_many(jobs, ordered=False)
        totals["jobs"] += size
        totals["job_exes"] += len(builder.exes)
        totals["trigger_events"] += size
        if progress:
            elapsed = time.perf_counter() - started
            progress(f"seeded {totals['jobs']:,}/{n:,} jobs ({totals['jobs'] / elapsed:,.0f}/s)")
    if bulk:
        await rebuild_indexes(store)
    # The finished jobs per minute a server's sampler would have recorded over those 7 days
    # (store/samples.py): without them each 7-day chart counts every seeded job again.
    await store.samples.take()
    elapsed = time.perf_counter() - started
    summary = {**totals, "seconds": round(elapsed, 2),
               "jobs_per_second": round(totals["jobs"] / elapsed) if elapsed else None}
    if progress:
        progress(f"seeded {totals['jobs']:,} jobs, {totals['job_exes']:,} executions and "
                 f"{totals['trigger_events']:,} events in {elapsed:.1f}s "
                 f"({summary['jobs_per_second']:,} jobs/s)")
    return summary


async def rebuild_indexes(store) -> None:
    """Create the seeded collections' indexes again, each in one pass over its documents."""
    for name in SEEDED_COLLECTIONS:
        await store.db.create_indexes(name)


async def _main(argv=None) -> None:
    from store import Store

    parser = argparse.ArgumentParser(description="Seed N realistic jobs into a Jobdeck store")
    parser.add_argument("count", type=int)
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--db-name", default=DEFAULTS.db_name)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--bulk", action="store_true",
                        help="a store nothing else uses: unjournaled, indexes built at the end")
    args = parser.parse_args(argv)
    store = await Store(args.mongo_url, args.db_name).open()
    try:
        await seed_jobs(store, args.count, args.batch, bulk=args.bulk)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_main())
