"""Seeding through the REST API (job types, submitted jobs) and the store's transitions."""

import pytest

INTERFACE = {"version": "1.0", "command": "run.sh", "command_arguments": "${value}",
             "input_data": [{"name": "value", "type": "property", "required": False}],
             "output_data": []}


class Seeder:
    def __init__(self, api, store):
        self.api = api
        self.store = store

    async def job_type(self, name: str, version: str = "1.0", **fields) -> dict:
        status, body, _ = await self.api.post("/job-types/", {
            "name": name, "version": version, "interface": INTERFACE, **fields})
        assert status == 201, body
        return body

    async def job(self, job_type: dict, value: str = "x") -> dict:
        status, body, _ = await self.api.post("/queue/new-job/", {
            "job_type_id": job_type["id"],
            "job_data": {"input_data": [{"name": "value", "value": value}]}})
        assert status == 201, body
        return body

    async def run(self, job: dict) -> int:
        """QUEUED → RUNNING through the store; returns the execution id."""
        exe_id = job["job_exes"][0]["id"]
        assert await self.store.jobs.start_execution(exe_id, None) is not None
        return exe_id

    async def complete(self, job: dict) -> None:
        exe_id = await self.run(job)
        assert await self.store.jobs.complete_execution(exe_id, {"output_data": []}) is not None


@pytest.fixture
def seed(api, store):
    return Seeder(api, store)
