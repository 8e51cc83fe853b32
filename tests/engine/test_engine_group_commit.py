"""The engine's store commands per job: a job's completion and the claim of the job that takes
its room are written in one group (store/jobs.py COMMIT_WINDOW), the engine giving the room
away while the completion waits for its commit; and a pass on a node its own running jobs fill
reads nothing."""

import itertools

import pytest

from tests.commands import Commands
from tests.waiting import wait_job, wait_passes

JOBS = 4


def exe_status_writes(commands: Commands) -> list[dict[int, str]]:
    """Each status write sent on job_exes (an `update` of a group, a findAndModify of a group of
    one), as {execution id: status it sets}."""
    groups = []
    for name, collection, command in commands.sent:
        if collection != "job_exes" or name not in ("update", "findAndModify"):
            continue
        changes = ([(u["q"], u["u"]) for u in command["updates"]] if name == "update"
                   else [(command["query"], command["update"])])
        group = {query["_id"]: update["$set"]["status"] for query, update in changes
                 if "status" in update.get("$set", {})}
        if group:
            groups.append(group)
    return groups


@pytest.fixture
def store_listeners(commands):
    """tests/fixtures.py's store, with `commands` listening on its clients."""
    return [commands]


@pytest.mark.alone  # timing: the claim must come within the completion's 20 ms commit window
@pytest.mark.gen_test(timeout=120)
async def test_a_completion_and_the_next_claim_are_written_in_one_group(
        store, make, start_engine, commands):
    job_type = await make.command_type("one-at-a-time", "true", cpus_required=1.0)
    pairs = [await make.queued(job_type) for _ in range(JOBS)]
    await start_engine(cpus=1.0)  # room for one job at a time
    for job, _ in pairs:
        await wait_job(store, job["id"], "COMPLETED")

    groups = exe_status_writes(commands)
    exe_ids = [exe["id"] for _, exe in pairs]
    for ended, claimed in itertools.pairwise(exe_ids):
        assert any(group.get(ended) == "COMPLETED" and group.get(claimed) == "RUNNING"
                   for group in groups), \
            f"execution {ended}'s completion and {claimed}'s claim were not written together: " \
            f"{groups}"
    for exe_id in exe_ids:  # each transition written once
        assert [g[exe_id] for g in groups if exe_id in g] == ["RUNNING", "COMPLETED"]


@pytest.mark.gen_test(timeout=120)
async def test_a_pass_on_a_node_full_of_its_own_jobs_reads_nothing(
        store, make, start_engine, commands):
    job_type = await make.command_type("sleeper", "sleep", "30", cpus_required=1.0)
    running, _ = await make.queued(job_type)
    waiting, _ = await make.queued(job_type)
    engine = await start_engine(cpus=1.0)
    await wait_job(store, running["id"], "RUNNING")
    await wait_passes(engine, 1)

    commands.sent.clear()
    await wait_passes(engine, 5)
    pass_reads = [(name, collection) for name, collection, _ in commands.sent
                  if (name, collection) in (("find", "jobs"), ("aggregate", "job_exes"),
                                            ("find", "job_types"))]
    assert pass_reads == []
    assert (await store.jobs.get_job(waiting["id"]))["status"] == "QUEUED"

    await store.jobs.cancel_job(running["id"])  # its room frees: the waiting job starts
    await wait_job(store, waiting["id"], "RUNNING")


def queue_reads(commands: Commands) -> list[int]:
    """The `limit` of each read of the QUEUED jobs (a scheduling pass's first command)."""
    return [command.get("limit") for name, collection, command in commands.sent
            if (name, collection) == ("find", "jobs")
            and command.get("filter") == {"status": {"$eq": "QUEUED"}}]


@pytest.mark.gen_test(timeout=120)
async def test_a_pass_reads_only_as_many_queued_jobs_as_could_fit(
        store, make, start_engine, commands):
    job_type = await make.command_type("sleeper", "sleep", "30", cpus_required=1.0)
    jobs = [(await make.queued(job_type))[0] for _ in range(12)]
    # 2 CPUs: at most 8 jobs of MIN_CPUS (0.25) could fit, and the 2 that start fill it.
    await start_engine(cpus=2.0, mem=4096)
    for job in jobs[:2]:
        await wait_job(store, job["id"], "RUNNING")
    reads = queue_reads(commands)
    assert reads and max(reads) <= 8, reads
    assert [(await store.jobs.get_job(job["id"]))["status"] for job in jobs[2:]] == \
        ["QUEUED"] * 10


@pytest.mark.gen_test(timeout=120)
async def test_a_short_read_that_skips_paused_jobs_reads_on(store, make, start_engine):
    paused = await make.command_type("paused", "sleep", "30", cpus_required=1.0)
    held = [(await make.queued(paused))[0] for _ in range(6)]
    await store.job_types.update(paused, {"is_paused": True}, None)
    active = await make.command_type("active", "true", cpus_required=1.0)
    ready, _ = await make.queued(active)  # ranked after the 6, past a read of 4 (1 CPU)
    await start_engine(cpus=1.0, mem=4096)
    await wait_job(store, ready["id"], "COMPLETED")
    assert {(await store.jobs.get_job(job["id"]))["status"] for job in held} == {"QUEUED"}
