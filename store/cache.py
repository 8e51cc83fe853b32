"""Small per-process caches of the store's little collections (job types, their revisions,
errors, workspaces), so answers that embed them do not read them again on every request.

Each entry expires `ttl` seconds after it was read; the store module that writes a collection
drops (or replaces) the entries its own writes change, so this process sees its own writes at
once, and another server process's writes within `ttl`. Only documents found are cached: an id
not found is read again next time. Revisions never change once written (ttl None: kept until
the cache is full, then the cache starts over).
"""

import time
from collections.abc import Awaitable, Callable, Iterable

MAX_ENTRIES = 10_000


class Cache:
    def __init__(self, ttl: float | None):
        self.ttl = ttl
        self._entries: dict[int, tuple[float, dict]] = {}

    def get(self, key: int) -> dict | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.ttl is not None and entry[0] < time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: int, doc: dict) -> dict:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        expires = time.monotonic() + self.ttl if self.ttl is not None else 0.0
        self._entries[key] = (expires, doc)
        return doc

    def drop(self, key: int) -> None:
        self._entries.pop(key, None)

    async def many(self, keys: Iterable, load: Callable[[list[int]], Awaitable[dict]]
                   ) -> dict[int, dict]:
        """{key: document} for the known ones among `keys` (None ignored); the ones not cached
        read with one `load(missing keys)`."""
        found: dict[int, dict] = {}
        missing = []
        for key in {k for k in keys if k is not None}:
            doc = self.get(key)
            if doc is None:
                missing.append(key)
            else:
                found[key] = doc
        if missing:
            for key, doc in (await load(sorted(missing))).items():
                found[key] = self.put(key, doc)
        return found
