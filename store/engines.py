"""Engine heartbeats: one small document per running engine (a server process with its engine),
keyed by the engine's random id, which its executions carry in `engine.id`.

A node is one document per hostname, shared by every engine on that machine, so its
`last_offer` cannot tell a dead engine from a live one beside it (a restarted server touches the
node its dead predecessor left). These documents can: engine/scheduler.py recovers the
executions of an engine whose `beat` stops changing.
"""

from core.times import now_ms
from store.db import Database
from store.reads import find_all


class EngineStore:
    def __init__(self, db: Database):
        self.engines = db["engines"]

    async def beat(self, engine_id: str, fields: dict) -> None:
        """Record that the engine is alive (one upsert; `fields` say who and where it is)."""
        await self.engines.update_one({"_id": engine_id},
                                      {"$set": {**fields, "beat": now_ms()}}, upsert=True)

    async def all(self) -> list[dict]:
        return await find_all(self.engines, {}, key="_id")

    async def forget(self, engine_id: str) -> None:
        await self.engines.delete_one({"_id": engine_id})
