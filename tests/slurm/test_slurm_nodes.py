"""The Slurm cluster's nodes through the API and dashboards, where each execution ran, jobs no
node can take, memory enforcement and the live feed, on the real two-node cluster of the
`slurm_cluster` fixture (n1 and n2, 2 CPUs and 1024 MiB each)."""

import re
from pathlib import Path

import pytest

from slurm.cluster import CGROUP_V1_MEMORY, memory_limits
from tests.engine.test_engine_failures import error_name, exes_of
from tests.live_client import Subscriber, until_live
from tests.slurm.slurm_helpers import scontrol, slurm_job_of, wait_slurm
from tests.waiting import PY, wait_for, wait_job, wait_passes

pytestmark = pytest.mark.alone

SLEEP = "-c 'import time; time.sleep(float(__import__(\"sys\").argv[1]))' ${seconds}"
SECONDS = [{"name": "seconds", "type": "property"}]


async def slurm_nodes(api) -> dict[str, dict]:
    """GET /nodes/'s Slurm nodes by name, once the engine has recorded both."""
    async def check():
        status, body, _ = await api.get("/nodes/")
        assert status == 200
        found = {n["hostname"]: n for n in body["results"] if n["slurm_state"] is not None}
        return found if set(found) == {"n1", "n2"} else None
    return await wait_for(check, "GET /nodes/ to list n1 and n2")


async def sleeper(make, name: str):
    return await make.command_type(name, PY, SLEEP, inputs=SECONDS, cpus_required=2.0)


async def run_on_nodes(make, store, job_type, count: int, seconds: str) -> list[str]:
    """Submit `count` jobs of a node's size at once; the node each ran on (Slurm's NodeList)."""
    jobs = [await make.submit(job_type, inputs=[{"name": "seconds", "value": seconds}])
            for _ in range(count)]
    nodes = []
    for job in jobs:
        await wait_job(store, job["id"], "COMPLETED")
        [exe] = await exes_of(store, job["id"])
        nodes.append(exe["process"]["node"])
    return nodes


@pytest.mark.gen_test(timeout=180)
async def test_nodes_lists_the_slurm_nodes_and_a_node_drained_through_the_api_takes_no_job(
        api, make, store, start_engine, slurm_cluster):
    await start_engine()
    nodes = await slurm_nodes(api)
    n1 = nodes["n1"]
    assert (n1["slurm_state"], n1["is_paused"], n1["pause_reason"], n1["is_active"],
            n1["slave_id"], n1["capacity"]) == ("idle", False, None, True, "slurm:n1",
                                                 {"cpus": 2.0, "mem": 1024.0})
    try:
        status, body, _ = await api.patch(f"/nodes/{n1['id']}/",
                                          {"is_paused": True, "pause_reason": "disk swap"})
        assert status == 200, body
        assert (body["id"], body["is_paused"], body["pause_reason"], body["slurm_state"]) == \
            (n1["id"], True, "disk swap", "drained")
        assert slurm_cluster.run("sinfo", "-h", "-n", "n1", "-o", "%T|%E").strip() == \
            "drained|disk swap"
        _, overview, _ = await api.get("/dashboard/overview/live")
        assert "paused: disk swap <span class=\"subtle\" data-slurm-state>(Slurm: drained)" \
            in overview

        # Each job takes a whole node: with n1 drained both run on n2, one after the other.
        job_type = await sleeper(make, "whole-node")
        assert await run_on_nodes(make, store, job_type, 2, "0.5") == ["n2", "n2"]

        status, body, _ = await api.patch(f"/nodes/{n1['id']}/", {"is_paused": False})
        assert status == 200, body
        # Just resumed, Slurm may mark it not responding (*) until its next ping of the node.
        assert (body["is_paused"], body["pause_reason"], body["slurm_state"].rstrip("*")) == \
            (False, None, "idle")
        assert slurm_cluster.run("sinfo", "-h", "-n", "n1", "-o", "%T|%E").strip() in \
            ("idle|none", "idle*|none")

        async def responding():
            return (await slurm_nodes(api))["n1"]["slurm_state"] == "idle"
        await wait_for(responding, "n1 to be idle again")
        # Resumed: two at once take both nodes.
        assert sorted(await run_on_nodes(make, store, job_type, 2, "3")) == ["n1", "n2"]
    finally:
        slurm_cluster.run("scontrol", "update", "nodename=n1", "state=resume", check=False)


@pytest.mark.gen_test(timeout=120)
async def test_a_node_drained_outside_jobdeck_shows_paused_with_slurms_reason(
        api, start_engine, slurm_cluster):
    await start_engine()
    await slurm_nodes(api)
    slurm_cluster.run("scontrol", "update", "nodename=n2", "state=drain", "reason=by admin")
    try:
        async def drained():
            found = await slurm_nodes(api)
            return found["n2"] if found["n2"]["is_paused"] else None
        n2 = await wait_for(drained, "n2 to show drained")
        assert (n2["slurm_state"], n2["pause_reason"]) == ("drained", "by admin")
    finally:
        slurm_cluster.run("scontrol", "update", "nodename=n2", "state=resume", check=False)


@pytest.mark.gen_test(timeout=120)
async def test_an_execution_shows_its_slurm_job_id_and_node_while_it_runs_and_after(
        api, make, store, start_engine, slurm_cluster):
    job_type = await make.command_type("placed", PY, SLEEP, inputs=SECONDS)
    job = await make.submit(job_type, inputs=[{"name": "seconds", "value": "4"}])
    await start_engine()
    exe, slurm_id = await slurm_job_of(store, job["id"])
    node = (await wait_slurm(slurm_cluster, slurm_id, "RUNNING"))["NodeList"]

    async def placed():
        _, body, _ = await api.get(f"/job-executions/{exe['id']}/")
        return body if body["status"] == "RUNNING" and body["cluster_node"] else None
    running = await wait_for(placed, "the running execution to show its node")
    assert (running["cluster_job_id"], running["cluster_node"]) == (slurm_id, node)

    await wait_job(store, job["id"], "COMPLETED")
    _, details, _ = await api.get(f"/job-executions/{exe['id']}/")
    _, rows, _ = await api.get(f"/job-executions/?job_id={job['id']}")
    _, job_details, _ = await api.get(f"/jobs/{job['id']}/")
    for shown in (details, rows["results"][0], job_details["job_exes"][0]):
        assert (shown["id"], shown["cluster_job_id"], shown["cluster_node"]) == \
            (exe["id"], slurm_id, node)
    _, document, _ = await api.get("/openapi.json")
    fields = document["components"]["schemas"]["JobExecutionBase"]["properties"]
    assert fields["cluster_job_id"]["type"] == fields["cluster_node"]["type"] == \
        ["string", "null"]


@pytest.mark.gen_test(timeout=120)
async def test_a_job_no_node_can_take_stays_queued_and_says_why(api, make, store,
                                                                start_engine):
    too_many_cpus = await make.command_type("big", "true", cpus_required=3.0, mem_required=200.0)
    too_much_mem = await make.command_type("fat", "true", mem_required=2000.0)
    small = await make.command_type("small", "true")
    waiting = [await make.submit(too_many_cpus), await make.submit(too_much_mem)]
    fine = await make.submit(small)
    engine = await start_engine()
    await wait_job(store, fine["id"], "COMPLETED")
    await wait_passes(engine)
    reasons = []
    for job in waiting:
        assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"
        [exe] = await exes_of(store, job["id"])
        assert (exe["status"], exe.get("process")) == ("QUEUED", None)
        _, details, _ = await api.get(f"/jobs/{job['id']}/")
        assert details["status"] == "QUEUED"
        reasons.append(details["queued_reason"])
    assert reasons == [
        ("Waiting: it needs 3 CPUs and 200 MiB, more than any cluster node has (the largest, "
         "n1, has 2 CPUs and 1024 MiB)."),
        ("Waiting: it needs 1 CPU and 2000 MiB, more than any cluster node has (the largest, "
         "n1, has 2 CPUs and 1024 MiB).")]
    _, done, _ = await api.get(f"/jobs/{fine['id']}/")
    assert done["queued_reason"] is None
    _, page, _ = await api.get("/dashboard/queue")
    for reason in reasons:
        assert f"<span class=\"subtle\" data-queued-reason>{reason}</span>" in page
    _, job_page, _ = await api.get(f"/dashboard/jobs/{waiting[0]['id']}")
    assert f'<dd data-field="queued_reason">{reasons[0]}</dd>' in job_page
    assert engine._loop_task is not None and not engine._loop_task.done()


@pytest.mark.skipif(not memory_limits(), reason=f"no cgroup v1 memory controller at "
                    f"{CGROUP_V1_MEMORY}: the test cluster cannot enforce jobs' memory")
@pytest.mark.gen_test(timeout=120)
async def test_a_job_over_its_memory_fails_out_of_memory(api, make, store, start_engine,
                                                         slurm_cluster):
    grow = ("-c 'b = bytearray(400 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096]); "
            "print(\"survived\")'")
    job_type = await make.command_type("grows", PY, grow, mem_required=128.0, max_tries=3)
    job = await make.submit(job_type)
    await start_engine()
    done = await wait_job(store, job["id"], "FAILED")
    assert done["num_exes"] == 1  # a DATA error: not retried
    assert await error_name(store, done["error_id"]) == "out-of-memory"
    [exe] = await exes_of(store, job["id"])
    slurm_id = exe["process"]["job_id"]
    info = scontrol(slurm_cluster, slurm_id)
    assert (info["JobState"], info["MinMemoryNode"]) == ("OUT_OF_MEMORY", "128M")
    _, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert logs["stdout"] == ""
    assert f"jobdeck: Slurm job {slurm_id} on {info['NodeList']} ended OUT_OF_MEMORY\n" in \
        logs["stderr"]


@pytest.mark.gen_test(timeout=120)
async def test_a_live_subscriber_sees_a_slurm_job_queued_running_completed(
        base_url, hub, make, store, start_engine):
    job_type = await make.command_type("followed", PY, SLEEP, inputs=SECONDS)
    subscriber = await Subscriber.connect(base_url)
    try:
        await until_live(hub, 1)
        job = await make.submit(job_type, inputs=[{"name": "seconds", "value": "1.5"}])
        await subscriber.until_row(job["id"], "QUEUED")
        await start_engine()
        await subscriber.until_row(job["id"], "COMPLETED")
        seen = [r["status"] for r in subscriber.rows if r["id"] == job["id"]]
        assert seen == ["QUEUED", "RUNNING", "COMPLETED"]
    finally:
        subscriber.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_drain_slurm_cannot_make_is_a_503_naming_the_node_and_changes_nothing(
        api, start_engine, slurm_cluster, tmp_path, monkeypatch):
    await start_engine()
    n1 = (await slurm_nodes(api))["n1"]
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=1",
                           Path(slurm_cluster.env["SLURM_CONF"]).read_text()))
    monkeypatch.setenv("SLURM_CONF", str(dead))
    status, body, headers = await api.patch(f"/nodes/{n1['id']}/", {"is_paused": True})
    assert status == 503
    assert headers["Content-Type"].startswith("text/plain")
    assert body == ("scontrol could not drain Slurm node n1: slurm_update error: Unable to "
                    "contact slurm controller (connect failure)\n")
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    assert slurm_cluster.run("sinfo", "-h", "-n", "n1", "-o", "%T").strip() == "idle"
    _, node, _ = await api.get(f"/nodes/{n1['id']}/")
    assert (node["is_paused"], node["slurm_state"]) == (False, "idle")


NODE_ROW = re.compile(r'<th scope="row" data-label="Node">([^<]+)</th>\s*<td data-label="State">'
                      r'.*?</td>\s*<td class="num" data-label="Running">(\d+)</td>\s*'
                      r'<td class="num" data-label="CPU in use">([^<]+)</td>')


async def overview_use(api) -> dict[str, tuple[str, str]]:
    """The overview's Nodes card: {node: (running, CPU in use)}."""
    status, page, _ = await api.get("/")
    assert status == 200
    return {name: (running, cpus) for name, running, cpus in NODE_ROW.findall(page)}


@pytest.mark.gen_test(timeout=120)
async def test_the_overview_and_counts_show_each_slurm_nodes_running_jobs(
        api, make, store, start_engine, slurm_cluster):
    """Two node-sized jobs run one on each Slurm node: each node's row counts its own job (not
    the engine's node), from the kept counts, while they run; all back to 0 once they end."""
    job_type = await sleeper(make, "per-node")
    jobs = [await make.submit(job_type, inputs=[{"name": "seconds", "value": "8"}])
            for _ in range(2)]
    engine = await start_engine()
    nodes = await slurm_nodes(api)

    async def placed():
        use = await store.counts.read()
        by_node = use.node_use()
        found = {name: by_node.get(node["id"], {}) for name, node in nodes.items()}
        return found if all(u.get("running") == 1 for u in found.values()) else None
    use = await wait_for(placed, "each Slurm node to count one running job")
    assert {name: (u["running"], u["cpus"]) for name, u in use.items()} == \
        {"n1": (1, 2.0), "n2": (1, 2.0)}
    assert (await store.counts.read()).node_use().get(engine.node_id, {}).get("running", 0) == 0
    shown = await overview_use(api)
    assert (shown["n1"], shown["n2"]) == (("1", "2.0 of 2.0"), ("1", "2.0 of 2.0")), shown
    ran_on = sorted([(await exes_of(store, job["id"]))[0]["process"]["node"] for job in jobs])
    assert ran_on == ["n1", "n2"]

    for job in jobs:
        await wait_job(store, job["id"], "COMPLETED")
    shown = await overview_use(api)
    assert (shown["n1"], shown["n2"]) == (("0", "0 of 2.0"), ("0", "0 of 2.0")), shown


@pytest.mark.gen_test(timeout=240)
async def test_an_engine_on_a_machine_named_like_a_slurm_node_keeps_a_node_of_its_own(
        api, make, store, start_engine, slurm_cluster):
    """The server's machine is named n1, as a Slurm node is: the engine's node and Slurm's n1
    are two records, each paused on its own; jobs run, and executions and node counts name the
    Slurm node."""
    engine = await start_engine(hostname="n1")
    n1 = (await slurm_nodes(api))["n1"]
    _, listed, _ = await api.get("/nodes/")
    assert sorted((n["id"], n["slave_id"], n["slurm_state"], n["is_paused"])
                  for n in listed["results"] if n["hostname"] == "n1") == \
        sorted([(engine.node_id, "n1", None, False), (n1["id"], "slurm:n1", "idle", False)])
    job_type = await sleeper(make, "beside-n1")
    try:
        # Draining Slurm's n1 leaves the engine's node running jobs: on n2.
        status, body, _ = await api.patch(f"/nodes/{n1['id']}/",
                                          {"is_paused": True, "pause_reason": "disk swap"})
        assert (status, body["id"], body["is_paused"], body["slurm_state"]) == \
            (200, n1["id"], True, "drained")
        _, own, _ = await api.get(f"/nodes/{engine.node_id}/")
        assert (own["is_paused"], own["pause_reason"], own["slurm_state"]) == (False, None, None)
        assert await run_on_nodes(make, store, job_type, 1, "0.5") == ["n2"]
        assert engine.node_paused is False
        status, body, _ = await api.patch(f"/nodes/{n1['id']}/", {"is_paused": False})
        assert (status, body["is_paused"]) == (200, False)

        # Pausing the engine's node drains no Slurm node; it holds the engine's jobs back.
        status, body, _ = await api.patch(f"/nodes/{engine.node_id}/",
                                          {"is_paused": True, "pause_reason": "deploy"})
        assert (status, body["id"], body["is_paused"], body["pause_reason"],
                body["slurm_state"]) == (200, engine.node_id, True, "deploy", None)
        assert slurm_cluster.run("sinfo", "-h", "-n", "n1", "-o", "%E").strip() == "none"
        _, slurm_n1, _ = await api.get(f"/nodes/{n1['id']}/")
        assert (slurm_n1["is_paused"], slurm_n1["pause_reason"]) == (False, None)

        async def engine_paused():
            return engine.node_paused
        await wait_for(engine_paused, "the engine to see its node paused")
        jobs = [await make.submit(job_type, inputs=[{"name": "seconds", "value": "8"}])
                for _ in range(2)]
        await wait_passes(engine)
        assert [(await store.jobs.get_job(job["id"]))["status"] for job in jobs] == \
            ["QUEUED", "QUEUED"]

        async def responding():
            return (await slurm_nodes(api))["n1"]["slurm_state"] == "idle"
        await wait_for(responding, "n1 to be idle again")
        status, body, _ = await api.patch(f"/nodes/{engine.node_id}/", {"is_paused": False})
        assert (status, body["is_paused"], body["pause_reason"]) == (200, False, None)

        # One node-sized job on each Slurm node, counted on the Slurm nodes' records.
        nodes = await slurm_nodes(api)

        async def placed():
            by_node = (await store.counts.read()).node_use()
            found = {name: by_node.get(node["id"], {}).get("running", 0)
                     for name, node in nodes.items()}
            return found if found == {"n1": 1, "n2": 1} else None
        await wait_for(placed, "each Slurm node to count one running job")
        assert (await store.counts.read()).node_use().get(engine.node_id, {}) \
            .get("running", 0) == 0
        shown = []
        for job in jobs:
            await wait_job(store, job["id"], "COMPLETED")
            [exe] = await exes_of(store, job["id"])
            _, details, _ = await api.get(f"/job-executions/{exe['id']}/")
            assert details["cluster_node"] == exe["process"]["node"]
            shown.append(details["cluster_node"])
        assert sorted(shown) == ["n1", "n2"]
        _, own, _ = await api.get(f"/nodes/{engine.node_id}/")
        assert (own["hostname"], own["slave_id"], own["slurm_state"], own["is_paused"]) == \
            ("n1", "n1", None, False)
    finally:
        slurm_cluster.run("scontrol", "update", "nodename=n1", "state=resume", check=False)
