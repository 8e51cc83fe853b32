"""What the Slurm tests read from the cluster and wait for."""

import asyncio
import re

from tests.waiting import wait_for


def scontrol(cluster, job_id: str) -> dict[str, str]:
    out = cluster.run("scontrol", "-o", "show", "job", str(job_id))
    return dict(re.findall(r"(\S+?)=(\S*)", out))


async def slurm_job_of(store, job_id) -> tuple[dict, str]:
    """The job's latest execution once its Slurm job id is recorded, and that id."""
    async def check():
        job = await store.jobs.get_job(job_id)
        exe = await store.jobs.get_exe(job["latest_exe_id"]) if job["latest_exe_id"] else None
        return exe if exe and (exe.get("process") or {}).get("job_id") else None
    exe = await wait_for(check, f"job {job_id} to be submitted to Slurm")
    return exe, exe["process"]["job_id"]


async def wait_slurm(cluster, job_id, *states, deadline=60.0) -> dict:
    async def check():
        info = await asyncio.to_thread(scontrol, cluster, job_id)
        return info if info["JobState"] in states else None
    return await wait_for(check, f"Slurm job {job_id} to be {'/'.join(states)}", deadline)
