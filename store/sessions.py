"""Dashboard sessions (auth/): one document per login, keyed by a hash of the session id that the
signed cookie carries, with the credential it was made with and its expiry. Logout deletes it;
every process of the server reads the same records, so a session ended in one is ended in all."""

from core.times import now_ms
from store.db import Database


class SessionStore:
    def __init__(self, db: Database):
        self.sessions = db["sessions"]

    async def create(self, key: str, fields: dict, expires: int) -> None:
        """Record a session (and drop the expired ones, so the collection stays small)."""
        now = now_ms()
        await self.sessions.delete_many({"expires": {"$lte": now}})
        await self.sessions.insert_one({"_id": key, **fields, "created": now,
                                        "expires": expires})

    async def get(self, key: str) -> dict | None:
        """The live session under `key`; None when it is unknown, ended or expired."""
        doc = await self.sessions.find_one({"_id": key})
        if doc is None or doc["expires"] <= now_ms():
            return None
        return doc

    async def delete(self, key: str) -> None:
        await self.sessions.delete_one({"_id": key})
