"""Job types and revisions, job counts, workspaces, files and products, and user errors."""

import pytest

from core.model import BUILTIN_ERRORS, JOB_TYPE_DEFAULTS
from store.job_types import JobTypeExists

T1, T2, T3 = 2_000_000_001_000, 2_000_000_002_000, 2_000_000_003_000


@pytest.mark.gen_test
async def test_create_job_type_with_revision_one(store, make):
    created = await store.job_types.create("scan", "1.0", make.interface("a"),
                                           {"title": "Scan", "priority": 5, "is_paused": True})
    stored = await store.job_types.get(created["id"])
    stored.pop("_id")
    created.pop("_id", None)
    assert stored == created
    assert stored == {**JOB_TYPE_DEFAULTS, "title": "Scan", "priority": 5, "is_paused": True,
                      "id": 1, "name": "scan", "version": "1.0", "interface": make.interface("a"),
                      "revision_num": 1, "job_type_rev_id": 1, "trigger_rule": None,
                      "created": stored["created"], "archived": None,
                      "paused": stored["created"], "last_modified": stored["created"]}
    rev = await store.job_types.get_revision(1)
    assert {k: rev[k] for k in ("id", "job_type_id", "revision_num", "interface", "created")} == {
        "id": 1, "job_type_id": 1, "revision_num": 1, "interface": make.interface("a"),
        "created": stored["created"]}
    with pytest.raises(JobTypeExists, match=r'"scan" version "1\.0" already exists'):
        await store.job_types.create("scan", "1.0", make.interface(), {})
    assert await store.db.count("job_types", {}) == 1
    assert await store.db.count("job_type_revs", {}) == 1


@pytest.mark.gen_test
async def test_update_makes_a_revision_only_when_the_interface_changes(store, make):
    job_type = await store.job_types.create("scan", "1.0", make.interface("a"), {})
    same = await store.job_types.update(job_type, {"title": "New"}, make.interface("a"))
    assert (same["revision_num"], same["job_type_rev_id"], same["title"]) == (1, 1, "New")
    unchanged = await store.job_types.update(same, {"priority": 3}, None)
    assert (unchanged["revision_num"], unchanged["priority"]) == (1, 3)
    assert await store.db.count("job_type_revs", {}) == 1
    changed = await store.job_types.update(unchanged, {}, make.interface("a", "b"))
    stored = await store.job_types.get(job_type["id"])
    assert {k: stored[k] for k in ("revision_num", "job_type_rev_id", "interface", "title",
                                   "priority")} == {
        "revision_num": 2, "job_type_rev_id": 2, "interface": make.interface("a", "b"),
        "title": "New", "priority": 3}
    assert changed["revision_num"] == 2
    rev = await store.job_types.get_revision(2)
    assert (rev["job_type_id"], rev["revision_num"], rev["interface"]) == (
        job_type["id"], 2, make.interface("a", "b"))
    assert (await store.job_types.get_revision(1))["interface"] == make.interface("a")


@pytest.mark.gen_test
async def test_pausing_sets_and_clears_paused(store, make):
    job_type = await store.job_types.create("scan", "1.0", make.interface(), {})
    paused = await store.job_types.update(job_type, {"is_paused": True}, None)
    assert paused["paused"] == paused["last_modified"]
    again = await store.job_types.update(paused, {"is_paused": True}, None)
    assert again["paused"] == paused["paused"]
    resumed = await store.job_types.update(again, {"is_paused": False}, None)
    stored = await store.job_types.get(job_type["id"])
    assert (resumed["paused"], stored["paused"], stored["is_paused"]) == (None, None, False)


@pytest.mark.gen_test
async def test_flags_are_read_as_booleans_however_they_were_written(store, make):
    """nx-27017 stores a boolean written with `$set` as 0/1: every read hands out true/false,
    and a flag the document lacks as false."""
    job_type = await store.job_types.create("scan", "1.0", make.interface(), {})
    await store.job_types.update(job_type, {"is_paused": True, "docker_privileged": False}, None)
    await store.db["job_types"].update_one({"id": job_type["id"]},
                                           {"$unset": {"uses_docker": ""}})
    reads = [await store.job_types.get(job_type["id"]),
             (await store.job_types.by_ids([job_type["id"]]))[job_type["id"]],
             (await store.job_types.list_job_types())[1][0],
             (await store.job_types.all_job_types())[0]]
    for doc in reads:
        assert (doc["is_paused"], doc["docker_privileged"], doc["uses_docker"],
                doc["is_active"]) == (True, False, False, True)
        assert all(type(doc[k]) is bool for k in ("is_paused", "docker_privileged",
                                                  "uses_docker", "is_active"))
    node = await store.nodes.register("alpha", 1, 4, 1024)
    paused = await store.nodes.set_paused(node["id"], True, "busy")
    again = await store.nodes.register("alpha", 1, 4, 1024)
    nodes = [paused, again, await store.nodes.get(node["id"]),
             (await store.nodes.by_ids([node["id"]]))[node["id"]],
             (await store.nodes.list_nodes(1, 10))[1][0], (await store.nodes.all())[0]]
    for doc in nodes:
        assert [doc[k] for k in ("is_paused", "is_paused_errors", "is_active")] == [
            True, False, True]
        assert all(type(doc[k]) is bool for k in ("is_paused", "is_paused_errors", "is_active"))


@pytest.mark.gen_test
async def test_ids_matching_and_listing(store, make):
    a = await make.job_type("alpha", "1.0", category="red")
    b = await make.job_type("alpha", "2.0", category="blue")
    c = await make.job_type("beta", "1.0", category="red")
    assert await store.job_types.ids_matching() == {a["id"], b["id"], c["id"]}
    assert await store.job_types.ids_matching(names=["alpha"]) == {a["id"], b["id"]}
    assert await store.job_types.ids_matching(categories=["red"]) == {a["id"], c["id"]}
    assert await store.job_types.ids_matching(["alpha"], ["red"]) == {a["id"]}
    assert await store.job_types.ids_matching(names=["nope"]) == set()
    assert list(await store.job_types.by_ids([c["id"], 99])) == [c["id"]]
    assert [t["id"] for t in await store.job_types.all_job_types()] == [1, 2, 3]
    for job_type, modified in ((a, 300), (b, 100), (c, 200)):
        await store.db["job_types"].update_one({"id": job_type["id"]},
                                               {"$set": {"last_modified": modified}})

    async def listed(**kw):
        count, rows = await store.job_types.list_job_types(**kw)
        return count, [row["id"] for row in rows]

    assert await listed() == (3, [2, 3, 1])
    assert await listed(names=["alpha"]) == (2, [2, 1])
    assert await listed(categories=["red"], started=150) == (2, [3, 1])
    assert await listed(ended=300) == (2, [2, 3])
    assert await listed(order=[("name", 1), ("version", -1)]) == (3, [2, 1, 3])
    assert await listed(order=[("id", 1)], page=2, page_size=2) == (3, [3])


@pytest.mark.gen_test
async def test_job_counts_by_status_and_error_category(store, make):
    job_type = await make.job_type("counted", max_tries=1)
    other = await make.job_type("other")
    algorithm = await store.errors.by_name("timeout")
    system = await store.errors.by_name("nfs")
    outcomes = [("complete", T1), ("complete", T2), (algorithm, T2), (system, T3),
                (system, T1), ("complete", 10)]
    for outcome, when in outcomes:
        _, exe = await make.running(job_type)
        if outcome == "complete":
            await store.jobs.complete_execution(exe["id"], {}, when=when)
        else:
            await store.jobs.fail_execution(exe["id"], outcome, when=when)
    running, _ = await make.running(job_type)
    await store.db["jobs"].update_one({"id": running["id"]}, {"$set": {"last_status_change": T1}})
    await make.running(other)
    assert await store.job_types.job_counts(job_type["id"], since=T1) == [
        {"status": "COMPLETED", "count": 2, "most_recent": T2, "category": None},
        {"status": "FAILED", "count": 1, "most_recent": T2, "category": "ALGORITHM"},
        {"status": "FAILED", "count": 2, "most_recent": T3, "category": "SYSTEM"},
        {"status": "RUNNING", "count": 1, "most_recent": T1, "category": None},
    ]
    assert await store.job_types.job_counts(999, since=0) == []


@pytest.mark.gen_test
async def test_workspaces(store):
    raw = await store.files.create_workspace("raw", None, "/data/raw", "Raw inputs")
    stored = await store.files.get_workspace(raw["id"])
    assert {k: stored[k] for k in ("id", "name", "title", "description", "base_path",
                                   "is_active", "archived")} == {
        "id": 1, "name": "raw", "title": "raw", "description": "Raw inputs",
        "base_path": "/data/raw", "is_active": True, "archived": None}
    with pytest.raises(ValueError, match='workspace named "raw" already exists'):
        await store.files.create_workspace("raw", "Again", "/elsewhere")
    products = await store.files.create_workspace("products", "Products", "/data/out")
    assert [w["name"] for w in await store.files.list_workspaces()] == ["raw", "products"]
    assert list(await store.files.workspaces_by_ids([products["id"], 42])) == [products["id"]]


@pytest.mark.gen_test
async def test_files_and_products(store, make):
    workspace = await store.files.create_workspace("raw", "Raw", "/data")
    source = await store.files.create_file(workspace["id"], "in.txt", "text/plain", 2048,
                                           "in/in.txt", data_type=["a", "b"],
                                           meta_data={"k": 1})
    stored = await store.files.get_file(source["id"])
    assert {k: stored[k] for k in ("id", "workspace_id", "file_name", "media_type", "file_size",
                                   "file_path", "data_type", "meta_data", "is_deleted",
                                   "is_product", "deleted", "countries")} == {
        "id": 1, "workspace_id": workspace["id"], "file_name": "in.txt",
        "media_type": "text/plain", "file_size": 2048, "file_path": "in/in.txt",
        "data_type": ["a", "b"], "meta_data": {"k": 1}, "is_deleted": False,
        "is_product": False, "deleted": None, "countries": []}
    assert "job_id" not in stored and len(stored["uuid"]) == 32
    job, exe = await make.running(await make.job_type("maker"))
    origin = {"job_type_id": job["job_type_id"], "job_id": job["id"], "job_exe_id": exe["id"]}
    product = await store.files.create_file(workspace["id"], "out.png", "image/png", 10,
                                            "out/out.png", product_of=origin)
    assert {k: product[k] for k in ("is_product", "is_operational", "is_published", "unpublished",
                                    "job_type_id", "job_id", "job_exe_id")} == {
        "is_product": True, "is_operational": True, "is_published": True, "unpublished": None,
        **origin}
    assert product["published"] == product["created"]
    assert [f["id"] for f in await store.files.products_of_job(job["id"])] == [product["id"]]
    assert sorted(await store.files.files_by_ids([1, 2, 3])) == [1, 2]
    assert await store.files.get_file(99) is None


@pytest.mark.gen_test
async def test_newest_files_of_media_types(store):
    """What a job input may name (the dashboard's submit form): newest first, of the input's
    media types or any, without deleted files, at most `limit`."""
    workspace = await store.files.create_workspace("raw", "Raw", "/data")
    made = [await store.files.create_file(workspace["id"], name, media_type, 1, name)
            for name, media_type in (("a.txt", "text/plain"), ("b.png", "image/png"),
                                     ("c.csv", "text/csv"), ("d.txt", "text/plain"),
                                     ("gone.txt", "text/plain"))]
    await store.db["files"].update_one({"id": made[4]["id"]}, {"$set": {"is_deleted": True}})
    names = [f["file_name"] for f in await store.files.newest_files(["text/plain", "text/csv"])]
    assert names == ["d.txt", "c.csv", "a.txt"]
    assert [f["file_name"] for f in await store.files.newest_files([], limit=2)] == \
        ["d.txt", "c.csv"]
    assert await store.files.newest_files(["video/mp4"]) == []


@pytest.mark.gen_test
async def test_newest_files_are_in_id_order_past_nine(store):
    """Files are found by `_id` but ordered by `id`: nx-27017 sorts `_id` 99,999 after 100,000
    (as text), so a page ordered by `_id` would start at file 9 of 12."""
    workspace = await store.files.create_workspace("raw", "Raw", "/data")
    made = [await store.files.create_file(workspace["id"], f"{n}.txt", "text/plain", 1, f"{n}")
            for n in range(1, 13)]
    assert [f["id"] for f in await store.files.newest_files([], limit=5)] == \
        [f["id"] for f in made[::-1][:5]]


@pytest.mark.gen_test
async def test_user_errors(store):
    created = await store.errors.create("bad-input", "Bad input", "The input was bad.", "DATA")
    stored = await store.errors.get(created["id"])
    assert {k: stored[k] for k in ("id", "name", "title", "description", "category",
                                   "is_builtin")} == {
        "id": len(BUILTIN_ERRORS) + 1, "name": "bad-input", "title": "Bad input",
        "description": "The input was bad.",
        "category": "DATA", "is_builtin": False}
    with pytest.raises(ValueError, match='error named "bad-input" already exists'):
        await store.errors.create("bad-input", None, None, "DATA")
    with pytest.raises(ValueError, match="category must be one of SYSTEM, ALGORITHM, DATA"):
        await store.errors.create("odd", None, None, "OTHER")
    assert await store.errors.by_name("odd") is None
    builtin = len(BUILTIN_ERRORS)
    assert "bad-input" in await store.errors.names() and len(await store.errors.names()) == \
        builtin + 1
    count, rows = await store.errors.list_errors(2, 10)
    assert (count, [r["id"] for r in rows]) == (builtin + 1, list(range(11, builtin + 2)))
