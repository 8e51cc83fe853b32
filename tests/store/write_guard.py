"""Records every write command whose filter uses `$in`, `$nin` or `$all`.

nx-27017 evaluates such a filter in Python (neosqlite cannot turn it into SQL) and then writes
to the row whose SQLite rowid equals the integer `_id`: measured, 10 of 20 updates and 20 of 20
deletes hit the wrong document. The store must never send one; tests/store/conftest.py fails
any store test during which one was sent.
"""

from collections.abc import Mapping

from pymongo import monitoring

RISKY = frozenset({"$in", "$nin", "$all"})


def risky_operators(value) -> set[str]:
    """The `$in`/`$nin`/`$all` keys anywhere in a filter, also inside `$and`, `$or`, `$not`,
    `$elemMatch` and the like."""
    if isinstance(value, Mapping):
        found = RISKY & set(value)
        for item in value.values():
            found |= risky_operators(item)
        return found
    if isinstance(value, list | tuple):
        return set().union(*map(risky_operators, value))
    return set()


def write_filters(name: str, command: Mapping) -> list:
    """The filters of a write command: each update's or delete's `q`, findAndModify's `query`."""
    if name == "findAndModify":
        return [command.get("query", {})]
    if name in ("update", "delete"):
        return [op.get("q", {}) for op in command.get(f"{name}s", [])]
    return []


class WriteFilterGuard(monitoring.CommandListener):
    """Registered once for the whole process; records only while armed."""

    def __init__(self):
        self.armed = False
        self.flagged: list[tuple[str, str, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.armed:
            return
        for flt in write_filters(event.command_name, event.command):
            if risky_operators(flt):
                self.flagged.append((event.command_name, event.database_name, flt))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    def take(self) -> list:
        """The writes flagged so far, forgotten here."""
        flagged, self.flagged = self.flagged, []
        return flagged
