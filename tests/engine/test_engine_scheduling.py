"""Scheduling: priority order, resource fit, paused job types, max_scheduled, live logs."""

import itertools

import pytest

from tests.waiting import wait_for, wait_job, wait_passes


async def exe_of(store, job_id):
    return await store.jobs.get_exe((await store.jobs.get_job(job_id))["latest_exe_id"])


async def holder_big_small(make, gate):
    """Job types needing 1 CPU (runs until `gate` exists), 1.5 CPUs and 0.5 CPU: on 2 CPUs, a
    running holder leaves room for small but not for big."""
    return (await make.command_type("holder", "sh",
                                    f"-c 'while [ ! -e {gate} ]; do sleep 0.02; done'",
                                    cpus_required=1.0, priority=100),
                await make.command_type("big", "true", cpus_required=1.5, priority=100),
                await make.command_type("small", "true", cpus_required=0.5, priority=100))


@pytest.mark.gen_test(timeout=120)
async def test_lower_priority_number_first_then_oldest(api, make, store, start_engine):
    types = {priority: await make.command_type(f"p{priority}", "true", priority=priority)
             for priority in (200, 50, 10)}
    jobs = {}
    for name, priority in (("late", 200), ("b", 50), ("c", 50), ("first", 10)):
        jobs[name] = await make.submit(types[priority])
        assert jobs[name]["priority"] == priority
    await start_engine(cpus=1.0)  # one job at a time
    for job in jobs.values():
        await wait_job(store, job["id"], "COMPLETED")
    exes = {name: await exe_of(store, job["id"]) for name, job in jobs.items()}
    order = sorted(exes, key=lambda name: (exes[name]["started"], exes[name]["id"]))
    assert order == ["first", "b", "c", "late"]
    for earlier, later in itertools.pairwise(order):
        assert exes[earlier]["ended"] <= exes[later]["started"]


@pytest.mark.gen_test(timeout=120)
async def test_a_job_that_does_not_fit_waits(api, make, store, start_engine, gate):
    small_type = await make.command_type("small", "sh",
                                         f"-c 'while [ ! -e {gate} ]; do sleep 0.02; done'",
                                         cpus_required=1.0, priority=100)
    big_type = await make.command_type("big", "true", cpus_required=1.5, priority=100)
    small = await make.submit(small_type)
    big = await make.submit(big_type)
    engine = await start_engine(cpus=2.0)
    await wait_job(store, small["id"], "RUNNING")
    await wait_passes(engine, 5)
    assert (await store.jobs.get_job(big["id"]))["status"] == "QUEUED"
    status, nodes, _ = await api.get("/nodes/")
    assert status == 200 and nodes["count"] == 1
    node = nodes["results"][0]
    assert node["capacity"] == {"cpus": 2.0, "mem": 4096.0}
    assert node["used"] == {"cpus": 1.0, "mem": 128.0, "job_exes": 1}
    assert node["hostname"] == engine.hostname and node["is_paused"] is False
    gate.touch()
    await wait_job(store, big["id"], "COMPLETED")
    assert (await exe_of(store, big["id"]))["started"] >= \
        (await exe_of(store, small["id"]))["ended"]


@pytest.mark.gen_test(timeout=120)
async def test_too_much_memory_waits_while_others_run(api, make, store, start_engine):
    hungry_type = await make.command_type("hungry", "true", mem_required=8192.0, priority=1)
    light_type = await make.command_type("light", "true", priority=500)
    hungry = await make.submit(hungry_type)
    light = await make.submit(light_type)
    engine = await start_engine(mem=4096.0)
    await wait_job(store, light["id"], "COMPLETED")
    await wait_passes(engine)
    assert (await store.jobs.get_job(hungry["id"]))["status"] == "QUEUED"


@pytest.mark.gen_test(timeout=120)
async def test_paused_type_and_max_scheduled(api, make, store, start_engine, gate):
    wait_gate = f"-c 'while [ ! -e {gate} ]; do sleep 0.02; done'"
    limited = await make.command_type("limited", "sh", wait_gate, max_scheduled=1,
                                      cpus_required=0.25)
    paused = await make.command_type("paused", "true", is_paused=True)
    first, second = await make.submit(limited), await make.submit(limited)
    held = await make.submit(paused)
    engine = await start_engine()
    await wait_job(store, first["id"], "RUNNING")
    await wait_passes(engine, 5)
    assert (await store.jobs.get_job(second["id"]))["status"] == "QUEUED"
    assert (await store.jobs.get_job(held["id"]))["status"] == "QUEUED"
    gate.touch()
    await wait_job(store, second["id"], "COMPLETED")
    await store.job_types.update(paused, {"is_paused": False}, None)
    await wait_job(store, held["id"], "COMPLETED")


@pytest.mark.gen_test(timeout=120)
async def test_logs_are_readable_while_the_job_runs(api, make, store, start_engine, gate):
    script = (f"echo started; echo warming >&2; while [ ! -e {gate} ]; do sleep 0.02; done; "
              "echo finished")
    job_type = await make.command_type("talker", "sh", f"-c '{script}'")
    job = await make.submit(job_type)
    await start_engine()
    exe_id = (await wait_job(store, job["id"], "RUNNING"))["latest_exe_id"]

    async def first_lines():
        _, logs, _ = await api.get(f"/job-executions/{exe_id}/logs/")
        return logs if logs["stdout"] and logs["stderr"] else None
    logs = await wait_for(first_lines, "the first log lines")
    assert (logs["is_finished"], logs["stdout"], logs["stderr"]) == \
        (False, "started\n", "warming\n")
    assert logs["status"] == "RUNNING" and logs["id"] == exe_id
    gate.touch()
    await wait_job(store, job["id"], "COMPLETED")
    _, logs, _ = await api.get(f"/job-executions/{exe_id}/logs/")
    assert (logs["is_finished"], logs["stdout"]) == (True, "started\nfinished\n")
    status, body, _ = await api.get("/job-executions/999999/logs/")
    assert status == 404 and body == "Job execution 999999 does not exist\n"


@pytest.mark.gen_test(timeout=120)
async def test_two_engines_never_start_an_execution_twice(api, make, store, start_engine):
    job_type = await make.command_type("counted", "true", cpus_required=0.25)
    jobs = [await make.submit(job_type) for _ in range(20)]
    await start_engine(hostname="one")
    await start_engine(hostname="two")
    for job in jobs:
        done = await wait_job(store, job["id"], "COMPLETED")
        assert done["num_exes"] == 1
    count = await store.db.count("job_exes", {"status": "COMPLETED"})
    assert count == 20


@pytest.mark.gen_test(timeout=120)
async def test_a_paused_node_starts_nothing_until_resumed(api, make, store, start_engine):
    job_type = await make.command_type("quick", "true")
    engine = await start_engine()
    node_id = engine.node["id"]
    for body, message in (
            ({}, "is_paused is required and must be true or false"),
            ({"is_paused": "yes"}, "is_paused is required and must be true or false"),
            ({"is_paused": True, "pause_reason": 7},
             "pause_reason must be a string of at most 250 characters"),
            ({"is_paused": True, "cpus": 4},
             "Unknown field(s): cpus; a node takes is_paused and pause_reason")):
        status, text, _ = await api.patch(f"/nodes/{node_id}/", body)
        assert (status, text) == (400, message + "\n")
    status, text, _ = await api.patch("/nodes/99/", {"is_paused": True})
    assert (status, text) == (404, "Node 99 does not exist\n")

    status, node, _ = await api.patch(f"/nodes/{node_id}/",
                                      {"is_paused": True, "pause_reason": "disk swap"})
    assert status == 200
    assert (node["is_paused"], node["pause_reason"]) == (True, "disk swap")

    async def engine_sees_pause():
        return engine.node_paused
    await wait_for(engine_sees_pause, "the engine to see the pause")
    job = await make.submit(job_type)
    await wait_passes(engine, 5)
    assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"

    status, node, _ = await api.patch(f"/nodes/{node_id}/", {"is_paused": False})
    assert status == 200
    assert (node["is_paused"], node["pause_reason"]) == (False, None)
    await wait_job(store, job["id"], "COMPLETED")


@pytest.mark.gen_test(timeout=120)
async def test_a_long_waiting_big_job_reserves_the_node(api, make, store, start_engine, gate):
    holder_type, big_type, small_type = await holder_big_small(make, gate)
    holder = await make.submit(holder_type)
    engine = await start_engine(cpus=2.0, reserve_after=0.0)
    await wait_job(store, holder["id"], "RUNNING")
    big = await make.submit(big_type)
    small = await make.submit(small_type)  # fits beside the holder, but is ranked after big
    engine.wake()
    await wait_passes(engine, 5)
    assert [(await store.jobs.get_job(j["id"]))["status"] for j in (big, small)] == \
        ["QUEUED", "QUEUED"]
    gate.touch()
    await wait_job(store, small["id"], "COMPLETED")
    assert (await exe_of(store, small["id"]))["started"] >= \
        (await exe_of(store, big["id"]))["started"]


@pytest.mark.gen_test(timeout=120)
async def test_smaller_jobs_pass_a_big_one_before_it_reserves(api, make, store, start_engine,
                                                               gate):
    holder_type, big_type, small_type = await holder_big_small(make, gate)
    holder = await make.submit(holder_type)
    await start_engine(cpus=2.0, reserve_after=3600.0)
    await wait_job(store, holder["id"], "RUNNING")
    big = await make.submit(big_type)
    small = await make.submit(small_type)
    await wait_job(store, small["id"], "COMPLETED")
    assert (await store.jobs.get_job(big["id"]))["status"] == "QUEUED"
    gate.touch()
    await wait_job(store, big["id"], "COMPLETED")
