"""The only code that talks to MongoDB."""

from core.settings import DEFAULTS
from store.counts import JobCounts
from store.db import Database
from store.engines import EngineStore
from store.errors import ErrorStore
from store.files import FileStore
from store.job_types import JobTypeStore
from store.jobs import JobStore
from store.nodes import NodeStore
from store.products import ProductStore
from store.samples import JobSamples
from store.search import JobSearch
from store.sessions import SessionStore
from store.stats import StatsStore
from store.writes import WriteHealth


class Store:
    """All store modules over one connection. Code above the store calls their methods and never
    reaches `db` (tests and the store's own modules do)."""

    def __init__(self, url: str, name: str = DEFAULTS.db_name,
                 timeout_ms: int = DEFAULTS.store_timeout_ms, data_dir=None, listeners=()):
        """`data_dir`: the embedded store's data folder, whose free space explains a failed
        write (store/writes.py); `listeners`: pymongo command listeners for its clients."""
        self.db = Database(url, name, timeout_ms, listeners)
        self.writes = WriteHealth(self.db, data_dir)
        self.errors = ErrorStore(self.db)
        self.files = FileStore(self.db)
        self.job_types = JobTypeStore(self.db)
        self.counts = JobCounts(self.db)
        self.jobs = JobStore(self.db, self.job_types, self.counts)
        self.nodes = NodeStore(self.db)
        self.engines = EngineStore(self.db)
        self.products = ProductStore(self.db)
        self.stats = StatsStore(self.db, self.counts)
        self.samples = JobSamples(self.db, self.counts)
        self.sessions = SessionStore(self.db)
        self.search = JobSearch(self.db, self.jobs)

    async def open(self) -> "Store":
        await self.db.prepare()
        await self.nodes.migrate()
        await self.counts.ensure()
        return self

    async def close(self) -> None:
        await self.counts.stop()
        await self.samples.stop()
        await self.writes.close()
        await self.db.close()

    async def ping(self) -> bool:
        return await self.db.ping()
