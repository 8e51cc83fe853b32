"""The job sandbox (engine/sandbox.py, issue 11): a job runs under bubblewrap and cannot read the
data folder, write outside its own folder, or reach the store or the HTTP port; a normal job
still runs as before, and a cancel or timeout still reaches it.

Each attack is a job whose command makes the attempt; the test asserts its outcome and its log.
Without a sandbox (`sandbox: none`, today's behaviour before issue 11) every attack succeeds.
"""

import json
import logging
import os
import shlex
import socket
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import psutil
import pytest

from core.interface import InvalidInterface, validate_interface
from core.settings import Settings, SettingsError
from engine import sandbox as sandbox_module
from engine.sandbox import SETPRIV, make_sandbox, probe, wrap
from tests.waiting import PY, wait_for, wait_job

pytestmark = pytest.mark.skipif(
    probe() != "", reason=f"bubblewrap cannot sandbox jobs here ({probe()}); `make test` "
                          "installs it (apt-get install bubblewrap)")

ROOT = os.geteuid() == 0
NOBODY = 65534


async def run_job(make, store, start_engine, name, script, *, network=None, status="FAILED",
                  **engine_options):
    """Run `sh -c script` as a job in the sandbox; the ended job and its execution's logs."""
    interface = {"command": "sh", "command_arguments": f"-c {shlex.quote(script)}"}
    if network is not None:
        interface["network"] = network
    job_type = await make.job_type(name, "1.0", "test", interface, cpus_required=1.0)
    job = await make.submit(job_type)
    await start_engine(sandbox="bwrap", **engine_options)
    done = await wait_job(store, job["id"], "COMPLETED", "FAILED")
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    logs = {kind: Path(exe[f"{kind}_file"]).read_text() for kind in ("stdout", "stderr")}
    assert done["status"] == status, (done["status"], logs)
    return done, exe, logs


async def error_name(store, error_id) -> str:
    return (await store.db["errors"].find_one({"id": error_id}))["name"]


# -- what a job cannot reach -------------------------------------------------------------------

@pytest.mark.gen_test(timeout=120)
async def test_a_job_cannot_read_auth_json(api, make, store, start_engine, data_dir):
    # Readable by anyone on purpose: the sandbox hides it, whatever its mode.
    (data_dir / "auth.json").write_text('{"cookie_secret": "s3cret"}')
    (data_dir / "auth.json").chmod(0o644)
    done, _, logs = await run_job(make, store, start_engine, "steal-auth",
                                  f"cat {data_dir}/auth.json")
    assert await error_name(store, done["error_id"]) == "algorithm-unknown"
    assert logs["stdout"] == ""
    assert logs["stderr"] == f"cat: {data_dir}/auth.json: No such file or directory\n"


@pytest.mark.gen_test(timeout=120)
async def test_a_job_cannot_see_other_jobs_folders(api, make, store, start_engine, data_dir):
    other = data_dir / "executions" / "999999"
    other.mkdir(parents=True)
    (other / "stdout.log").write_text("another job's output")
    (other / "stdout.log").chmod(0o644)
    _, _, logs = await run_job(make, store, start_engine, "snoop",
                               f"ls {data_dir}/executions; cat {other}/stdout.log")
    listed = logs["stdout"].split()
    assert "999999" not in listed and len(listed) == 1  # only its own folder
    assert logs["stderr"] == f"cat: {other}/stdout.log: No such file or directory\n"


@pytest.mark.gen_test(timeout=120)
async def test_a_job_cannot_write_outside_its_folder(api, make, store, start_engine, data_dir):
    planted = f"planted-{uuid.uuid4().hex}"
    script = (f"echo x > /tmp/{planted} && echo tmp-ok; "  # its own /tmp: allowed, not the host's
              f"echo x > {data_dir}/{planted}; echo x > /var/tmp/{planted}; "
              f"echo x > $JOBDECK_WORK_DIR/../{planted}")
    _, _, logs = await run_job(make, store, start_engine, "planter", script)
    assert logs["stdout"] == "tmp-ok\n"
    errors = logs["stderr"].splitlines()
    assert len(errors) == 3
    assert f"{data_dir}/{planted}: Permission denied" in errors[0] or \
        f"{data_dir}/{planted}: Read-only file system" in errors[0]
    assert errors[1].endswith(f"/var/tmp/{planted}: Read-only file system")
    assert errors[2].endswith(f"{planted}: Permission denied") or \
        errors[2].endswith(f"{planted}: Read-only file system")
    for place in (Path("/tmp"), data_dir, Path("/var/tmp"), data_dir / "executions"):
        assert not (place / planted).exists()


@pytest.mark.gen_test(timeout=120)
async def test_a_job_cannot_connect_to_the_store_or_the_http_port(api, make, store, start_engine,
                                                                 mongo_url, base_url):
    """The HTTP port is refused (no network); so is the store, on its TCP port (a MongoDB URL)
    or its Unix socket (the embedded store's, which the job cannot find: in the data folder in
    production, under /tmp here, and both are the job's own empty ones)."""
    store_address = urlparse(mongo_url)
    if store_address.port is not None:
        store_probe, store_refusal = (f"tcp:{store_address.port}", "ConnectionRefusedError")
    else:
        store_probe, store_refusal = (f"unix:{unquote(store_address.netloc)}",
                                      "FileNotFoundError")
    http_port = urlparse(base_url).port
    probe_script = ("import socket, sys\n"
                    "for target in sys.argv[1:]:\n"
                    "    kind, _, where = target.partition(':')\n"
                    "    try:\n"
                    "        if kind == 'tcp':\n"
                    "            socket.create_connection(('127.0.0.1', int(where)), 5).close()\n"
                    "        else:\n"
                    "            socket.socket(socket.AF_UNIX).connect(where)\n"
                    "        print(kind, 'connected')\n"
                    "    except OSError as exc:\n"
                    "        print(kind, type(exc).__name__)\n"
                    "sys.exit(3)")
    _, _, logs = await run_job(make, store, start_engine, "intruder",
                               f"{PY} -c {shlex.quote(probe_script)} {shlex.quote(store_probe)} "
                               f"tcp:{http_port}")
    assert logs["stdout"].splitlines() == [f"{store_probe.partition(':')[0]} {store_refusal}",
                                           "tcp ConnectionRefusedError"]


@pytest.mark.gen_test(timeout=120)
async def test_a_job_cannot_reach_a_unix_socket_in_the_data_folder(api, make, store,
                                                                   start_engine, data_dir):
    """The store's Unix socket (data_dir/*.sock) is not there for the job, nor are the sockets
    under /run (a network namespace does not cover Unix sockets)."""
    path = data_dir / "store.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen()
    try:
        script = (f"ls -A /run; {PY} -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                  f"s.connect('{path}'); print('connected')\"")
        _, _, logs = await run_job(make, store, start_engine, "socket-intruder", script)
    finally:
        listener.close()
    assert logs["stdout"] == ""
    assert logs["stderr"].splitlines()[-1] == \
        "FileNotFoundError: [Errno 2] No such file or directory"


@pytest.mark.gen_test(timeout=120)
async def test_an_interface_with_network_true_keeps_the_network(api, make, store, start_engine,
                                                               base_url):
    port = urlparse(base_url).port
    script = (f"{PY} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"
              ".close(); print('connected')\"")
    _, _, logs = await run_job(make, store, start_engine, "online", script, network=True,
                               status="COMPLETED")
    assert logs["stdout"] == "connected\n"


def test_network_in_an_interface_is_a_boolean():
    assert validate_interface({"command": "x", "command_arguments": "", "network": True})[
        "network"] is True
    assert "network" not in validate_interface({"command": "x", "command_arguments": ""})
    with pytest.raises(InvalidInterface) as caught:
        validate_interface({"command": "x", "command_arguments": "", "network": "yes"})
    assert str(caught.value) == "network: 'yes' is not of type 'boolean'"


# -- what a job still does -------------------------------------------------------------------

WRITER = ("import json, os, pathlib, sys; out = pathlib.Path(sys.argv[1]); "
          "(out / 'result.txt').write_text(open(sys.argv[2]).read().upper()); "
          "print(json.dumps({'uid': os.getuid(), 'groups': os.getgroups(), "
          "'home': os.access(os.environ['HOME'], os.W_OK), "
          "'tmpdir': os.access(os.environ['TMPDIR'], os.W_OK), "
          "'usr': os.access('/usr', os.W_OK)}))")


@pytest.mark.gen_test(timeout=120)
async def test_a_normal_job_reads_its_inputs_and_writes_products(api, make, store, start_engine,
                                                                 data_dir):
    data_dir.chmod(0o700)  # as the server keeps it: bwrap mounts as root, the job never walks it
    inputs = await make.workspace("inputs")
    products = await make.workspace("products")
    uploaded = await make.upload(inputs["id"], "in.txt", b"hello")
    # Readable by root only (the data folder's files may be 0600): the job still gets it.
    doc = await store.files.get_file(uploaded["id"])
    base = (await store.files.get_workspace(inputs["id"]))["base_path"]
    (Path(base) / doc["file_path"]).chmod(0o600)
    job_type = await make.command_type(
        "sandboxed-writer", PY, f'-c "{WRITER}" ${{job_output_dir}} ${{source}}',
        inputs=[{"name": "source", "type": "file"}],
        outputs=[{"name": "result", "type": "file", "media_type": "text/plain"}])
    job = await make.submit(job_type, inputs=[{"name": "source", "file_id": uploaded["id"]}],
                            outputs=[{"name": "result", "workspace_id": products["id"]}])
    await start_engine(sandbox="bwrap")
    await wait_job(store, job["id"], "COMPLETED")
    status, details, _ = await api.get(f"/jobs/{job['id']}/")
    assert status == 200
    product = details["outputs"][0]["value"]
    status, raw, _ = await api.get(f"/files/{product['id']}/download/")
    assert (status, raw) == (200, "HELLO")
    doc = await store.files.get_file(product["id"])
    stored = (Path((await store.files.get_workspace(products["id"]))["base_path"]) /
              doc["file_path"]).stat()
    assert (stored.st_uid, stored.st_gid) == (os.geteuid(), os.getegid())
    _, logs, _ = await api.get(f"/job-executions/{details['job_exes'][0]['id']}/logs/")
    seen = json.loads(logs["stdout"])
    assert seen == {"uid": NOBODY if ROOT else os.geteuid(), "groups": [] if ROOT else seen[
        "groups"], "home": True, "tmpdir": True, "usr": False}
    assert logs["stderr"] == ""


def job_processes(work_dir: str) -> list[psutil.Process]:
    """The processes of one execution (its environment names its folder), bwrap's included."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("JOBDECK_WORK_DIR") == work_dir:
                found.append(proc)
        except psutil.Error:
            pass
    return found


# The handler takes a second: bwrap killed at once would take the job down before it prints.
TRAPPED = "trap 'sleep 1; echo got TERM; exit 7' TERM; echo started; sleep 300 & wait"


async def running_sleep(store, job_id):
    """The execution once its `sleep` runs, and that execution's processes."""
    job = await store.jobs.get_job(job_id)
    exe = await store.jobs.get_exe(job["latest_exe_id"]) if job["latest_exe_id"] else None
    if not exe or not exe.get("work_dir"):
        return None
    procs = job_processes(exe["work_dir"])
    return any(p.name() == "sleep" for p in procs) and (exe, procs)


@pytest.mark.gen_test(timeout=120)
async def test_cancel_reaches_a_sandboxed_job_then_kills_it(api, make, store, start_engine):
    job_type = await make.command_type("sandboxed-sleeper", "sh", f"-c {shlex.quote(TRAPPED)}")
    job = await make.submit(job_type)
    await start_engine(sandbox="bwrap", cancel_grace=5.0)
    exe, procs = await wait_for(lambda: running_sleep(store, job["id"]), "the job's sleep")
    if ROOT:
        assert {p.uids().real for p in procs if p.name() in ("sh", "sleep")} == {NOBODY}
    status, body, _ = await api.patch(f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert status == 200, body

    async def all_gone():
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    await wait_for(all_gone, "the canceled job's processes to die")
    await wait_for(lambda: _exe_status(store, exe["id"], "CANCELED"), "the execution canceled")
    # The job's SIGTERM handler ran (bwrap did not die first and take it down with SIGKILL).
    assert Path(exe["stdout_file"]).read_text() == "started\ngot TERM\n"
    assert not job_processes(exe["work_dir"])


async def _exe_status(store, exe_id, status):
    exe = await store.jobs.get_exe(exe_id)
    return exe["status"] == status and exe


@pytest.mark.gen_test(timeout=120)
async def test_a_sandboxed_job_times_out(api, make, store, start_engine):
    job_type = await make.command_type("sandboxed-slow", "sh", "-c 'exec sleep 300'", timeout=1,
                                       max_tries=1)
    job = await make.submit(job_type)
    await start_engine(sandbox="bwrap", cancel_grace=1.0)
    done = await wait_job(store, job["id"], "FAILED")
    assert await error_name(store, done["error_id"]) == "timeout"
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    assert exe["job_exit_code"] == -15  # killed by SIGTERM, as without the sandbox
    assert not job_processes(exe["work_dir"])


# -- settings -----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=120)
async def test_sandbox_none_runs_as_before_and_warns_as_root(api, make, store, start_engine,
                                                             data_dir, caplog):
    (data_dir / "auth.json").write_text("secret")
    caplog.set_level(logging.WARNING, "jobdeck.engine")
    job_type = await make.command_type("unconfined", "cat", f"{data_dir}/auth.json")
    job = await make.submit(job_type)
    await start_engine(sandbox="none")
    done = await wait_job(store, job["id"], "COMPLETED")
    exe = await store.jobs.get_exe(done["latest_exe_id"])
    assert Path(exe["stdout_file"]).read_text() == "secret"
    warned = [r.getMessage() for r in caplog.records if "sandbox: none" in r.getMessage()]
    expected = ("sandbox: none while the server runs as root: every job runs as root and can "
                "read the data folder, auth.json and the store")
    assert warned == ([expected] if ROOT else [])


def test_sandbox_settings_are_checked(tmp_path):
    assert Settings().sandbox is None and Settings().job_user == "nobody"
    assert Settings(sandbox="BWRAP").sandbox == "bwrap"
    with pytest.raises(SettingsError) as caught:
        Settings(sandbox="docker")
    assert str(caught.value) == "sandbox must be bwrap_or_none, not 'docker'"
    if ROOT:
        with pytest.raises(SettingsError) as caught:
            make_sandbox("bwrap", "no-such-user-here", tmp_path)
        assert str(caught.value) == "job_user 'no-such-user-here' is not a user on this machine"
    assert make_sandbox(None, "nobody", tmp_path).kind == "bwrap"  # bwrap works here


def test_wrap_is_one_command_line_for_any_backend(tmp_path):
    """What a Slurm backend would run: bwrap's options, then setpriv (as root), then the job."""
    work = tmp_path / "data" / "executions" / "5"
    source = tmp_path / "data" / "workspaces" / "w" / "in.txt"
    argv = wrap(["prog", "a b"], work, [source], hidden=[tmp_path / "data"],
                user=None if not ROOT else make_sandbox("bwrap", "nobody", tmp_path).user)
    assert argv[0] == "bwrap" and argv[-2:] == ["prog", "a b"]
    assert ["--bind", str(work), str(work)] == argv[argv.index("--bind"):argv.index("--bind") + 3]
    assert ["--ro-bind", str(source), str(source)] == \
        argv[argv.index(str(source)) - 1:argv.index(str(source)) + 2]
    assert "--unshare-net" in argv and "--unshare-net" not in wrap(["p"], work, network=True)
    assert (SETPRIV in argv) == ROOT


def test_without_a_working_bwrap_jobs_run_unsandboxed_with_a_warning(monkeypatch, tmp_path,
                                                                     caplog):
    monkeypatch.setattr(sandbox_module, "probe", lambda: "bwrap is not installed")
    caplog.set_level(logging.WARNING, "jobdeck.engine")
    assert make_sandbox(None, "nobody", tmp_path).kind == "none"
    assert caplog.records[0].getMessage() == "jobs run without a sandbox: bwrap is not installed"
    with pytest.raises(SettingsError) as caught:
        make_sandbox("bwrap", "nobody", tmp_path)
    assert str(caught.value) == "sandbox: bwrap cannot run jobs: bwrap is not installed"
