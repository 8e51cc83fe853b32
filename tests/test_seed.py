"""store.seed: the bulk seeder writes jobs in exactly the shape the API serves."""

import pytest

from core.model import JOB_STATUSES
from core.times import now_ms
from store.samples import MINUTE_MS
from store.seed import SEED_JOB_TYPES, SEEDED_COLLECTIONS, WEEK_MS, seed_jobs


@pytest.mark.gen_test(timeout=60)
async def test_seed_jobs_inserts_well_formed_jobs_the_api_serves(api, store):
    summary = await seed_jobs(store, 200, batch=64, progress=None)

    assert summary["jobs"] == 200
    assert summary["trigger_events"] == 200
    assert await store.db.count("jobs", {}) == 200
    assert await store.db.count("trigger_events", {}) == 200
    assert await store.db.count("job_types", {}) == len(SEED_JOB_TYPES)
    jobs = await store.db["jobs"].find({}).sort("id", 1).to_list()
    ids = [j["id"] for j in jobs]
    # Unique and increasing, not gap-free: ids come in blocks (store/db.py ID_BLOCK), and a
    # batch longer than what is left of a block takes a new one.
    assert ids == sorted(set(ids)) and len(ids) == 200 and ids[0] == 1
    exes = {e["id"]: e async for e in store.db["job_exes"].find({})}
    assert len(exes) == summary["job_exes"]
    assert {j["status"] for j in jobs} <= set(JOB_STATUSES)
    assert len({j["status"] for j in jobs}) >= 5
    assert len({j["job_type_id"] for j in jobs}) >= 4
    for job in jobs:
        assert job["created"] <= job["last_status_change"] <= job["last_modified"]
        owned = sorted((e for e in exes.values() if e["job_id"] == job["id"]),
                       key=lambda e: e["id"])
        assert len(owned) == job["num_exes"]
        if job["num_exes"]:
            assert job["latest_exe_id"] == owned[-1]["id"]
            assert job["queued"] == owned[-1]["queued"]
        else:
            assert job["latest_exe_id"] is None
        if job["status"] in ("COMPLETED", "RUNNING", "QUEUED"):
            assert owned[-1]["status"] == job["status"]
        if job["status"] == "FAILED":
            assert owned[-1]["status"] == "FAILED"
            assert job["error_id"] == owned[-1]["error_id"] is not None
        else:
            assert job["error_id"] is None

    status, body, _ = await api.get("/jobs/?page_size=1000")
    assert status == 200
    assert body["count"] == 200
    assert sorted(row["id"] for row in body["results"]) == ids
    served = {row["id"]: row for row in body["results"]}
    assert served[jobs[0]["id"]]["status"] == jobs[0]["status"]
    assert served[jobs[0]["id"]]["job_type"]["name"] == jobs[0]["job_type_name"]

    ran = next(j for j in jobs if j["num_exes"] > 0)
    status, details, _ = await api.get(f"/jobs/{ran['id']}/")
    assert status == 200
    assert [e["id"] for e in details["job_exes"]] == sorted(
        (e["id"] for e in exes.values() if e["job_id"] == ran["id"]), reverse=True)
    assert details["inputs"][0]["name"] == "mode"
    assert details["inputs"][0]["value"] == ran["data"]["input_data"][0]["value"]


@pytest.mark.gen_test(timeout=60)
async def test_seeding_twice_reuses_the_job_types(store):
    await seed_jobs(store, 10, progress=None)
    await seed_jobs(store, 10, progress=None)

    assert await store.db.count("job_types", {}) == len(SEED_JOB_TYPES)
    assert await store.db.count("jobs", {}) == 20


def index_keys(info: dict) -> dict:
    """{index key: unique} of an index_information() answer."""
    return {tuple(index["key"]): bool(index.get("unique")) for index in info.values()}


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("bulk", [False, True])
async def test_a_seeded_store_counts_exactly_and_keeps_its_indexes(api, store, bulk):
    indexes = {name: index_keys(await store.db[name].index_information())
               for name in SEEDED_COLLECTIONS}
    assert all(indexes.values())

    await seed_jobs(store, 300, batch=128, progress=None, bulk=bulk)

    recount = await store.counts.recount()
    assert sum(n for row in recount.values() for n in row.values()) == 300
    through = await store.db["job_minutes_state"].find_one({"_id": "finished"})
    assert through is not None and through["through"] > now_ms() - 2 * MINUTE_MS
    week_ago = now_ms() - WEEK_MS
    assert (await store.samples.between(week_ago, through["through"]))[1] == \
        await store.samples.finished_per_minute(week_ago, through["through"])
    assert await store.counts.current() == recount
    for name in SEEDED_COLLECTIONS:
        assert index_keys(await store.db[name].index_information()) == indexes[name]

    by_status: dict[str, int] = {}
    for row in recount.values():
        for status, n in row.items():
            by_status[status] = by_status.get(status, 0) + n
    status, body, _ = await api.get("/jobs/?page_size=1")
    assert (status, body["count"]) == (200, 300)
    for job_status, n in by_status.items():
        status, body, _ = await api.get(f"/jobs/?status={job_status}&page_size=1000")
        assert (status, body["count"], len(body["results"])) == (200, n, n)
    type_id, row = max(recount.items(), key=lambda item: sum(item[1].values()))
    status, body, _ = await api.get(f"/jobs/?job_type_id={type_id}&page_size=1000")
    assert (status, body["count"], len(body["results"])) == (200, sum(row.values()),
                                                             sum(row.values()))
    for job_status, n in row.items():
        status, body, _ = await api.get(
            f"/jobs/?job_type_id={type_id}&status={job_status}&page_size=1000")
        assert (status, body["count"], len(body["results"])) == (200, n, n)
