"""Jobs submitted through the API really run: phases, inputs, outputs, products and failures."""

import json
from pathlib import Path

import psutil
import pytest

from tests.waiting import PY, wait_for, wait_job

WRITE_OUT = "import sys; open(sys.argv[1] + '/out.txt', 'w').write('hello'); print('wrote')"


@pytest.mark.gen_test(timeout=120)
async def test_success_writes_a_product(api, make, store, start_engine):
    ws = await make.workspace()
    job_type = await make.command_type(
        "writer", PY, f'-c "{WRITE_OUT}" ${{job_output_dir}}',
        outputs=[{"name": "out", "type": "file", "media_type": "text/plain"}])
    job = await make.submit(job_type, outputs=[{"name": "out", "workspace_id": ws["id"]}])
    await start_engine()
    await wait_job(store, job["id"], "COMPLETED")

    status, details, _ = await api.get(f"/jobs/{job['id']}/")
    assert status == 200
    assert details["status"] == "COMPLETED" and details["num_exes"] == 1
    product = details["outputs"][0]["value"]
    assert details["outputs"][0]["name"] == "out"
    assert (product["file_name"], product["media_type"], product["file_size"]) == \
        ("out.txt", "text/plain", 5)
    assert product["workspace"] == {"id": ws["id"], "name": "products"}
    assert details["results"] == {"version": "1.0",
                                  "output_data": [{"name": "out", "file_id": product["id"]}]}
    exe = details["job_exes"][0]
    assert exe["status"] == "COMPLETED"
    for phase in ("pre", "job", "post"):
        assert exe[f"{phase}_exit_code"] == 0
        assert exe[f"{phase}_started"] <= exe[f"{phase}_completed"]
    assert exe["pre_completed"] <= exe["job_started"] and exe["job_completed"] <= exe["post_started"]
    assert exe["node"] is not None

    status, raw, headers = await api.get(f"/files/{product['id']}/download/")
    assert (status, raw, headers["Content-Type"]) == (200, "hello", "text/plain")
    status, products, _ = await api.get("/products/")
    assert status == 200 and products["count"] == 1
    assert products["results"][0]["id"] == product["id"]
    assert products["results"][0]["job"] == {"id": job["id"]}
    assert products["results"][0]["job_exe"] == {"id": exe["id"]}

    status, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert status == 200
    assert (logs["is_finished"], logs["stdout"], logs["stderr"]) == (True, "wrote\n", "")
    assert logs["job"]["id"] == job["id"]


@pytest.mark.gen_test(timeout=120)
async def test_property_file_and_files_inputs_are_substituted(api, make, store, start_engine):
    ws = await make.workspace("inputs")
    one = await make.upload(ws["id"], "one.txt", b"first")
    two = await make.upload(ws["id"], "two words.txt", b"second")
    three = await make.upload(ws["id"], "three.txt", b"third")
    script = ("import json, sys; print(json.dumps([sys.argv[1:], "
              "[open(p).read() for p in sys.argv[2:]]]))")
    job_type = await make.command_type(
        "echo-args", PY, f"-c '{script}' ${{label}} ${{single}} ${{many}}",
        inputs=[{"name": "label", "type": "property"},
                {"name": "single", "type": "file"}, {"name": "many", "type": "files"}])
    job = await make.submit(job_type, inputs=[
        {"name": "label", "value": "a b $HOME"}, {"name": "single", "file_id": one["id"]},
        {"name": "many", "file_ids": [two["id"], three["id"]]}])
    await start_engine()
    done = await wait_job(store, job["id"], "COMPLETED")
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    _, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    args, contents = json.loads(logs["stdout"])
    assert args[0] == "a b $HOME"  # one word, no shell expansion
    assert [a.rsplit("/", 1)[1] for a in args[1:]] == ["one.txt", "two words.txt", "three.txt"]
    assert contents == ["first", "second", "third"]
    assert exe["environment"]["JOBDECK_JOB_ID"] == str(job["id"])
    assert exe["environment"]["JOBDECK_EXE_ID"] == str(exe["id"])
    assert "HOME" in exe["environment"] and "VIRTUAL_ENV" not in exe["environment"]

    work_dir = Path(exe["work_dir"])

    async def only_logs_left():
        return sorted(p.name for p in work_dir.iterdir()) == ["stderr.log", "stdout.log"]
    await wait_for(only_logs_left, "the execution folder to keep only its logs")
    for upload_body, data in ((one, "first"), (two, "second"), (three, "third")):
        status, body, _ = await api.get(f"/files/{upload_body['id']}/download/")
        assert (status, body) == (200, data)  # staged links went, the files stay


@pytest.mark.gen_test(timeout=120)
async def test_environment_is_clean(api, make, store, start_engine):
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    job_type = await make.command_type("env", PY, f"-c '{script}'")
    job = await make.submit(job_type)
    await start_engine()
    done = await wait_job(store, job["id"], "COMPLETED")
    _, logs, _ = await api.get(f"/job-executions/{done['latest_exe_id']}/logs/")
    env = json.loads(logs["stdout"])
    assert sorted(env) == sorted([
        "PATH", "LANG", "HOME", "TMPDIR", "JOBDECK_JOB_ID", "JOBDECK_EXE_ID", "JOBDECK_JOB_TYPE",
        "JOBDECK_JOB_TYPE_VERSION", "JOBDECK_WORK_DIR", "JOBDECK_OUTPUT_DIR", "JOBDECK_CPUS",
        "JOBDECK_MEM"])
    assert env["JOBDECK_JOB_TYPE"] == "env" and env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


MANIFEST_SCRIPT = (
    "import json, pathlib, sys; out = pathlib.Path(sys.argv[1]); "
    "[(out / n).write_bytes(b'png') for n in ('x.png', 'y.png', 'stray.png')]; "
    "(out / 'results_manifest.json').write_text(json.dumps({'output_data': "
    "[{'name': 'images', 'files': ['x.png', 'y.png']}]}))")


@pytest.mark.gen_test(timeout=120)
async def test_results_manifest_names_the_outputs(api, make, store, start_engine):
    ws = await make.workspace()
    job_type = await make.command_type(
        "imager", PY, f'-c "{MANIFEST_SCRIPT}" ${{job_output_dir}}',
        outputs=[{"name": "images", "type": "files", "media_type": "image/png"}])
    job = await make.submit(job_type, outputs=[{"name": "images", "workspace_id": ws["id"]}])
    await start_engine()
    done = await wait_job(store, job["id"], "COMPLETED")
    [entry] = done["results"]["output_data"]
    assert entry["name"] == "images" and len(entry["file_ids"]) == 2
    _, details, _ = await api.get(f"/jobs/{job['id']}/")
    assert [f["file_name"] for f in details["outputs"][0]["value"]] == ["x.png", "y.png"]
    assert {f["media_type"] for f in details["outputs"][0]["value"]} == {"image/png"}
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    assert exe["results_manifest"] == {"output_data": [{"name": "images",
                                                        "files": ["x.png", "y.png"]}]}


@pytest.mark.gen_test(timeout=120)
async def test_a_missing_required_output_fails_the_post_phase(api, make, store, start_engine):
    ws = await make.workspace()
    job_type = await make.command_type(
        "forgetful", "true", outputs=[{"name": "report", "type": "file",
                                              "media_type": "application/pdf"}])
    job = await make.submit(job_type, outputs=[{"name": "report", "workspace_id": ws["id"]}])
    await start_engine()
    done = await wait_job(store, job["id"], "FAILED")
    assert (await store.errors.get(done["error_id"]))["name"] == "algorithm-unknown"
    assert done["num_exes"] == 1
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    assert (exe["job_exit_code"], exe["post_exit_code"]) == (0, 1)
    _, logs, _ = await api.get(f"/job-executions/{exe['id']}/logs/")
    assert logs["stderr"] == 'jobdeck: required output "report" was not written\n'


@pytest.mark.gen_test(timeout=120)
async def test_a_long_job_shows_its_start_while_it_runs(api, make, store, start_engine, tmp_path):
    """Short jobs write their start with their end (one round trip fewer); a job that runs
    longer than START_RECORD_DELAY shows its job phase and process while still RUNNING."""
    job_type = await make.command_type("napper", "sleep", "30")
    job = await make.submit(job_type)
    await start_engine()
    running = await wait_job(store, job["id"], "RUNNING")

    async def start_recorded():
        exe = await store.jobs.get_exe(running["latest_exe_id"])
        return exe if exe["job_started"] is not None else None
    exe = await wait_for(start_recorded, "the job phase start to be recorded")
    assert exe["status"] == "RUNNING"
    assert exe["pre_exit_code"] == 0 and exe["pre_completed"] <= exe["job_started"]
    assert exe["job_completed"] is None and exe["environment"]["JOBDECK_EXE_ID"] == str(exe["id"])
    assert psutil.pid_exists(exe["process"]["pid"])
    status, body, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200, body
