"""Seeding for page tests: job types and jobs through the REST API, status changes and old jobs
through the store."""

from core.times import now_ms

INTERFACE = {"version": "1.0", "command": "run.sh", "command_arguments": "${value}",
             "input_data": [{"name": "value", "type": "property", "required": False}],
             "output_data": []}


class Seeder:
    def __init__(self, api, store, value: str | None = None):
        """`value`: the optional `value` input every job gets unless told otherwise."""
        self.api = api
        self.store = store
        self.value = value

    async def job_type(self, name: str, version: str = "1.0", **fields) -> dict:
        status, body, _ = await self.api.post("/job-types/", {
            "name": name, "version": version, "interface": INTERFACE, **fields})
        assert status == 201, body
        return body

    async def job(self, job_type: dict, value: str | None = None) -> dict:
        value = self.value if value is None else value
        inputs = [] if value is None else [{"name": "value", "value": value}]
        status, body, _ = await self.api.post("/queue/new-job/", {
            "job_type_id": job_type["id"], "job_data": {"input_data": inputs}})
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

    async def old_job(self, job_type: dict, age_ms: int) -> int:
        """A PENDING job last modified `age_ms` ago, bulk-inserted as the seeders do."""
        jt = await self.store.job_types.get(job_type["id"])
        event = await self.store.jobs.create_event("USER", {"user": "seed"})
        job_id = await self.store.db.next_id("jobs")
        doc = self.store.jobs.new_job_doc(job_id, jt, {}, event, now_ms() - age_ms)
        await self.store.db["jobs"].insert_many([doc])
        return job_id
