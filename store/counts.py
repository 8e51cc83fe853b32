"""Job counts by job type and status, kept as the transitions happen: no read scans the jobs.

**Design: the transition write is the log, folds are idempotent batches.**

- Every write that creates a job or changes its status (store/jobs.py: submit, create, queue,
  run, complete, fail, cancel, requeue; node-lost recovery goes through fail) also does, in that
  same atomic document write, `$inc: {tv: 1}` (the job's transition version) and
  `$set: {fold_gen: NOT_COUNTED}` (an indexed mark). No extra store operation on the
  transition path, and nothing is lost if the process dies right after it: the job itself says
  it is not counted.
- A job also carries `ctv` and `cst`: the version and the status the counters include it at
  (absent: not counted yet), `cg`: the counters' `gen` at which the fold that counted it
  committed, and `pcst`/`pcg`: the same two for the fold before. A counted job keeps `fold_gen`
  = `cg` (not removed): so a read can find the jobs folded after it read the counters. The counters are one document in `job_counts`,
  `{_id: "jobs", "n:<job type id>:<status>": n, ..., gen, batch}` (top-level fields: nx-27017
  may write a dotted `$inc` path as a literal field name).
- A **fold** moves uncounted jobs into the counters, exactly once, in four operations whatever
  the batch size: (1) read the counters document (its `gen`, with no batch in flight); (2) read
  up to FOLD_LIMIT uncounted jobs; (3) one conditional update of the counters document (`gen`
  unchanged and no batch) that applies the summed deltas (`cst` -1, `status` +1 per job), bumps
  `gen` and records the batch (each job's id, old `ctv`, new version and status); (4) one
  `bulk_write` setting each job's `ctv`/`cst`/`cg` (and `pcst`/`pcg`) where `ctv` is still the
  old one (and `fold_gen` = `cg` where no newer transition came since), then the batch is
  removed (`gen` bumped again). Step 3 is the commit point: the counters and the batch change in one document write.
  Whoever finds a batch recorded (a process that died after step 3, or one slow to finish) can
  finish it: step 4 is idempotent (conditioned on the old `ctv`, which only grows), and the
  removal is conditioned on the batch's token. Because step 3 requires `gen` unchanged since
  step 1, and `gen` moves when a batch starts and when it ends, a fold never applies a job
  state read before another fold finished: two processes can fold at once, one wins, the
  other retries.
- A **read** (`current`) is two operations, exact at every instant: the counters document (its
  `gen` G), then the jobs with `fold_gen` > G: those not yet counted (NOT_COUNTED) and those
  a fold committed after G counted (a fold that lands between the two reads; before, a read missed the
  jobs such a fold had already marked counted, and a list total came out one short under two
  processes). In memory, each of these jobs moves from the status the counters document as read
  includes it at (`pcst` if its last fold committed after G, the recorded batch's status if it
  is in that batch, else `cst`) to its status now. A job folded twice since G (`pcg` > G too)
  makes the read start again. A read that finds more than FOLD_LIMIT such jobs folds first.
- Folding runs in the background (every FOLD_INTERVAL seconds, one operation when there is
  nothing to fold), started by server.py at start-up or else by the first read: that is the
  repair pass for a process that died before or during a fold. A store whose jobs predate
  counting is marked uncounted once, when the counters document is first created.
- Who reads them: the overview's counts by status, GET /queue/status/ (and the queue pages),
  and the total of GET /jobs/ when it filters on status and job type only (`JobStore.kept_count`).
- Jobs must be written through store/jobs.py (or carry `tv`/`fold_gen` as `new_job_doc` makes
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
COUNTED_FIELDS = ("tv", "ctv", "cst", "cg", "pcst", "pcg", "fold_gen")
# `fold_gen` of a job the counters do not include at its version yet: above any `gen`, so one
# indexed range (`fold_gen` > G) finds these and the jobs folded after gen G. (A job counted at
# its version has `fold_gen` = the `gen` its fold committed at.)
NOT_COUNTED = 2**53
# `$eq`, not a bare value: nx-27017 (neosqlite) turns a bare value into "equals, or an array
# containing it", which no index serves; `$eq` is plain SQL equality on the index.
UNCOUNTED = {"fold_gen": {"$eq": NOT_COUNTED}}
UNCOUNTED_PROJECTION = {"_id": 1, "job_type_id": 1, "status": 1, "tv": 1, "ctv": 1, "cst": 1,
                        "cg": 1, "pcst": 1, "pcg": 1}


class ReadAgain(Exception):
    """A job was folded twice between a read's two operations: the read starts again."""


def uncounted(update: dict) -> dict:
    """`update` (a `$set`/`$inc` update of a job's status) with the counting marks added."""
    return {**update, "$set": {**update.get("$set", {}), "fold_gen": NOT_COUNTED},
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
        uncounted first (once per store), so the folds count them. Marks of the earlier
        `uncounted: true` form become `fold_gen` NOT_COUNTED."""
        if self._ready:
            return
        await self.jobs.update_many(
            {"uncounted": {"$eq": True}},
            {"$set": {"fold_gen": NOT_COUNTED}, "$unset": {"uncounted": ""}})
        if await self.counters.find_one({"_id": COUNTS_ID}, {"_id": 1}) is None:
            await self.jobs.update_many({"tv": {"$exists": False}},
                                        {"$set": {"tv": 1, "fold_gen": NOT_COUNTED}})
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
            doc = await self.read_counters()
            if doc is None:
                raise RuntimeError("job counts: the counters document is missing")
            since = {"fold_gen": {"$gt": doc.get("gen", 0)}}
            changed = await find_page(self.jobs, since,
                                      projection=UNCOUNTED_PROJECTION, limit=FOLD_LIMIT + 1)
            if len(changed) > FOLD_LIMIT:
                await self.fold_all()
                continue
            with contextlib.suppress(ReadAgain):
                return self._combine(doc, changed)
        raise RuntimeError("job counts: no consistent read after several tries")

    async def read_counters(self) -> dict | None:
        """The counters document (a read's first operation)."""
        return await self.counters.find_one({"_id": COUNTS_ID})

    @staticmethod
    def _combine(doc: dict, changed: list[dict]) -> dict[int, dict[str, int]]:
        """The counters of `doc` moved on by `changed`: the jobs with `fold_gen` above its
        `gen`, each from the status `doc` includes it at to its status now."""
        table: dict[int, dict[str, int]] = {}
        for key, n in doc.items():
            if key.startswith("n:"):
                _, type_id, status = key.split(":", 2)
                _add(table, type_id, status, n)
        gen = doc.get("gen", 0)
        in_batch = {entry[0]: entry for entry in ((doc.get("batch") or {}).get("jobs") or [])}
        for job in changed:
            entry = in_batch.get(job["_id"])
            if job.get("cg", 0) > gen:  # counted by a fold that committed after `doc`
                if job.get("pcg", 0) > gen:
                    raise ReadAgain
                counted = job.get("pcst")
            else:
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
                entries.append([job["_id"], job.get("ctv"), job.get("tv"), new, old,
                                job.get("cg", 0)])
            gen = doc.get("gen", 0) + 1
            batch = {"tok": uuid.uuid4().hex, "at": now_ms(), "gen": gen, "jobs": entries}
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
        await self._mark(batch)
        await self.counters.update_one({"_id": COUNTS_ID, "batch.tok": batch["tok"]},
                                       {"$set": {"batch": None}, "$inc": {"gen": 1}})

    async def _mark(self, batch: dict) -> None:
        """Each job of `batch` counted at the batch's version and `gen` (once: the writes are
        conditioned on the job's counted version before the batch)."""
        ops = []
        gen = batch["gen"]
        for job_id, old, version, status, old_status, old_gen in batch["jobs"]:
            counted = {"ctv": version, "cst": status, "cg": gen, "pcst": old_status,
                       "pcg": old_gen}
            ops.append(UpdateOne({"_id": job_id, "ctv": old, "tv": version},
                                 {"$set": {**counted, "fold_gen": gen}}))
            ops.append(UpdateOne({"_id": job_id, "ctv": old}, {"$set": counted}))
        if ops:
            await self.jobs.bulk_write(ops, ordered=True)

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

