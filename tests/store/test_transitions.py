"""Every status transition, with the exact fields it writes and the preconditions it checks."""

import asyncio
import random

import pytest

from store import Store
from store.jobs import InvalidTransition, JobNotFound

T0, T1, T2, T3 = 2_000_000_000_000, 2_000_000_001_000, 2_000_000_002_000, 2_000_000_003_000


def fields(doc, *names):
    return {name: doc[name] for name in names}


JOB_FIELDS = ("status", "last_status_change", "last_modified", "queued", "started", "ended",
              "num_exes", "error_id", "latest_exe_id", "max_tries", "priority")
EXE_FIELDS = ("status", "queued", "started", "ended", "last_modified", "node_id", "error_id")


async def job_state(store, job_id):
    return fields(await store.jobs.get_job(job_id), *JOB_FIELDS)


async def exe_state(store, exe_id):
    return fields(await store.jobs.get_exe(exe_id), *EXE_FIELDS)


async def error(store, name):
    return await store.errors.by_name(name)


@pytest.fixture
def job_type(make, io_loop):
    return io_loop.run_sync(lambda: make.job_type("worker", priority=50, max_tries=3))


@pytest.mark.gen_test
async def test_queue_pending_job(store, make, job_type):
    job = await make.pending(job_type)
    queued = await store.jobs.queue_job(job["id"], priority=7, command_arguments="-x", when=T0)
    exes = await store.jobs.exes_for_job(job["id"])
    assert len(exes) == 1
    exe = exes[0]
    assert fields(queued, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        "status": "QUEUED", "last_status_change": T0, "last_modified": T0, "queued": T0,
        "started": None, "ended": None, "num_exes": 1, "error_id": None,
        "latest_exe_id": exe["id"], "max_tries": 3, "priority": 7}
    assert fields(exe, "job_id", "job_type_id", "status", "created", "queued", "started",
                  "ended", "last_modified", "command_arguments", "timeout") == {
        "job_id": job["id"], "job_type_id": job_type["id"], "status": "QUEUED", "created": T0,
        "queued": T0, "started": None, "ended": None, "last_modified": T0,
        "command_arguments": "-x", "timeout": 1800}


@pytest.mark.gen_test
async def test_queue_keeps_priority_when_none_given(store, make, job_type):
    job = await make.pending(job_type)
    assert (await store.jobs.queue_job(job["id"], when=T0))["priority"] == 50


@pytest.mark.gen_test
async def test_queue_refuses_other_statuses_and_unknown_jobs(store, make, job_type):
    queued, _ = await make.queued(job_type)
    running, _ = await make.running(job_type)
    before = [await job_state(store, j["id"]) for j in (queued, running)]
    assert await store.jobs.queue_job(queued["id"]) is None
    assert await store.jobs.queue_job(running["id"]) is None
    assert await store.jobs.queue_job(999) is None
    assert [await job_state(store, j["id"]) for j in (queued, running)] == before
    assert await store.db.count("job_exes", {}) == 2


@pytest.mark.gen_test
async def test_submit_job_is_queued_with_one_execution(store, make, job_type):
    job, exe = await make.queued(job_type)
    state = await job_state(store, job["id"])
    assert state["status"] == "QUEUED" and state["num_exes"] == 1
    assert state["latest_exe_id"] == exe["id"]
    assert state["queued"] == state["last_status_change"] == state["last_modified"]
    assert (await exe_state(store, exe["id"]))["status"] == "QUEUED"


@pytest.mark.gen_test
async def test_start_execution(store, make, job_type):
    job, exe = await make.queued(job_type)
    scheduled = {"cpus_scheduled": 1.0, "mem_scheduled": 128.0}
    started_job, started_exe = await store.jobs.start_execution(exe["id"], 4, when=T1,
                                                                scheduled=scheduled)
    assert fields(started_job, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        **await job_state(store, job["id"]), "status": "RUNNING", "started": T1,
        "last_status_change": T1, "last_modified": T1, "ended": None, "num_exes": 1}
    assert fields(started_exe, *EXE_FIELDS, *scheduled) == {
        "status": "RUNNING", "queued": exe["queued"], "started": T1, "ended": None,
        "last_modified": T1, "node_id": 4, "error_id": None, **scheduled}
    assert await store.jobs.start_execution(exe["id"], 5) is None
    assert await store.jobs.start_execution(999, 5) is None
    assert (await exe_state(store, exe["id"]))["node_id"] == 4


@pytest.mark.gen_test
async def test_concurrent_starts_have_exactly_one_winner(store, make, job_type):
    job, exe = await make.queued(job_type)
    results = await asyncio.gather(*(store.jobs.start_execution(exe["id"], node, when=T1 + node)
                                     for node in (1, 2)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    won_job, won_exe = winners[0]
    assert (await exe_state(store, exe["id"]))["node_id"] == won_exe["node_id"]
    assert (await job_state(store, job["id"]))["started"] == won_job["started"] == T1 + \
        won_exe["node_id"]


@pytest.mark.gen_test
async def test_start_after_cancel_returns_none(store, make, job_type):
    job, exe = await make.queued(job_type)
    await store.jobs.cancel_job(job["id"], when=T1)
    assert await store.jobs.start_execution(exe["id"], 1, when=T2) is None
    assert await exe_state(store, exe["id"]) == {
        "status": "CANCELED", "queued": exe["queued"], "started": None, "ended": T1,
        "last_modified": T1, "node_id": None, "error_id": None}


@pytest.mark.gen_test
async def test_start_that_loses_to_a_cancel_mid_way_cancels_its_execution(store, make, job_type):
    """Cancel has changed the job but not yet reached its execution when start claims it."""
    job, exe = await make.queued(job_type)
    await store.db["jobs"].update_one({"id": job["id"]}, {"$set": {"status": "CANCELED"}})
    assert await store.jobs.start_execution(exe["id"], 1, when=T2) is None
    assert fields(await store.jobs.get_exe(exe["id"]), "status", "ended") == {
        "status": "CANCELED", "ended": T2}


@pytest.mark.gen_test
async def test_cancel_racing_start_leaves_both_canceled(store, make, job_type):
    job, exe = await make.queued(job_type)
    _, canceled = await asyncio.gather(store.jobs.start_execution(exe["id"], 1, when=T1),
                                             store.jobs.cancel_job(job["id"], when=T2))
    assert canceled["status"] == "CANCELED"
    assert (await job_state(store, job["id"]))["status"] == "CANCELED"
    assert (await exe_state(store, exe["id"]))["status"] == "CANCELED"


@pytest.mark.gen_test
async def test_update_execution_changes_no_status(store, make, job_type):
    job, exe = await make.running(job_type)
    updated = await store.jobs.update_execution(exe["id"], pre_started=T1, pre_exit_code=0)
    assert fields(updated, "status", "pre_started", "pre_exit_code") == {
        "status": "RUNNING", "pre_started": T1, "pre_exit_code": 0}
    assert updated["last_modified"] >= exe["last_modified"]
    assert (await job_state(store, job["id"]))["status"] == "RUNNING"
    assert await store.jobs.update_execution(999, pre_started=T1) is None
    with pytest.raises(ValueError, match="status changes only through a transition"):
        await store.jobs.update_execution(exe["id"], status="COMPLETED")
    assert (await exe_state(store, exe["id"]))["status"] == "RUNNING"


@pytest.mark.gen_test
async def test_complete_execution(store, make, job_type):
    job, exe = await make.running(job_type)
    results = {"version": "1.0", "output_data": [{"name": "out", "file_id": 3}]}
    done = await store.jobs.complete_execution(exe["id"], results, when=T3)
    assert fields(done, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        **await job_state(store, job["id"]), "status": "COMPLETED", "ended": T3,
        "last_status_change": T3, "last_modified": T3, "num_exes": 1, "error_id": None}
    assert done["results"] == results
    exe_doc = await store.jobs.get_exe(exe["id"])
    assert fields(exe_doc, "status", "ended", "last_modified", "results") == {
        "status": "COMPLETED", "ended": T3, "last_modified": T3, "results": results}
    assert await store.jobs.complete_execution(exe["id"], {}, when=T3) is None
    assert await store.jobs.complete_execution(999, {}) is None


@pytest.mark.gen_test
async def test_complete_refuses_a_queued_execution(store, make, job_type):
    job, exe = await make.queued(job_type)
    assert await store.jobs.complete_execution(exe["id"], {}) is None
    assert (await job_state(store, job["id"]))["status"] == "QUEUED"
    assert (await exe_state(store, exe["id"]))["status"] == "QUEUED"


@pytest.mark.gen_test
async def test_algorithm_failure_is_final(store, make, job_type):
    job, exe = await make.running(job_type, node_id=1)
    algorithm = await error(store, "algorithm-unknown")
    failed = await store.jobs.fail_execution(exe["id"], algorithm, when=T3)
    assert fields(failed, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        **await job_state(store, job["id"]), "status": "FAILED", "error_id": algorithm["id"],
        "ended": T3, "last_status_change": T3, "last_modified": T3, "num_exes": 1,
        "latest_exe_id": exe["id"]}
    assert await exe_state(store, exe["id"]) == {
        "status": "FAILED", "queued": exe["queued"], "started": exe["started"], "ended": T3,
        "last_modified": T3, "node_id": 1, "error_id": algorithm["id"]}
    assert await store.jobs.fail_execution(exe["id"], algorithm) is None
    assert await store.db.count("job_exes", {"job_id": job["id"]}) == 1


@pytest.mark.gen_test
async def test_system_failure_retries_in_one_status_change(store, make, job_type):
    job, exe = await make.running(job_type)
    system = await error(store, "node-lost")
    retried = await store.jobs.fail_execution(exe["id"], system, when=T3, command_arguments="-r")
    new_exe = (await store.jobs.exes_for_job(job["id"]))[0]
    assert new_exe["id"] != exe["id"]
    assert fields(retried, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        "status": "QUEUED", "last_status_change": T3, "last_modified": T3, "queued": T3,
        "started": None, "ended": None, "num_exes": 2, "error_id": None,
        "latest_exe_id": new_exe["id"], "max_tries": 3, "priority": 50}
    assert fields(new_exe, "status", "queued", "command_arguments") == {
        "status": "QUEUED", "queued": T3, "command_arguments": "-r"}
    assert fields(await store.jobs.get_exe(exe["id"]), "status", "error_id", "ended") == {
        "status": "FAILED", "error_id": system["id"], "ended": T3}


@pytest.mark.gen_test
async def test_system_failure_stops_retrying_at_max_tries(store, make):
    job_type = await make.job_type("twice", max_tries=2)
    job, exe = await make.running(job_type)
    system = await error(store, "database")
    assert (await store.jobs.fail_execution(exe["id"], system, when=T1))["status"] == "QUEUED"
    second = (await store.jobs.exes_for_job(job["id"]))[0]
    await store.jobs.start_execution(second["id"], 2, when=T2)
    failed = await store.jobs.fail_execution(second["id"], system, when=T3)
    assert fields(failed, "status", "num_exes", "error_id", "ended", "latest_exe_id") == {
        "status": "FAILED", "num_exes": 2, "error_id": system["id"], "ended": T3,
        "latest_exe_id": second["id"]}


@pytest.mark.gen_test
async def test_long_running_job_type_retries_any_error(store, make):
    job_type = await make.job_type("service", max_tries=1, is_long_running=True)
    _, exe = await make.running(job_type)
    retried = await store.jobs.fail_execution(exe["id"], await error(store, "timeout"), when=T3)
    assert fields(retried, "status", "num_exes", "error_id") == {
        "status": "QUEUED", "num_exes": 2, "error_id": None}


@pytest.mark.gen_test
async def test_failure_without_an_error_is_unknown(store, make, job_type):
    _, exe = await make.running(job_type)
    unknown = await error(store, "unknown")
    retried = await store.jobs.fail_execution(exe["id"], None, when=T3)
    assert retried["status"] == "QUEUED"
    assert (await store.jobs.get_exe(exe["id"]))["error_id"] == unknown["id"]


@pytest.mark.gen_test
async def test_fail_after_cancel_returns_none(store, make, job_type):
    job, exe = await make.running(job_type)
    await store.jobs.cancel_job(job["id"], when=T1)
    assert await store.jobs.fail_execution(exe["id"], await error(store, "unknown")) is None
    assert (await job_state(store, job["id"]))["status"] == "CANCELED"


@pytest.mark.gen_test
async def test_cancel_from_each_cancelable_status(store, make, job_type):
    pending = await make.pending(job_type)
    blocked = await make.pending(job_type)
    await store.db["jobs"].update_one({"id": blocked["id"]}, {"$set": {"status": "BLOCKED"}})
    queued, queued_exe = await make.queued(job_type)
    running, running_exe = await make.running(job_type)
    failed, failed_exe = await make.running(job_type)
    algorithm = await error(store, "algorithm-unknown")
    await store.jobs.fail_execution(failed_exe["id"], algorithm, when=T1)
    for job in (pending, blocked, queued, running, failed):
        canceled = await store.jobs.cancel_job(job["id"], when=T3)
        assert fields(canceled, "status", "ended", "last_status_change", "last_modified",
                      "error_id") == {"status": "CANCELED", "ended": T3,
                                      "last_status_change": T3, "last_modified": T3,
                                      "error_id": None}
    for exe in (queued_exe, running_exe):
        assert fields(await store.jobs.get_exe(exe["id"]), "status", "ended") == {
            "status": "CANCELED", "ended": T3}
    assert fields(await store.jobs.get_exe(failed_exe["id"]), "status", "ended", "error_id") == {
        "status": "FAILED", "ended": T1, "error_id": algorithm["id"]}


@pytest.mark.gen_test
async def test_cancel_refuses_final_jobs_and_unknown_ids(store, make, job_type):
    done, exe = await make.running(job_type)
    await store.jobs.complete_execution(exe["id"], {}, when=T1)
    with pytest.raises(InvalidTransition, match="has already completed, so it cannot be canceled"):
        await store.jobs.cancel_job(done["id"])
    pending = await make.pending(job_type)
    await store.jobs.cancel_job(pending["id"], when=T1)
    with pytest.raises(InvalidTransition, match="is already canceled"):
        await store.jobs.cancel_job(pending["id"], when=T2)
    assert (await job_state(store, pending["id"]))["ended"] == T1
    with pytest.raises(JobNotFound):
        await store.jobs.cancel_job(999)


@pytest.mark.gen_test
async def test_requeue_failed_job_gets_one_more_try(store, make, job_type):
    job, exe = await make.running(job_type)
    await store.jobs.fail_execution(exe["id"], await error(store, "timeout"), when=T1)
    requeued = await store.jobs.requeue_job(job["id"], priority=9, when=T2)
    new_exe = (await store.jobs.exes_for_job(job["id"]))[0]
    assert fields(requeued, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        "status": "QUEUED", "last_status_change": T2, "last_modified": T2, "queued": T2,
        "started": None, "ended": None, "num_exes": 2, "error_id": None,
        "latest_exe_id": new_exe["id"], "max_tries": 2, "priority": 9}
    assert new_exe["status"] == "QUEUED"


@pytest.mark.gen_test
async def test_requeue_canceled_job(store, make, job_type):
    job, _ = await make.running(job_type)
    await store.jobs.cancel_job(job["id"], when=T1)
    requeued = await store.jobs.requeue_job(job["id"], when=T2)
    assert fields(requeued, "status", "num_exes", "max_tries", "priority", "ended") == {
        "status": "QUEUED", "num_exes": 2, "max_tries": 2, "priority": 50, "ended": None}


@pytest.mark.gen_test
async def test_requeue_never_run_job_is_blocked(store, make, job_type):
    job = await make.pending(job_type)
    await store.jobs.cancel_job(job["id"], when=T1)
    blocked = await store.jobs.requeue_job(job["id"], priority=1, when=T2)
    assert fields(blocked, *JOB_FIELDS) == await job_state(store, job["id"]) == {
        "status": "BLOCKED", "last_status_change": T2, "last_modified": T2, "queued": None,
        "started": None, "ended": None, "num_exes": 0, "error_id": None, "latest_exe_id": None,
        "max_tries": 3, "priority": 50}
    assert await store.jobs.exes_for_job(job["id"]) == []


@pytest.mark.gen_test
async def test_requeue_refuses_unfinished_jobs(store, make, job_type):
    running, _ = await make.running(job_type)
    pending = await make.pending(job_type)
    assert await store.jobs.requeue_job(running["id"]) is None
    assert await store.jobs.requeue_job(pending["id"]) is None
    assert await store.jobs.requeue_job(999) is None
    assert (await job_state(store, running["id"]))["status"] == "RUNNING"


@pytest.mark.gen_test
async def test_jobs_and_executions_are_keyed_by_id(store, make, job_type):
    job, exe = await make.queued(job_type)
    raw_job = await store.db["jobs"].find_one({"id": job["id"]})
    raw_exe = await store.db["job_exes"].find_one({"id": exe["id"]})
    assert (raw_job["_id"], raw_exe["_id"]) == (job["id"], exe["id"])
    retried = await store.jobs.fail_execution(
        (await store.jobs.start_execution(exe["id"], 1))[1]["id"], await error(store, "nfs"))
    new_exe = await store.db["job_exes"].find_one({"id": retried["latest_exe_id"]})
    assert new_exe["_id"] == new_exe["id"]


async def unkeyed(store, collection: str, doc_id: int) -> dict:
    """Rewrite a document as a store from before `_id` = `id` (or a bulk writer leaving `_id`
    to the driver) left it: the same fields under a driver-made `_id`."""
    doc = await store.db[collection].find_one_and_delete({"_id": doc_id})
    del doc["_id"]
    await store.db[collection].insert_one(dict(doc))
    return doc


@pytest.mark.gen_test(timeout=60)
async def test_documents_without_their_id_as_key_are_rekeyed_once_at_startup(
        store, make, job_type, mongo_url):
    """Start-up gives each job, execution, event and file `_id` = `id` once, so the store finds
    them by `_id` alone, with two processes starting at once; later start-ups skip it."""
    job, exe = await make.queued(job_type)
    workspace = await store.files.create_workspace("raw", None, "/srv/raw")
    upload = await store.files.create_file(workspace["id"], "a.txt", "text/plain", 5, "a.txt")
    before = {"jobs": await unkeyed(store, "jobs", job["id"]),
              "job_exes": await unkeyed(store, "job_exes", exe["id"]),
              "trigger_events": await unkeyed(store, "trigger_events", job["event"]["id"]),
              "files": await unkeyed(store, "files", upload["id"])}
    assert await store.jobs.get_job(job["id"]) is None
    await store.db.db["migrations"].delete_many({})
    other = Store(mongo_url, store.db.db.name)
    try:
        await asyncio.gather(store.db.key_by_id(), other.open())
    finally:
        await other.close()
    for collection, doc in before.items():
        assert await store.db[collection].find({"id": doc["id"]}).to_list(None) == \
            [{"_id": doc["id"], **doc}], collection
    assert (await store.db.db["migrations"].find_one({"_id": "key_by_id"}))["at"] > 0
    started, _ = await store.jobs.start_execution(exe["id"], 3, when=T2)
    assert fields(started, "status", "started") == {"status": "RUNNING", "started": T2}
    assert list(await store.jobs.exes_by_ids([exe["id"]])) == [exe["id"]]
    assert (await store.jobs.get_event(job["event"]["id"]))["id"] == job["event"]["id"]
    assert (await store.files.get_file(upload["id"]))["file_name"] == "a.txt"

    later = await unkeyed(store, "jobs", job["id"])
    await store.db.prepare()
    assert (await store.db["jobs"].find_one({"id": later["id"]}))["_id"] != later["id"]


@pytest.mark.gen_test(timeout=60)
async def test_a_rekeying_stopped_between_its_delete_and_its_write_is_finished_at_startup(
        store, make, job_type):
    """The unique index on `id` (MongoDB, SecantusDB) makes rekeying delete a document before
    writing its keyed copy; a crash in between leaves the copy stashed, and the next start-up
    writes it."""
    job, _ = await make.queued(job_type)
    doc = await store.db["jobs"].find_one_and_delete({"_id": job["id"]})
    await store.db.db["migrations"].insert_one(
        {"_id": f"key_by_id jobs {job['id']}", "collection": "jobs", "doc": doc})
    await store.db.db["migrations"].delete_one({"_id": "key_by_id"})
    await store.db.prepare()
    assert await store.db["jobs"].find({"id": job["id"]}).to_list(None) == [doc]
    assert await store.db.db["migrations"].count_documents({"collection": "jobs"}) == 0


@pytest.mark.gen_test(timeout=120)
async def test_each_cancel_changes_exactly_its_own_job(store, make, job_type):
    """nx-27017 let `{"_id": X, "status": {"$in": [...]}}` update a neighbour of X when jobs
    were being added between cancels (the load benchmark's pattern)."""
    event = await store.jobs.create_event("USER", {"user": "t"})
    pick = random.Random(7)
    queued, chosen, ids = [], [], []
    for _ in range(20):
        added = await asyncio.gather(*(store.jobs.submit_job(job_type, {}, event, "")
                                       for _ in range(10)))
        queued += [job["id"] for job, _ in added]
        ids += [job["id"] for job, _ in added]
        for _ in range(5):
            job_id = queued.pop(pick.randrange(len(queued)))
            canceled = await store.jobs.cancel_job(job_id)
            assert (canceled["id"], canceled["status"]) == (job_id, "CANCELED")
            chosen.append(job_id)
    statuses = {job_id: (await store.jobs.get_job(job_id))["status"] for job_id in ids}
    assert statuses == {job_id: "CANCELED" if job_id in chosen else "QUEUED" for job_id in ids}


PAST = 1_000  # a change stamped before the job's last one: the same millisecond, or a clock behind


def stamps(job, *names):
    return {name: job[name] for name in ("last_status_change", "last_modified", *names)}


@pytest.mark.gen_test(timeout=60)
async def test_every_status_change_is_stamped_after_the_jobs_last_one(store, make, job_type):
    """The live feed and its clients drop a change whose (`id`, `last_status_change`) is not
    newer than one handed out before: a change made in the job's last millisecond, or by a
    server whose clock is behind, is stamped 1 ms after the job's last change instead, with
    the times it sets, on every transition's path."""
    system = await error(store, "node-lost")
    pending = await make.pending(job_type)
    last = pending["last_status_change"]

    queued = await store.jobs.queue_job(pending["id"], when=last)  # the same millisecond
    assert stamps(queued, "queued") == dict.fromkeys(
        ("last_status_change", "last_modified", "queued"), last + 1)
    started, _ = await store.jobs.start_execution(queued["latest_exe_id"], None, when=PAST)
    assert stamps(started, "started") == dict.fromkeys(
        ("last_status_change", "last_modified", "started"), last + 2)
    retried = await store.jobs.fail_execution(started["latest_exe_id"], system, when=PAST)
    assert (retried["status"], retried["last_status_change"], retried["queued"]) == \
        ("QUEUED", last + 3, last + 3)
    [claimed] = await store.jobs.start_executions(
        [(retried["latest_exe_id"], retried["id"], {})], None, when=PAST)
    assert claimed[0]["last_status_change"] == claimed[0]["started"] == last + 4
    canceled = await store.jobs.cancel_job(pending["id"], when=PAST)  # the one-command path
    assert (canceled["status"], canceled["last_status_change"], canceled["ended"]) == \
        ("CANCELED", last + 5, last + 5)
    assert (await store.jobs.get_job(pending["id"]))["last_status_change"] == last + 5
    requeued = await store.jobs.requeue_job(pending["id"], when=PAST)
    assert requeued["last_status_change"] == requeued["queued"] == last + 6
    running, exe = await make.running(job_type)
    done = await store.jobs.complete_execution(exe["id"], {}, when=PAST)
    assert (done["status"], done["last_status_change"], done["ended"]) == \
        ("COMPLETED", running["last_status_change"] + 1, running["last_status_change"] + 1)

    never_ran = await make.pending(job_type)
    canceled = await store.jobs.cancel_job(never_ran["id"], when=PAST)  # PENDING: general path
    assert canceled["last_status_change"] == never_ran["last_status_change"] + 1
    blocked = await store.jobs.requeue_job(never_ran["id"], when=PAST)
    assert (blocked["status"], blocked["last_status_change"]) == \
        ("BLOCKED", never_ran["last_status_change"] + 2)


@pytest.mark.gen_test(timeout=60)
async def test_a_group_of_changes_is_stamped_after_each_jobs_last_one(store, make, job_type):
    """The engine's grouped claims and completions (one bulk write): each job in the group
    that was changed in that millisecond, or later, is written again 1 ms after its own last
    change, and only that job."""
    pairs = [await make.queued(job_type) for _ in range(5)]
    claimed = await store.jobs.start_executions(
        [(exe["id"], job["id"], {}) for job, exe in pairs], None, when=PAST)
    assert [(job["id"], job["status"], job["last_status_change"], job["started"])
            for job, _ in claimed] == [  # type: ignore[misc]
        (job["id"], "RUNNING", job["last_status_change"] + 1, job["last_status_change"] + 1)
        for job, _ in pairs]
    now = await asyncio.gather(*(store.jobs.complete_execution(exe["id"], {}, when=T3)
                                 for _, exe in pairs[:2]))
    late = await asyncio.gather(*(store.jobs.complete_execution(exe["id"], {}, when=PAST)
                                  for _, exe in pairs[2:]))
    assert [job["last_status_change"] for job in now] == [T3, T3]
    assert [job["last_status_change"] for job in late] == [
        job["last_status_change"] + 1 for job, _ in claimed[2:]]  # type: ignore[index]
    for job, _ in pairs:
        assert (await store.jobs.get_job(job["id"]))["status"] == "COMPLETED"

