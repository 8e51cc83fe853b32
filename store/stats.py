"""Aggregates for the dashboards. Counts by status, and all the overview shows (its last hour,
queue and node use), are the kept ones (store/counts.py); the job types page's 6/12/24 h counts
are one `$group` pass per status over an index, never a scan per row shown. Equality is written
`$eq` (nx-27017 serves only that form from an index, see store/counts.py UNCOUNTED)."""

from core.model import JOB_STATUSES
from store.counts import JobCounts
from store.db import Database
from store.reads import aggregate_all


class StatsStore:
    def __init__(self, db: Database, counts: JobCounts):
        self.db = db
        self.counts = counts

    async def _group(self, collection: str, pipeline: list[dict]) -> list[dict]:
        return await aggregate_all(self.db[collection], pipeline)

    async def counts_by_status(self) -> dict[str, int]:
        """Jobs per status right now, from the kept counts (store/counts.py): no scan."""
        return (await self.counts.read()).by_status()

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
