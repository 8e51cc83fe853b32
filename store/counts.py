"""Job counts kept as the transitions happen: by job type and status, by minute of the last
status change (the overview's last hour, the oldest queued) and by node while RUNNING. No read
scans the jobs.

**Design: the transition write is the log, folds are idempotent batches.**

- Every write that creates a job or changes its status (store/jobs.py: submit, create, queue,
  run, complete, fail, cancel, requeue; node-lost recovery goes through fail) also does, in that
  same atomic document write, `$inc: {tv: 1}` (the job's transition version) and
  `$set: {fold_gen: NOT_COUNTED}` (an indexed mark). No extra store operation on the
  transition path, and nothing is lost if the process dies right after it: the job itself says
  it is not counted.
- What a job counts as is its **state** (`state_of`): [status, minute of its last status change,
  [node, cpus, mem] while RUNNING]. A job also carries `ctv` and `cs`: the version and the state
  the counters include it at (absent: not counted yet), `cg`: the counters' `gen` at which the
  fold that counted it committed, and `pcs`/`pcg`: the same two for the fold before. A counted
  job keeps `fold_gen` = `cg` (not removed), so a read can find the jobs folded after it read
  the counters.
- The counters are one document in `job_counts`, `{_id: "jobs", gen, batch, ...}` with one
  top-level field per counter (`add_state`: `n:<type>:<status>`, `m:<type>:<status>:<minute>`,
  `u:<node>:running|cpus|mem`; top-level, as nx-27017 may write a dotted `$inc` path as a
  literal field name), and QUEUED jobs by job type and hour they were queued in
  (`q:<type>:<hour>`). Minute counters older than MINUTES_KEPT_MS and spent ones at zero are
  dropped by the folds: the document stays small, its size bounded by the job types, statuses
  and minutes, not by the jobs.
- A **fold** moves uncounted jobs into the counters, exactly once, in four operations whatever
  the batch size: (1) read the counters document (its `gen`, with no batch in flight); (2) read
  up to FOLD_LIMIT uncounted jobs; (3) one conditional update of the counters document (`gen`
  unchanged and no batch) that applies the summed deltas (old state -1, new state +1 per job),
  bumps `gen` and records the batch (each job's id, old `ctv`, new version and state, old state
  and `cg`); (4) one `bulk_write` setting each job's `ctv`/`cs`/`cg` (and `pcs`/`pcg`) and
  `fold_gen` = `cg` where `ctv` is still the old one and no newer transition came since (one
  update per job), and only if some job missed that, a second setting the same but `fold_gen`
  where `ctv` is still the old one; then the batch is removed (`gen` bumped again). Step 3 is
  the commit point: the counters and the batch change in one document write. Whoever finds a
  batch recorded (a process that died after step 3, or one slow to finish) can finish it: step
  4 is idempotent (conditioned on the old `ctv`, which only grows), and the removal is
  conditioned on the batch's token. Because step 3 requires `gen` unchanged since step 1, and
  `gen` moves when a batch starts and when it ends, a fold never applies a job state read before
  another fold finished: two processes can fold at once, one wins, the other retries.
- A **read** (`read`, `current`) is two operations, exact at every instant: the counters
  document (its `gen` G), then the jobs with `fold_gen` > G: those not yet counted
  (NOT_COUNTED) and those a fold that committed after G counted. (Before, a read missed the
  jobs such a fold, landing between its two operations, had already marked counted: a list
  total came out one short under two processes.) In memory, each of these jobs moves from the
  state the document as read includes it in (`pcs` if its last fold committed after G, the
  recorded batch's state if it is in that batch, else `cs`) to its state now. A job folded
  twice since G (`pcg` > G too) makes the read start again. A read that finds more than
  FOLD_LIMIT such jobs folds first.
- **The counters document is read once and reused** (`counters_doc`): nothing above needs it
  fresh, only read before the jobs are. A read with the document kept is one operation (the
  jobs with `fold_gen` > its G: those changed since, which the background fold keeps few by
  reading the document anew after each fold of its own and whenever a read found jobs another
  process folded since). It is read again at once when a job was folded twice since it, or more
  than FOLD_LIMIT jobs changed. So GET /jobs/updates/ and /jobs/executions/ (a page, the rows'
  files or executions, and this read) keep their budget of three store commands.
- Folding runs in the background (every FOLD_INTERVAL seconds, one operation when there is
  nothing to fold), started by server.py at start-up or else by the first read: that is the
  repair pass for a process that died before or during a fold. A store whose jobs predate
  counting, or whose counters have an earlier FORMAT, is counted afresh once.
- Who reads them: the overview (counts by status, its last hour, queue and node use),
  GET /queue/status/ (and the queue page), and the totals of GET /jobs/, /jobs/updates/ and
  /jobs/executions/ when they filter on status and job type only (store/jobs.py `kept_count`).
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
from pymongo.errors import PyMongoError

from core.model import JobStatus
from core.times import now_ms
from store.db import Database
from store.reads import find_page

log = logging.getLogger(__name__)

COUNTS_ID = "jobs"
FOLD_LIMIT = 2000
FOLD_INTERVAL = 1.0
FOLD_RETRIES = 8
# What the transition writes add to their update: the job is one version further and uncounted.
COUNTED_FIELDS = ("tv", "ctv", "cs", "cg", "pcs", "pcg", "fold_gen")
# The counters' layout; a store counted in another is counted afresh (`ensure`), its jobs'
# counting fields (these, with those of the earlier layouts) removed first.
FORMAT = 2
EARLIER_FIELDS = ("ctv", "cs", "cg", "pcs", "pcg", "cst", "uncounted")
# `fold_gen` of a job the counters do not include at its version yet: above any `gen`, so one
# indexed range (`fold_gen` > G) finds these and the jobs folded after gen G. (A job counted at
# its version has `fold_gen` = the `gen` its fold committed at.)
NOT_COUNTED = 2**53
# `$eq`, not a bare value: nx-27017 (neosqlite) turns a bare value into "equals, or an array
# containing it", which no index serves; `$eq` is plain SQL equality on the index.
UNCOUNTED = {"fold_gen": {"$eq": NOT_COUNTED}}
# What a job is counted as (state_of), and what a fold or a read needs besides.
STATE_PROJECTION = {"job_type_id": 1, "status": 1, "last_status_change": 1, "run_on": 1}
UNCOUNTED_PROJECTION = {"_id": 1, **STATE_PROJECTION, "tv": 1, "ctv": 1, "cs": 1, "cg": 1,
                        "pcs": 1, "pcg": 1}
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# Minute counts go from the counters document once this old (the overview reads the last hour).
MINUTES_KEPT_MS = 2 * HOUR_MS
# Sums of floats (cpus, mem) this close to zero are zero.
ZERO = 1e-9


def kept_since(now: int) -> int:
    """The first minute whose counters a read made at `now` or later has whole: the folds drop
    older ones. A minute later than the folds' cutoff, for a folding process's clock a little
    ahead of this one."""
    cutoff = now - MINUTES_KEPT_MS
    return cutoff - cutoff % MINUTE_MS + MINUTE_MS


class ReadAgain(Exception):
    """A job was folded twice between a read's two operations: the read starts again."""


def uncounted(update: dict) -> dict:
    """`update` (a `$set`/`$inc` update of a job's status) with the counting marks added."""
    return {**update, "$set": {**update.get("$set", {}), "fold_gen": NOT_COUNTED},
            "$inc": {**update.get("$inc", {}), "tv": 1}}


def state_of(job: dict) -> list:
    """What the counters count a job as: [status, the minute of its last status change,
    [node id, cpus, mem] while RUNNING (else None)]."""
    changed = job.get("last_status_change")
    run = job.get("run_on") if job["status"] == JobStatus.RUNNING else None
    return [job["status"], None if changed is None else changed - changed % MINUTE_MS, run]


def add_state(out: dict[str, float], type_id, state: list | None, sign: int,
              cutoff: int | None = None) -> None:
    """Add to `out` `sign` times the counters a job of `type_id` in `state` counts in: jobs by
    job type and status (`n:type:status`), by job type, status and minute of the last status
    change (`m:type:status:minute`; none before `cutoff`), QUEUED ones by job type and hour
    (`q:type:hour`, the hour of that change: when it was queued), and by node while RUNNING
    (`u:node:running|cpus|mem`)."""
    if state is None:
        return
    status, minute, run = state
    _inc(out, f"n:{type_id}:{status}", sign)
    if minute is not None and (cutoff is None or minute >= cutoff):
        _inc(out, f"m:{type_id}:{status}:{minute}", sign)
    if minute is not None and status == JobStatus.QUEUED:
        _inc(out, f"q:{type_id}:{minute - minute % HOUR_MS}", sign)
    if run is not None:
        node, cpus, mem = run
        _inc(out, f"u:{node}:running", sign)
        _inc(out, f"u:{node}:cpus", sign * (cpus or 0))
        _inc(out, f"u:{node}:mem", sign * (mem or 0))


def _inc(out: dict[str, float], key: str, n: float) -> None:
    out[key] = out.get(key, 0) + n


COUNTER_KINDS = ("n:", "m:", "q:", "u:")


def _is_count(key: str) -> bool:
    return key[:2] in COUNTER_KINDS


class Kept:
    """One read of the kept counts: {counter key: n} as at one instant (see add_state)."""

    def __init__(self, values: dict[str, float]):
        self.values = values
        self._parsed: dict[str, list[tuple[list[str], float]]] | None = None
        # changed_since's tables by first minute: a read handed out again (JobCounts.read)
        # answers the overview's refreshes within a minute without going over the keys again.
        self._changed_since: dict[int, dict[int, dict[str, int]]] = {}

    def _rows(self, prefix: str) -> list[tuple[list[str], float]]:
        """The non-zero counters of one kind (`prefix`), each as (its key's parts, n). Keys
        are split once per read: with every minute of two hours kept per job type and status,
        the overview's six passes over thousands of keys took 9 ms when each split them."""
        if self._parsed is None:
            self._parsed = {kind: [] for kind in COUNTER_KINDS}
            for key, n in self.values.items():
                if abs(n) > ZERO:
                    self._parsed[key[:2]].append((key[2:].split(":"), n))
        return self._parsed[prefix]

    def by_type(self) -> dict[int, dict[str, int]]:
        """{job type id: {status: jobs}} (statuses with no jobs left out)."""
        table: dict[int, dict[str, int]] = {}
        for (type_id, status), n in self._rows("n:"):
            table.setdefault(int(type_id), {})[status] = int(n)
        return table

    def by_status(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, status), n in self._rows("n:"):
            totals[status] = totals.get(status, 0) + int(n)
        return totals

    def of_status(self, status: str) -> dict[int, int]:
        """{job type id: jobs in `status`} for the types that have any."""
        return {type_id: row[status] for type_id, row in self.by_type().items()
                if row.get(status)}

    def changed_since(self, since: int) -> dict[int, dict[str, int]]:
        """{job type id: {status: jobs}} of the jobs whose last status change is in the minute
        of `since` or later (the same table for any `since` in one minute: not to be changed).
        Exact from `kept_since`."""
        first = since - since % MINUTE_MS
        if first not in self._changed_since:
            self._changed_since[first] = self._changed_from_minute(first)
        return self._changed_since[first]

    def _changed_from_minute(self, first: int) -> dict[int, dict[str, int]]:
        table: dict[int, dict[str, int]] = {}
        for (type_id, status, minute), n in self._rows("m:"):
            if int(minute) >= first:
                row = table.setdefault(int(type_id), {})
                row[status] = row.get(status, 0) + int(n)
        return table

    def per_minute(self, statuses, start: int, end: int) -> dict[str, dict[int, int]]:
        """{status: {minute start: jobs}} of the jobs now in one of `statuses` whose last status
        change is in [start, end) (minute starts), minutes without any left out. Exact for the
        minutes kept (MINUTES_KEPT_MS before the read): `kept_since` says which."""
        table: dict[str, dict[int, int]] = {status: {} for status in statuses}
        for (_, status, minute), n in self._rows("m:"):
            if status in table and start <= int(minute) < end:
                table[status][int(minute)] = table[status].get(int(minute), 0) + int(n)
        return {status: {m: n for m, n in minutes.items() if n}
                for status, minutes in table.items()}

    def oldest_queued(self, now: int) -> dict[int, int]:
        """{job type id: when its longest-queued QUEUED job was queued}: the minute, if that
        is in the minutes kept, else the hour. The minutes are read only for the types whose
        oldest hour is kept whole: the overview's other types (a queue older than two hours)
        cost no pass over the thousands of minute counters (1.4 ms of a 6 ms overview)."""
        oldest: dict[int, int] = {}
        for (type_id, hour), _ in self._rows("q:"):
            oldest[int(type_id)] = min(int(hour), oldest.get(int(type_id), int(hour)))
        refined = now - MINUTES_KEPT_MS + HOUR_MS  # hours whose minutes are all kept
        recent = {type_id: hour for type_id, hour in oldest.items() if hour >= refined}
        minutes: dict[int, int] = {}
        for (type_id, status, minute), _ in self._rows("m:") if recent else ():
            if status != JobStatus.QUEUED:
                continue
            first = recent.get(int(type_id))
            if first is not None and first <= int(minute) < first + HOUR_MS:
                minutes[int(type_id)] = min(int(minute), minutes.get(int(type_id), int(minute)))
        return {**oldest, **minutes}

    def node_use(self) -> dict[int | None, dict]:
        """Per node id (None: not on a node): {running, cpus, mem} of its RUNNING jobs."""
        use: dict[int | None, dict] = {}
        for (node, field), n in self._rows("u:"):
            node_id = None if node == "None" else int(node)
            row = use.setdefault(node_id, {"running": 0, "cpus": 0, "mem": 0})
            row[field] = round(n, 6) if field != "running" else int(n)
        return {node: row for node, row in use.items() if row.get("running")}


class JobCounts:
    def __init__(self, db: Database):
        self.db = db
        self.counters = db["job_counts"]
        self.jobs = db["jobs"]
        self._task: asyncio.Task | None = None
        self._ready = False
        # The counters document as last read, which a read takes instead of reading it again
        # (see the module's docstring); None: read it first. `_behind`: the last read found jobs
        # folded since it, so the background fold reads it anew.
        self.counters_doc: dict | None = None
        self._behind = False
        # The last read that found no job changed since its counters document, and that
        # document: the next such read hands out the same Kept, its keys already parsed.
        self._unchanged: tuple[dict, Kept] | None = None

    # -- set-up --------------------------------------------------------------------------------

    async def ensure(self) -> None:
        """Create the counters document, counting every job afresh (once per store): a store
        whose jobs predate counting, or were counted in an earlier FORMAT of the counters. The
        jobs are marked uncounted first, so a crash in between only makes the next start do it
        again; the folds then count them."""
        if self._ready:
            return
        doc = await self.counters.find_one({"_id": COUNTS_ID}, {"format": 1})
        if doc is None or doc.get("format") != FORMAT:
            await self.jobs.update_many({}, {"$inc": {"tv": 1}, "$set": {"fold_gen": NOT_COUNTED},
                                             "$unset": dict.fromkeys(EARLIER_FIELDS, "")})
            await self.counters.replace_one(
                {"_id": COUNTS_ID}, {"_id": COUNTS_ID, "gen": 0, "batch": None, "format": FORMAT},
                upsert=True)
        self._ready = True

    async def add_counted(self, jobs: list[dict]) -> None:
        """Count `jobs` (each given `ctv` = `tv` and its state) by adding to the counters
        directly: for the bulk seeder, which inserts them so; not exact across a crash, as
        seeding is no transition."""
        await self.ensure()
        totals: dict[str, float] = {}
        cutoff = now_ms() - MINUTES_KEPT_MS
        for job in jobs:
            job["ctv"], job["cs"] = job["tv"], state_of(job)
            add_state(totals, job["job_type_id"], job["cs"], 1, cutoff)
        inc = {key: n for key, n in totals.items() if n}
        if inc:
            await self.counters.update_one({"_id": COUNTS_ID}, {"$inc": inc})

    # -- reads ---------------------------------------------------------------------------------

    async def current(self) -> dict[int, dict[str, int]]:
        """{job type id: {status: jobs}} right now (statuses with no jobs left out)."""
        return (await self.read()).by_type()

    async def read(self) -> Kept:
        """The kept counts at one instant: one store operation while the counters document
        read before serves (`counters_doc`), else two."""
        await self.ensure()
        self.keep()
        for _ in range(FOLD_RETRIES):
            doc, fresh = self.counters_doc, False
            if doc is None:
                doc, fresh = await self.refresh(), True
            if doc is None:
                raise RuntimeError("job counts: the counters document is missing")
            gen = doc.get("gen", 0)
            changed = await find_page(self.jobs, {"fold_gen": {"$gt": gen}},
                                      projection=UNCOUNTED_PROJECTION, limit=FOLD_LIMIT + 1)
            if len(changed) > FOLD_LIMIT:
                if fresh:
                    await self.fold_all()
                self.counters_doc = None
                continue
            if not changed and self._unchanged is not None and self._unchanged[0] is doc:
                self._behind = False
                return self._unchanged[1]
            try:
                kept = self._combine(doc, changed)
            except ReadAgain:
                self.counters_doc = None
                continue
            if not changed:
                self._unchanged = (doc, kept)
            # Jobs folded since `doc`: the background fold reads a newer one.
            self._behind = any(job.get("cg", 0) > gen for job in changed)
            return kept
        raise RuntimeError("job counts: no consistent read after several tries")

    async def refresh(self) -> dict | None:
        """Read the counters document and keep it for the reads that follow."""
        self.counters_doc = await self.read_counters()
        self._behind = False
        return self.counters_doc

    async def read_counters(self) -> dict | None:
        """The counters document (a read's first operation)."""
        return await self.counters.find_one({"_id": COUNTS_ID})

    @staticmethod
    def _combine(doc: dict, changed: list[dict]) -> Kept:
        """The counters of `doc` moved on by `changed`: the jobs with `fold_gen` above its
        `gen`, each from the state `doc` includes it in to its state now."""
        values = {key: n for key, n in doc.items() if _is_count(key)}
        gen = doc.get("gen", 0)
        in_batch = {entry[0]: entry for entry in ((doc.get("batch") or {}).get("jobs") or [])}
        for job in changed:
            entry = in_batch.get(job["_id"])
            if job.get("cg", 0) > gen:  # counted by a fold that committed after `doc`
                if job.get("pcg", 0) > gen:
                    raise ReadAgain
                counted = job.get("pcs")
            else:
                counted = entry[3] if entry is not None else job.get("cs")
            now = state_of(job)
            if counted != now:
                add_state(values, job["job_type_id"], counted, -1)
                add_state(values, job["job_type_id"], now, 1)
        return Kept(values)

    async def recount(self) -> dict[int, dict[str, int]]:
        """A full recount from the jobs (a scan: for tests and checks, never for a page)."""
        table: dict[int, dict[str, int]] = {}
        async for job in self.jobs.find({}, {"job_type_id": 1, "status": 1}):
            row = table.setdefault(job["job_type_id"], {})
            row[job["status"]] = row.get(job["status"], 0) + 1
        return table

    # -- folding -------------------------------------------------------------------------------

    async def fold(self, limit: int = FOLD_LIMIT) -> int:
        """Move up to `limit` uncounted jobs into the counters; how many were moved."""
        await self.ensure()
        for _ in range(FOLD_RETRIES):
            doc = await self.counters.find_one({"_id": COUNTS_ID})
            if doc is None:  # a database dropped under us: nothing to fold into
                return 0
            if doc.get("batch"):
                await self._finish(doc["batch"])
                continue
            jobs = await find_page(self.jobs, UNCOUNTED,
                                   projection=UNCOUNTED_PROJECTION, limit=limit)
            if not jobs:
                return 0
            now = now_ms()
            cutoff = now - MINUTES_KEPT_MS
            totals: dict[str, float] = {}
            entries = []
            for job in jobs:
                old, new = job.get("cs"), state_of(job)
                if old != new:
                    add_state(totals, job["job_type_id"], old, -1, cutoff)
                    add_state(totals, job["job_type_id"], new, 1, cutoff)
                entries.append([job["_id"], job.get("ctv"), job.get("tv"), new, old,
                                job.get("cg", 0)])
            gen = doc.get("gen", 0) + 1
            batch = {"tok": uuid.uuid4().hex, "at": now, "gen": gen, "jobs": entries}
            inc = {"gen": 1, **{key: n for key, n in totals.items() if n}}
            update: dict = {"$inc": inc, "$set": {"batch": batch}}
            if spent := self._spent(doc, cutoff, inc):
                update["$unset"] = dict.fromkeys(spent, "")
            result = await self.counters.update_one(
                {"_id": COUNTS_ID, "gen": doc.get("gen", 0), "batch": None}, update)
            if result.matched_count == 0:
                continue  # another fold started or ended meanwhile: read again
            await self._finish(batch)
            return len(jobs)
        return 0

    @staticmethod
    def _spent(doc: dict, cutoff: int, inc: dict) -> list[str]:
        """The minute, queue and node counters of `doc` to drop: at zero, or minutes before
        `cutoff`; none that `inc` adds to."""
        def stale(key: str) -> bool:
            return key.startswith("m:") and int(key.rsplit(":", 1)[1]) < cutoff

        return [key for key, n in doc.items() if key[:2] in ("m:", "q:", "u:")
                and key not in inc and (abs(n) <= ZERO or stale(key))]

    async def _finish(self, batch: dict) -> None:
        """Step 4: the jobs of a recorded batch are marked counted, then the batch goes."""
        await self._mark(batch)
        await self.counters.update_one({"_id": COUNTS_ID, "batch.tok": batch["tok"]},
                                       {"$set": {"batch": None}, "$inc": {"gen": 1}})

    async def _mark(self, batch: dict) -> None:
        """Each job of `batch` counted at the batch's version and `gen` (once: the writes are
        conditioned on the job's counted version before the batch). One update per job where
        no transition came since the fold read it (the usual case); only when some did, a
        second pass marks those counted without `fold_gen`, which their transition reset."""
        gen = batch["gen"]
        unchanged, changed = [], []
        for job_id, old, version, state, old_state, old_gen in batch["jobs"]:
            counted = {"ctv": version, "cs": state, "cg": gen, "pcs": old_state,
                       "pcg": old_gen}
            unchanged.append(UpdateOne({"_id": job_id, "ctv": old, "tv": version},
                                       {"$set": {**counted, "fold_gen": gen}}))
            changed.append(UpdateOne({"_id": job_id, "ctv": old}, {"$set": counted}))
        if not unchanged:
            return
        result = await self.jobs.bulk_write(unchanged, ordered=False)
        if result.modified_count < len(unchanged):
            await self.jobs.bulk_write(changed, ordered=False)

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
                folded = await self.jobs.find_one(UNCOUNTED, {"_id": 1}) is not None and \
                    await self.fold() > 0
                if folded or self._behind:
                    await self.refresh()
            except PyMongoError as exc:
                log.debug("job counts: fold failed (%s); retried", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

