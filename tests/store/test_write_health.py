"""store/writes.py: what a failed write means, and when the store counts as writing again.
(A real full disk: tests/store/test_silent_failures.py and tests/test_disk_full.py.)"""

import asyncio
import logging

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, WriteError

from store import writes
from store.reads import StoreWriteFailed
from store.writes import WriteHealth

FULL = WriteError("database or disk is full", 8, {"code": 8, "errmsg": "database or disk is full"})


def health(tmp_path=None) -> WriteHealth:
    return WriteHealth(db=None, data_dir=tmp_path)


@pytest.mark.parametrize(("exc", "cause"), [
    (FULL, "no space left on the store's disk"),
    (OperationFailure("database or disk is full", None, {"ok": 0}),
     "no space left on the store's disk"),
    (WriteError("attempt to write a readonly database", 8), "the store's data is read-only"),
    (WriteError("disk I/O error", 10), "the store's disk reports I/O errors"),
    (StoreWriteFailed("jobs", 7), "the store did not make a write it acknowledged"),
    (AutoReconnect("connection refused"), None),
    (DuplicateKeyError("E11000 duplicate key"), None),
    (ValueError("disk is full"), None),
], ids=["full", "full-command", "read-only", "io", "silent", "unreachable", "duplicate",
        "not-the-store"])
def test_the_cause_of_a_failed_write(tmp_path, exc, cause):
    problem = health(tmp_path).classify(exc)
    assert (problem and problem.cause) == cause
    if problem:
        assert str(problem).startswith(f"{cause} (") and str(problem).endswith(
            " free in data_dir)")


def test_a_silent_failure_on_a_nearly_full_disk_is_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(writes, "MIN_FREE", 1 << 62)
    problem = health(tmp_path).classify(StoreWriteFailed("counters", "jobs"))
    assert problem.cause == "no space left on the store's disk" and problem.no_space


def test_without_a_data_folder_only_the_message_counts():
    problem = health().classify(FULL)
    assert (str(problem), problem.no_space) == ("no space left on the store's disk", True)


def test_an_outage_warns_once(tmp_path, caplog):
    writes_health = health(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="jobdeck.store"):
        for _ in range(5):
            assert writes_health.failed(FULL).cause == "no space left on the store's disk"
        assert writes_health.failed(AutoReconnect("down")) is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the store cannot write: no space left" in warnings[0].message


class Collection:
    def __init__(self):
        self.error: Exception | None = None
        self.writes = 0

    async def update_one(self, *args, **kwargs):
        self.writes += 1
        if self.error is not None:
            raise self.error


class Database(dict):
    swept = 0

    async def remove_leftovers(self) -> int:
        self.swept += 1
        return 0


@pytest.mark.gen_test
async def test_probes_only_while_writes_fail_and_clear_once_one_succeeds(tmp_path, monkeypatch,
                                                                       caplog):
    probe = Collection()
    db = Database({writes.PROBE_COLLECTION: probe})
    writes_health = WriteHealth(db, tmp_path)
    recovered = []

    async def on_recovered():
        recovered.append(True)

    writes_health.on_recovered(on_recovered)
    monkeypatch.setattr(writes, "PROBE_INTERVAL", 0)
    assert await writes_health.check() is None and probe.writes == 0  # all is well: no write
    writes_health.failed(FULL)
    probe.error = FULL
    assert (await writes_health.check()).cause == "no space left on the store's disk"
    monkeypatch.setattr(writes, "MIN_FREE", 1 << 62)  # the probe fits the log's slack: not yet
    probe.error = None
    assert await writes_health.check() is not None
    monkeypatch.setattr(writes, "MIN_FREE", 1)
    with caplog.at_level(logging.INFO, logger="jobdeck.store"):
        assert await writes_health.check() is None
    assert "the store writes again" in caplog.text
    assert probe.writes == 3
    await asyncio.sleep(0)  # leftovers go, then the callbacks run, in a task of their own
    assert (db.swept, recovered) == (1, [True])
    await writes_health.close()
    assert await writes_health.check() is None and probe.writes == 3
