"""Aggregates for the dashboards: counts by status, throughput per minute, busiest job types,
queue and node use. Counts by status are the kept ones (store/counts.py); the windowed ones are
one `$group` pass (or a few) over an index, never a scan per row shown. Equality is written
`$eq` (nx-27017 serves only that form from an index, see store/counts.py UNCOUNTED)."""

from core.model import JOB_STATUSES, ExeStatus, JobStatus
from store.counts import JobCounts
from store.db import Database
from store.reads import aggregate_all

MINUTE_MS = 60_000
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


class StatsStore:
    def __init__(self, db: Database, counts: JobCounts):
        self.db = db
        self.counts = counts

    async def _group(self, collection: str, pipeline: list[dict]) -> list[dict]:
        return await aggregate_all(self.db[collection], pipeline)

    async def counts_by_status(self) -> dict[str, int]:
        """Jobs per status right now, from the kept counts (store/counts.py): no scan."""
        return await self.counts.by_status()

    async def finished_per_minute(self, since: int) -> dict[JobStatus, dict[int, int]]:
        """{status: {minute start in ms: count}} of jobs that became COMPLETED or FAILED since
        `since`. nx-27017 evaluates expressions in `$project` but not inside a `$group` key,
        so the minute is projected first, and each status is its own pass over its index."""
        per_status: dict[JobStatus, dict[int, int]] = {}
        for status in FINISHED:
            rows = await self._group("jobs", [
                {"$match": {"status": {"$eq": status}, "last_status_change": {"$gte": since}}},
                {"$project": {"minute": {"$subtract": [
                    "$last_status_change", {"$mod": ["$last_status_change", MINUTE_MS]}]}}},
                {"$group": {"_id": "$minute", "n": {"$sum": 1}}},
            ])
            per_status[status] = {int(row["_id"]): row["n"] for row in rows}
        return per_status

    async def counts_by_type_and_status(self, since: int | None = None) -> dict[int, dict]:
        """{job_type_id: {status: count}} for jobs whose status changed since `since` (all jobs
        when None); one `$group` per status, as nx-27017 ignores compound `$group` keys."""
        counts: dict[int, dict] = {}
        for status in JOB_STATUSES:
            match: dict = {"status": {"$eq": status}}
            if since is not None:
                match["last_status_change"] = {"$gte": since}
            rows = await self._group("jobs", [
                {"$match": match}, {"$group": {"_id": "$job_type_id", "n": {"$sum": 1}}}])
            for row in rows:
                counts.setdefault(row["_id"], {})[status] = row["n"]
        return counts

    async def running_by_node(self) -> dict[int | None, dict]:
        """Per node id (None: not on a node): {running, cpus, mem}, the RUNNING executions and
        the CPU and memory they were scheduled with."""
        rows = await self._group("job_exes", [
            {"$match": {"status": {"$eq": ExeStatus.RUNNING}}},
            {"$group": {"_id": "$node_id", "running": {"$sum": 1},
                        "cpus": {"$sum": "$cpus_scheduled"}, "mem": {"$sum": "$mem_scheduled"}}},
        ])
        return {row.pop("_id"): row for row in rows}
