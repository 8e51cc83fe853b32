"""Job counts by job type and status, kept as the transitions happen: no read scans the jobs.

**Design: the transition write is the log, folds are idempotent batches.**

- Every write that creates a job or changes its status (store/jobs.py: submit, create, queue,
  run, complete, fail, cancel, requeue; node-lost recovery goes through fail) also does, in that
  same atomic document write, `$inc: {tv: 1}` (the job's transition version) and
  `$set: {uncounted: true}` (an indexed flag). No extra store operation on the transition path,
  and nothing is lost if the process dies right after it: the job itself says it is not counted.
- A job also carries `ctv` and `cst`: the version and the status the counters include it at
  (absent: not counted yet). The counters are one document in `job_counts`,
  `{_id: "jobs", "n:<job type id>:<status>": n, ..., gen, batch}` (top-level fields: nx-27017
  may write a dotted `$inc` path as a literal field name).
- A **fold** moves uncounted jobs into the counters, exactly once, in four operations whatever
  the batch size: (1) read the counters document (its `gen`, with no batch in flight); (2) read
  up to FOLD_LIMIT uncounted jobs; (3) one conditional update of the counters document (`gen`
  unchanged and no batch) that applies the summed deltas (`cst` -1, `status` +1 per job), bumps
  `gen` and records the batch (each job's id, old `ctv`, new version and status); (4) one
  `bulk_write` setting each job's `ctv`/`cst` where `ctv` is still the old one (and clearing
  `uncounted` where no newer transition came since), then the batch is removed (`gen` bumped
  again). Step 3 is the commit point: the counters and the batch change in one document write.
  Whoever finds a batch recorded (a process that died after step 3, or one slow to finish) can
  finish it: step 4 is idempotent (conditioned on the old `ctv`, which only grows), and the
  removal is conditioned on the batch's token. Because step 3 requires `gen` unchanged since
  step 1, and `gen` moves when a batch starts and when it ends, a fold never applies a job
  state read before another fold finished: two processes can fold at once, one wins, the
  other retries.
- A **read** (`current`) is the counters document plus, in memory, the deltas of the jobs still
  uncounted (jobs in a recorded batch count at the batch's version): two operations, exact at
  rest, and exact under load unless a whole fold of another process lands between its two
  reads. A read that finds more than FOLD_LIMIT uncounted jobs folds first.
- Folding runs in the background (every FOLD_INTERVAL seconds, one operation when there is
  nothing to fold), started by server.py at start-up or else by the first read: that is the
  repair pass for a process that died before or during a fold. A store whose jobs predate
  counting is marked uncounted once, when the counters document is first created.
- Who reads them: the overview's counts by status, GET /queue/status/ (and the queue pages),
  and the total of GET /jobs/ (and of the dashboard's jobs list) when it filters on
  status and job type only.
- Jobs must be written through store/jobs.py (or carry `tv`/`uncounted` as `new_job_doc` makes
  them; the seeder inserts them counted and adds to the counters itself).

No multi-document transaction is needed (a standalone MongoDB has none), and the transition
path is unchanged in operation count.
"""

import asyncio
import contextlib
import logging
import uuid

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from core.times import now_ms
from store.db import Database
from store.reads import find_page

log = logging.getLogger(__name__)

COUNTS_ID = "jobs"
FOLD_LIMIT = 2000
FOLD_INTERVAL = 1.0
FOLD_RETRIES = 8
# What the transition writes add to their update: the job is one version further and uncounted.
COUNTED_FIELDS = ("tv", "ctv", "cst", "uncounted")
# `$eq`, not a bare value: nx-27017 (neosqlite) turns a bare value into "equals, or an array
# containing it", which no index serves; `$eq` is plain SQL equality on the index.
UNCOUNTED = {"uncounted": {"$eq": True}}
UNCOUNTED_PROJECTION = {"_id": 1, "job_type_id": 1, "status": 1, "tv": 1, "ctv": 1, "cst": 1}


def uncounted(update: dict) -> dict:
    """`update` (a `$set`/`$inc` update of a job's status) with the counting marks added."""
    return {**update, "$set": {**update.get("$set", {}), "uncounted": True},
            "$inc": {**update.get("$inc", {}), "tv": 1}}


def count_key(type_id, status: str) -> str:
    return f"n:{type_id}:{status}"


def _add(table: dict, type_id, status, n: int) -> None:
    if status is None or n == 0:
        return
    row = table.setdefault(int(type_id), {})
    row[status] = row.get(status, 0) + n
    if row[status] == 0:
        del row[status]


class JobCounts:
    def __init__(self, db: Database):
        self.db = db
        self.counters = db["job_counts"]
        self.jobs = db["jobs"]
        self._task: asyncio.Task | None = None
        self._ready = False

    # -- set-up --------------------------------------------------------------------------------

    async def ensure(self) -> None:
        """Create the counters document; jobs written before counting existed are marked
        uncounted first (once per store), so the folds count them."""
        if self._ready:
            return
        if await self.counters.find_one({"_id": COUNTS_ID}, {"_id": 1}) is None:
            await self.jobs.update_many({"tv": {"$exists": False}},
                                        {"$set": {"tv": 1, "uncounted": True}})
            with contextlib.suppress(DuplicateKeyError):
                await self.counters.insert_one({"_id": COUNTS_ID, "gen": 0, "batch": None})
        self._ready = True

    async def add_counted(self, deltas: dict[int, dict[str, int]]) -> None:
        """Add to the counters directly: for the bulk seeder, whose jobs are inserted already
        counted (`ctv` = `tv`); not exact across a crash, as seeding is no transition."""
        await self.ensure()
        inc = {count_key(t, s): n for t, row in deltas.items() for s, n in row.items() if n}
        if inc:
            await self.counters.update_one({"_id": COUNTS_ID}, {"$inc": inc})

    # -- reads ---------------------------------------------------------------------------------

    async def current(self) -> dict[int, dict[str, int]]:
        """{job type id: {status: jobs}} right now (statuses with no jobs left out)."""
        await self.ensure()
        self.keep()
        for _ in range(FOLD_RETRIES):
            doc = await self.counters.find_one({"_id": COUNTS_ID})
            pending = await find_page(self.jobs, UNCOUNTED,
                                      projection=UNCOUNTED_PROJECTION, limit=FOLD_LIMIT + 1)
            if len(pending) <= FOLD_LIMIT:
                return self._combine(doc or {}, pending)
            await self.fold_all()
        raise RuntimeError("job counts: too many uncounted jobs to read")

    @staticmethod
    def _combine(doc: dict, pending: list[dict]) -> dict[int, dict[str, int]]:
        table: dict[int, dict[str, int]] = {}
        for key, n in doc.items():
            if key.startswith("n:"):
                _, type_id, status = key.split(":", 2)
                _add(table, type_id, status, n)
        in_batch = {entry[0]: entry for entry in ((doc.get("batch") or {}).get("jobs") or [])}
        for job in pending:
            entry = in_batch.get(job["_id"])
            counted = entry[3] if entry is not None else job.get("cst")
            if counted != job["status"]:
                _add(table, job["job_type_id"], counted, -1)
                _add(table, job["job_type_id"], job["status"], 1)
        return table

    async def by_status(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in (await self.current()).values():
            for status, n in row.items():
                totals[status] = totals.get(status, 0) + n
        return totals

    async def of_status(self, status: str) -> dict[int, int]:
        """{job type id: jobs in `status`} for the types that have any."""
        return {type_id: row[status] for type_id, row in (await self.current()).items()
                if row.get(status)}

    async def recount(self) -> dict[int, dict[str, int]]:
        """A full recount from the jobs (a scan: for tests and checks, never for a page)."""
        table: dict[int, dict[str, int]] = {}
        async for job in self.jobs.find({}, {"job_type_id": 1, "status": 1}):
            _add(table, job["job_type_id"], job["status"], 1)
        return table

    # -- folding -------------------------------------------------------------------------------

    async def fold(self, limit: int = FOLD_LIMIT) -> int:
        """Move up to `limit` uncounted jobs into the counters; how many were moved."""
        await self.ensure()
        for _ in range(FOLD_RETRIES):
            doc = await self.counters.find_one({"_id": COUNTS_ID}, {"gen": 1, "batch": 1})
            if doc is None:  # a database dropped under us: nothing to fold into
                return 0
            if doc.get("batch"):
                await self._finish(doc["batch"])
                continue
            jobs = await find_page(self.jobs, UNCOUNTED,
                                   projection=UNCOUNTED_PROJECTION, limit=limit)
            if not jobs:
                return 0
            inc: dict[str, int] = {"gen": 1}
            entries = []
            for job in jobs:
                old, new = job.get("cst"), job["status"]
                if old != new:
                    for status, n in ((old, -1), (new, 1)):
                        if status is not None:
                            key = count_key(job["job_type_id"], status)
                            inc[key] = inc.get(key, 0) + n
                entries.append([job["_id"], job.get("ctv"), job.get("tv"), new])
            batch = {"tok": uuid.uuid4().hex, "at": now_ms(), "jobs": entries}
            inc = {k: n for k, n in inc.items() if n}
            result = await self.counters.update_one(
                {"_id": COUNTS_ID, "gen": doc.get("gen", 0), "batch": None},
                {"$inc": inc, "$set": {"batch": batch}})
            if result.matched_count == 0:
                continue  # another fold started or ended meanwhile: read again
            await self._finish(batch)
            return len(jobs)
        return 0

    async def _finish(self, batch: dict) -> None:
        """Step 4: the jobs of a recorded batch are marked counted, then the batch goes."""
        ops = []
        for job_id, old, version, status in batch["jobs"]:
            ops.append(UpdateOne({"_id": job_id, "ctv": old, "tv": version},
                                 {"$set": {"ctv": version, "cst": status},
                                  "$unset": {"uncounted": ""}}))
            ops.append(UpdateOne({"_id": job_id, "ctv": old},
                                 {"$set": {"ctv": version, "cst": status}}))
        if ops:
            await self.jobs.bulk_write(ops, ordered=True)
        await self.counters.update_one({"_id": COUNTS_ID, "batch.tok": batch["tok"]},
                                       {"$set": {"batch": None}, "$inc": {"gen": 1}})

    async def fold_all(self) -> int:
        """Fold until no job is uncounted; how many were moved."""
        total = 0
        while moved := await self.fold():
            total += moved
        return total

    # -- the background fold -------------------------------------------------------------------

    def keep(self) -> None:
        """Start the background fold (once, on this event loop)."""
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):
                self._task = asyncio.get_running_loop().create_task(
                    self._loop(), name="jobdeck-job-counts")

    async def _loop(self) -> None:
        while True:
            # Sleep first: the read that started the loop is not followed by folds of its own.
            await asyncio.sleep(FOLD_INTERVAL)
            try:
                if await self.jobs.find_one(UNCOUNTED, {"_id": 1}) is not None:
                    await self.fold()
            except PyMongoError as exc:
                log.debug("job counts: fold failed (%s); retried", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

