"""Group commit of the engine's status changes (JobStore.apply_transitions): claims and
completions made together are written in a few store commands, each change still exactly once,
also when two server processes (two clients) claim the same executions at once."""

import asyncio

import pytest
from pymongo import monitoring
from pymongo.errors import PyMongoError

from store import Store

T1, T2 = 2_000_000_001_000, 2_000_000_002_000
GROUP = 12


class Commands(monitoring.CommandListener):
    """The names of the commands one client sent."""

    def __init__(self):
        self.names: list[str] = []

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def job_type(make, io_loop):
    return io_loop.run_sync(lambda: make.job_type("grouped", max_tries=3))


@pytest.fixture
def second(store, mongo_url, io_loop):
    """A second server process's store: its own client on the same database, counting its
    commands."""
    commands = Commands()
    other = Store(mongo_url, store.db.db.name, listeners=[commands])
    io_loop.run_sync(other.open)
    other.commands = commands
    yield other
    io_loop.run_sync(other.close)


def claims(pairs):
    return [(exe["id"], job["id"], {"engine": {"id": "test"}}) for job, exe in pairs]


@pytest.mark.gen_test(timeout=120)
async def test_two_servers_claiming_the_same_group_start_each_execution_once(
        store, second, make, job_type):
    pairs = [await make.queued(job_type) for _ in range(GROUP)]
    second.commands.names.clear()
    ours, theirs = await asyncio.gather(store.jobs.start_executions(claims(pairs), 1, T1),
                                        second.jobs.start_executions(claims(pairs), 2, T2))
    assert len(second.commands.names) <= 4 + 2  # one group: two bulk writes, two reads (+ retries)
    for (job, exe), mine, other in zip(pairs, ours, theirs, strict=True):
        assert (mine is None) != (other is None), f"execution {exe['id']} claimed twice or never"
        won_job, won_exe = mine or other
        node, when = (1, T1) if mine else (2, T2)
        stored_job = await store.jobs.get_job(job["id"])
        stored_exe = await store.jobs.get_exe(exe["id"])
        assert (stored_exe["status"], stored_exe["node_id"], stored_exe["started"]) == \
            ("RUNNING", node, when)
        assert (stored_job["status"], stored_job["started"], stored_job["last_status_change"]) \
            == ("RUNNING", when, when)
        assert (won_job["id"], won_job["status"], won_exe["id"], won_exe["node_id"]) == \
            (job["id"], "RUNNING", exe["id"], node)


@pytest.mark.gen_test(timeout=120)
async def test_completions_made_together_are_written_as_a_group(store, second, make, job_type):
    pairs = [await make.queued(job_type) for _ in range(GROUP)]
    claimed = await second.jobs.start_executions(claims(pairs), 1, T1)
    assert all(claimed)
    second.commands.names.clear()
    done = await asyncio.gather(*(second.jobs.complete_execution(
        exe["id"], {"n": n}, when=T2, exe_fields={"job_exit_code": 0}, job_id=job["id"])
        for n, (job, exe) in enumerate(pairs)))
    # All twelve in one group: two bulk updates and a read of the jobs; one by one they would
    # take two findAndModify each.
    assert second.commands.names == ["update", "update", "find"], second.commands.names
    for n, ((job, exe), written) in enumerate(zip(pairs, done, strict=True)):
        assert (written["id"], written["status"], written["results"], written["ended"]) == \
            (job["id"], "COMPLETED", {"n": n}, T2)
        stored = await store.jobs.get_exe(exe["id"])
        assert (stored["status"], stored["ended"], stored["job_exit_code"], stored["results"]) \
            == ("COMPLETED", T2, 0, {"n": n})
        assert (await store.jobs.get_job(job["id"]))["status"] == "COMPLETED"
    # Each change is made once: completing again changes nothing.
    assert await second.jobs.complete_execution(pairs[0][1]["id"], {}, job_id=pairs[0][0]["id"]) \
        is None


@pytest.mark.gen_test(timeout=120)
async def test_a_claim_whose_job_was_canceled_meanwhile_cancels_its_execution(
        store, make, job_type):
    (job, exe), (kept_job, kept_exe) = [await make.queued(job_type) for _ in range(2)]
    await store.db["jobs"].update_one({"_id": job["id"]}, {"$set": {"status": "CANCELED"}})
    lost, won = await store.jobs.start_executions(claims([(job, exe), (kept_job, kept_exe)]), 1,
                                                  T1)
    assert lost is None and won is not None
    assert ((await store.jobs.get_exe(exe["id"]))["status"],
            (await store.jobs.get_exe(kept_exe["id"]))["status"]) == ("CANCELED", "RUNNING")


@pytest.mark.gen_test(timeout=120)
async def test_a_change_the_store_refuses_in_a_group_fails_only_its_caller(store, make, job_type):
    """A unique sparse index on `results.n` and a document holding n = 2 make the store refuse
    that one job write; the others of its group are made."""
    pairs = [await make.running(job_type) for _ in range(3)]
    await store.db["jobs"].insert_one({"_id": 10**9, "id": 10**9, "results": {"n": 2}})
    await store.db["jobs"].create_index("results.n", unique=True, sparse=True)
    outcomes = await asyncio.gather(*(store.jobs.complete_execution(
        exe["id"], {"n": n}, when=T1, job_id=job["id"]) for n, (job, exe) in enumerate(pairs)),
        return_exceptions=True)
    assert [o["status"] for o in outcomes[:2]] == ["COMPLETED", "COMPLETED"]
    assert isinstance(outcomes[2], PyMongoError)
    (job, exe) = pairs[2]
    # Its execution's change stands, as after a failed second write (recovery finishes it).
    assert ((await store.jobs.get_job(job["id"]))["status"],
            (await store.jobs.get_exe(exe["id"]))["status"]) == ("RUNNING", "COMPLETED")
