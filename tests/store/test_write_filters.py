"""No write filter in store/ uses `$in`, `$nin` or `$all` (issue 16, item 6): nx-27017 may apply
such a write to another document (tests/store/write_guard.py). Checked twice: statically on
store/'s source, and at run time on every command the store tests send (tests/store/conftest.py).
"""

import ast
from pathlib import Path

import pytest
from pymongo import DeleteMany, UpdateOne

from tests.store.write_guard import RISKY

STORE = Path(__file__).resolve().parents[2] / "store"
WRITES = {"update_one", "update_many", "replace_one", "delete_one", "delete_many",
          "find_one_and_update", "find_one_and_delete", "find_one_and_replace",
          "UpdateOne", "UpdateMany", "ReplaceOne", "DeleteOne", "DeleteMany"}


def risky_write_filters(source: str, filename: str = "<source>") -> list[str]:
    """`file:line call` for each write whose literal filter (first argument or `filter=`) has a
    `$in`, `$nin` or `$all` key anywhere in it. A filter built elsewhere is the run-time
    guard's to catch."""
    found = []
    for call in ast.walk(ast.parse(source, filename)):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in WRITES:
            continue
        flt = call.args[0] if call.args else next(
            (kw.value for kw in call.keywords if kw.arg == "filter"), None)
        keys = {key.value for node in ast.walk(flt) if isinstance(node, ast.Dict)
                for key in node.keys if isinstance(key, ast.Constant)} if flt else set()
        if keys & RISKY:
            found.append(f"{filename}:{call.lineno} {name}")
    return found


def test_no_write_filter_in_the_store_uses_in_nin_or_all():
    sources = sorted(STORE.glob("*.py"))
    assert len(sources) > 5
    assert [hit for path in sources
            for hit in risky_write_filters(path.read_text(), path.name)] == []


@pytest.mark.parametrize("source", [
    'jobs.update_one({"status": {"$in": ["QUEUED"]}}, {"$set": {"x": 1}})',
    'await self.db["jobs"].delete_many(filter={"$or": [{"tags": {"$nin": ["a"]}}]})',
    'exes.find_one_and_update({"_id": 1, "tags": {"$all": ["a"]}}, update)',
    'bulk = [UpdateOne({"id": {"$in": ids}}, {"$set": {"x": 1}})]',
])
def test_the_static_check_finds_a_risky_filter(source):
    assert len(risky_write_filters(source)) == 1


@pytest.mark.parametrize("source", [
    'jobs.update_one({"_id": 1, **cond}, {"$set": {"tags": {"$in": 1}}})',
    'jobs.find({"status": {"$in": ["QUEUED"]}})',
    'jobs.delete_one({"_id": exe["id"]})',
])
def test_the_static_check_passes_a_safe_write_or_a_read(source):
    assert risky_write_filters(source) == []


@pytest.mark.gen_test
async def test_the_guard_flags_every_kind_of_risky_write(store, write_guard):
    """Sent on purpose to a scratch collection; the guard's records are taken here, so the
    test itself passes."""
    scratch = store.db["scratch"]
    await scratch.insert_many([{"_id": i, "tag": i % 2, "tags": [i]} for i in range(1, 5)])
    await scratch.update_one({"_id": 1}, {"$set": {"tag": 5}})
    await scratch.find_one_and_update({"tag": 0}, {"$set": {"x": {"$in": [1]}}})
    await scratch.delete_many({"tag": {"$gt": 9}})
    assert write_guard.take() == []
    await scratch.update_one({"tag": {"$in": [0, 1]}}, {"$set": {"x": 1}})
    await scratch.update_many({"$and": [{"_id": 1}, {"tag": {"$nin": [7]}}]}, {"$set": {"x": 2}})
    await scratch.find_one_and_update({"tags": {"$all": [3]}}, {"$set": {"x": 3}})
    await scratch.find_one_and_delete({"$or": [{"tag": {"$in": [9]}}]})
    await scratch.bulk_write([UpdateOne({"_id": {"$in": [2]}}, {"$set": {"x": 4}}),
                              DeleteMany({"tags": {"$nin": [1, 2, 3, 4]}})])
    flagged = write_guard.take()
    assert [command for command, _, _ in flagged] == [
        "update", "update", "findAndModify", "findAndModify", "update", "delete"]
    assert {database for _, database, _ in flagged} == {store.db.db.name}
