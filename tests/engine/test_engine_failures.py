"""Failures: exit codes through error_mapping, timeouts, retries of SYSTEM errors only, cancels."""

from pathlib import Path

import pytest

from tests.engine.processes import all_gone, running_exe
from tests.waiting import PY, wait_for, wait_job, wait_passes


async def exes_of(store, job_id):
    return list(reversed(await store.jobs.exes_for_job(job_id)))


async def error_name(store, error_id):
    return (await store.errors.get(error_id))["name"]


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.alone)])
def backend(request) -> dict:
    """start_engine's options for each backend: the local one, then Slurm on the test cluster
    (tests/fixtures.py `slurm_cluster`)."""
    return request.getfixturevalue("slurm_engine_options") if request.param == "slurm" else {}


@pytest.mark.gen_test(timeout=120)
async def test_exit_codes_map_to_errors(api, make, store, start_engine, backend):
    await store.errors.create("bad-pixels", "Bad pixels", "The image is unreadable.", "DATA")
    job_type = await make.command_type("exits", PY,
                                       "-c 'import sys; sys.exit(int(sys.argv[1]))' ${code}",
                                       inputs=[{"name": "code", "type": "property"}],
                                       error_mapping={"4": "bad-pixels"}, max_tries=3)
    mapped = await make.submit(job_type, inputs=[{"name": "code", "value": "4"}])
    unmapped = await make.submit(job_type, inputs=[{"name": "code", "value": "5"}])
    await start_engine(**backend)
    for job, name, code in ((mapped, "bad-pixels", 4), (unmapped, "algorithm-unknown", 5)):
        done = await wait_job(store, job["id"], "FAILED")
        assert done["num_exes"] == 1  # DATA and ALGORITHM errors are not retried
        assert await error_name(store, done["error_id"]) == name
        [exe] = await exes_of(store, job["id"])
        assert (exe["status"], exe["job_exit_code"], exe["pre_exit_code"]) == ("FAILED", code, 0)
        assert exe["post_started"] is None
        assert await error_name(store, exe["error_id"]) == name


@pytest.mark.gen_test(timeout=120)
async def test_timeout_kills_and_fails_without_retry(api, make, store, start_engine):
    job_type = await make.command_type("sleeper", "sh", "-c 'exec sleep 300'", timeout=1,
                                       max_tries=3)
    job = await make.submit(job_type)
    await start_engine(cancel_grace=1.0)
    _, procs = await running_exe(store, job["id"], "sleep")
    done = await wait_job(store, job["id"], "FAILED")
    assert done["num_exes"] == 1
    assert await error_name(store, done["error_id"]) == "timeout"
    [exe] = await exes_of(store, job["id"])
    assert exe["status"] == "FAILED" and exe["job_exit_code"] < 0
    assert all_gone(procs)


@pytest.mark.gen_test(timeout=120)
async def test_system_errors_retry_up_to_max_tries(api, make, store, start_engine):
    job_type = await make.command_type("missing", "/nonexistent/program", "x", max_tries=3)
    job = await make.submit(job_type)
    await start_engine()
    done = await wait_job(store, job["id"], "FAILED")
    assert done["num_exes"] == 3
    assert await error_name(store, done["error_id"]) == "task-launch"
    exes = await exes_of(store, job["id"])
    assert [e["status"] for e in exes] == ["FAILED"] * 3
    assert {await error_name(store, e["error_id"]) for e in exes} == {"task-launch"}
    _, logs, _ = await api.get(f"/job-executions/{exes[0]['id']}/logs/")
    assert "cannot start '/nonexistent/program'" in logs["stderr"]


@pytest.mark.gen_test(timeout=120)
async def test_missing_input_file_is_a_system_error(api, make, store, start_engine, data_dir):
    ws = await make.workspace("gone")
    uploaded = await make.upload(ws["id"], "in.txt", b"data")
    job_type = await make.command_type("reader", "cat", "${f}",
                                       inputs=[{"name": "f", "type": "file"}], max_tries=2)
    job = await make.submit(job_type, inputs=[{"name": "f", "file_id": uploaded["id"]}])
    doc = await store.files.get_file(uploaded["id"])
    (Path(data_dir) / "workspaces" / "gone" / doc["file_path"]).unlink()
    await start_engine()
    done = await wait_job(store, job["id"], "FAILED")
    assert done["num_exes"] == 2
    assert await error_name(store, done["error_id"]) == "filesystem-io"
    exes = await exes_of(store, job["id"])
    assert [(e["pre_exit_code"], e["job_started"]) for e in exes] == [(1, None), (1, None)]


@pytest.mark.gen_test(timeout=120)
async def test_algorithm_errors_do_not_retry(api, make, store, start_engine):
    job_type = await make.command_type("fails", "false", max_tries=3)
    job = await make.submit(job_type)
    await start_engine()
    done = await wait_job(store, job["id"], "FAILED")
    assert done["num_exes"] == 1
    assert await error_name(store, done["error_id"]) == "algorithm-unknown"


@pytest.mark.gen_test(timeout=120)
async def test_cancel_kills_the_process_group(api, make, store, start_engine):
    job_type = await make.command_type("family", "sh", "-c 'sleep 300 & wait'")
    job = await make.submit(job_type)
    engine = await start_engine(cancel_grace=5.0)
    _, procs = await running_exe(store, job["id"], "sh", "sleep")

    status, body, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200, body

    async def gone_all():
        return all_gone(procs)
    await wait_for(gone_all, "the canceled job's processes to die")
    [exe] = await exes_of(store, job["id"])
    assert exe["status"] == "CANCELED"
    assert (await store.jobs.get_job(job["id"]))["status"] == "CANCELED"

    async def released():
        return not engine.runners
    await wait_for(released, "the engine to let the execution go")
    exe = await store.jobs.get_exe(exe["id"])
    assert exe["status"] == "CANCELED" and exe["error_id"] is None
    assert exe["job_exit_code"] is not None and exe["post_started"] is None


@pytest.mark.gen_test(timeout=120)
async def test_canceled_queued_job_never_starts(api, make, store, start_engine):
    job_type = await make.command_type("held", "true", is_paused=True)
    job = await make.submit(job_type)
    engine = await start_engine()
    await wait_passes(engine)
    status, _, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200
    await store.job_types.update(job_type, {"is_paused": False}, None)
    await wait_passes(engine)
    [exe] = await exes_of(store, job["id"])
    assert (exe["status"], exe["started"], exe["pre_started"], exe["node_id"]) == \
        ("CANCELED", None, None, None)


@pytest.mark.gen_test(timeout=120)
async def test_stopping_the_engine_requeues_what_it_ran(api, make, store, start_engine):
    job_type = await make.command_type("interrupted", "sh", "-c 'exec sleep 300'", max_tries=3)
    job = await make.submit(job_type)
    engine = await start_engine(cancel_grace=1.0)
    _, procs = await running_exe(store, job["id"], "sleep")
    await engine.stop()
    assert all_gone(procs)
    [first, second] = await exes_of(store, job["id"])
    assert (first["status"], await error_name(store, first["error_id"])) == \
        ("FAILED", "scheduler-lost")
    assert second["status"] == "QUEUED"
    assert (await store.jobs.get_job(job["id"]))["status"] == "QUEUED"
