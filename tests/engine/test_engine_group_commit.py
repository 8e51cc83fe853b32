"""A job's completion and the claim of the job that takes its room are written in one group
(store/jobs.py COMMIT_WINDOW): the engine gives the room away while the completion waits for its
commit, so a full node costs one group of store commands per job, not one per transition."""

import itertools
import uuid

import pytest
from pymongo import monitoring

from store import Store
from tests.waiting import wait_job

JOBS = 4


class ExeUpdates(monitoring.CommandListener):
    """Each status write sent on job_exes (an `update` of a group, a findAndModify of a group
    of one), as {execution id: status it sets}."""

    def __init__(self):
        self.groups: list[dict[int, str]] = []

    def started(self, event):
        command = event.command
        if event.command_name == "update" and command.get("update") == "job_exes":
            changes = [(u["q"], u["u"]) for u in command["updates"]]
        elif event.command_name == "findAndModify" and command.get("findAndModify") == "job_exes":
            changes = [(command["query"], command["update"])]
        else:
            return
        group = {query["_id"]: update["$set"]["status"] for query, update in changes
                 if "status" in update.get("$set", {})}
        if group:
            self.groups.append(group)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def updates():
    return ExeUpdates()


@pytest.fixture
def store(mongo_url, io_loop, updates):
    """tests/fixtures.py's store, with `updates` listening on its clients."""
    store = Store(mongo_url, f"test_{uuid.uuid4().hex[:12]}", listeners=[updates])
    io_loop.run_sync(store.open)
    yield store
    io_loop.run_sync(lambda: store.db.client.drop_database(store.db.db.name))
    io_loop.run_sync(store.close)


@pytest.mark.gen_test(timeout=120)
async def test_a_completion_and_the_next_claim_are_written_in_one_group(
        store, make, start_engine, updates):
    job_type = await make.command_type("one-at-a-time", "true", cpus_required=1.0)
    pairs = [await make.queued(job_type) for _ in range(JOBS)]
    await start_engine(cpus=1.0)  # room for one job at a time
    for job, _ in pairs:
        await wait_job(store, job["id"], "COMPLETED")

    exe_ids = [exe["id"] for _, exe in pairs]
    for ended, claimed in itertools.pairwise(exe_ids):
        assert any(group.get(ended) == "COMPLETED" and group.get(claimed) == "RUNNING"
                   for group in updates.groups), \
            f"execution {ended}'s completion and {claimed}'s claim were not written together: " \
            f"{updates.groups}"
    for exe_id in exe_ids:  # each transition written once
        assert [g[exe_id] for g in updates.groups if exe_id in g] == ["RUNNING", "COMPLETED"]
