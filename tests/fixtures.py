"""The tests' fixtures and their one job builder, a pytest plugin that tests/conftest.py registers
with `pytest_plugins` (as jupyter_server's pytest_plugin.py is): one real embedded store per test
session, a fresh database and a real app on a real port per test (pytest-tornado's
`http_server`), the `api` client and the `make` builder (`JobBuilder`).

A new fixture goes here when tests in more than one folder use it; a fixture that only one folder
uses or overrides goes in that folder's conftest.py, and a plain helper function in a helper
module (tests/responses.py, tests/live_client.py, tests/waiting.py, ...) imported as `tests.x`.
Nothing imports from a conftest.
"""

import copy
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from urllib.parse import urlencode

import pytest
from tornado.httpclient import HTTPClientError

from core.interface import validate_error_mapping, validate_interface
from engine.scheduler import Engine
from live.hub import LiveHub
from server import make_app
from slurm.cluster import ClusterUnavailable, start_cluster
from store import Store
from store.counts import uncounted
from store.embedded import EmbeddedMongo
from tests.commands import Commands
from tests.isolation import assert_databases_isolated
from tests.tokens import OPERATOR_HEADERS, TEST_SETTINGS

# slurm_poll_interval of the Slurm tests' engines (seconds).
SLURM_POLL = 0.25
# The job types' interface unless a test gives one: a command without inputs or outputs.
SIMPLE_INTERFACE = {"command": "run", "command_arguments": ""}
# Job types made through POST /job-types/ (`JobBuilder.posted_type`): one optional `value` input.
VALUE_INTERFACE = {"version": "1.0", "command": "run.sh", "command_arguments": "${value}",
                   "input_data": [{"name": "value", "type": "property", "required": False}],
                   "output_data": []}


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    """MONGO_URL points the tests at a real MongoDB; otherwise an embedded nx-27017. Each test
    drops its own database there, so the store must keep databases apart (checked once).
    tests/store/conftest.py overrides it with each backend the store tests run on."""
    if os.environ.get("MONGO_URL"):
        assert_databases_isolated(os.environ["MONGO_URL"])
        yield os.environ["MONGO_URL"]
        return
    embedded = EmbeddedMongo(tmp_path_factory.mktemp("store"))
    try:
        url = embedded.start()
        assert_databases_isolated(url)
        yield url
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real two-node Slurm cluster (slurm/cluster.py: nodes n1 and n2, 2 CPUs and 1024 MiB
    each), started once per session (per xdist worker) in a fresh temporary folder and stopped
    at its end. Clients reach it with `slurm_cluster.env` (SLURM_CONF). Where this machine can't
    run one (not root, no apt-get), every test that needs it skips with the one-line reason.
    A test that changes the cluster (drains or kills a node) puts it back before it ends."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)


@pytest.fixture
def commands():
    """The commands the test's store sends, once a test module's `store_listeners` returns this
    (tests/commands.py Commands)."""
    return Commands()


@pytest.fixture
def store_listeners():
    """pymongo command listeners on `store`'s clients; a test module overrides this fixture to
    count the commands its requests send (tests/test_store_budget.py)."""
    return []


@pytest.fixture
def store(mongo_url, io_loop, store_listeners):
    """A prepared Store on a database no other test uses, dropped afterwards (on the embedded nx
    its file goes with it)."""
    store = Store(mongo_url, f"test_{uuid.uuid4().hex[:12]}", listeners=store_listeners)
    io_loop.run_sync(store.open)
    yield store
    io_loop.run_sync(lambda: store.db.client.drop_database(store.db.db.name))
    io_loop.run_sync(store.close)


@pytest.fixture
def other_process(store, mongo_url, io_loop):
    """A second Store on the test's database, as another server process has: its status writes
    reach this process's live feed only through the store (no change listener joins them)."""
    other = Store(mongo_url, store.db.db.name)
    io_loop.run_sync(other.open)
    yield other
    io_loop.run_sync(other.close)


@pytest.fixture
def hub(store, io_loop):
    """The test app's live hub (server.serve makes one per server), stopped before the test's
    database is dropped."""
    hub = LiveHub(store)
    yield hub
    io_loop.run_sync(hub.stop)


@pytest.fixture
def data_dir(tmp_path):
    """A data folder of the test's own, for the tests whose app or engine runs jobs."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def engine_options():
    """The options of the engines `start_engine` makes; a test module overrides this fixture
    (tests/slurm/conftest.py: the Slurm backend)."""
    return {"cpus": 4, "mem": 4096, "cancel_grace": 2.0, "poll_interval": 0.05}


@pytest.fixture
def slurm_engine_options(slurm_cluster, monkeypatch):
    """Engine options for executor=slurm on the `slurm_cluster` cluster (SLURM_CONF set for the
    test); its jobs are canceled once the test's engines are stopped, and the next test starts
    on idle nodes."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    yield {"cancel_grace": 2.0, "poll_interval": 0.05, "executor": "slurm",
           "slurm_poll_interval": SLURM_POLL}
    slurm_cluster.cancel_all()
    slurm_cluster.wait_idle(slurm_cluster.nodes)


@pytest.fixture
def start_engine(store, data_dir, io_loop, engine_options):
    """`await start_engine(cpus=..., ...)`: a running engine on this test's store, stopped
    before the test's database is dropped (the shared `app` fixture never runs one)."""
    engines = []

    async def start(**options):
        engine = Engine(store, data_dir, **{**engine_options, **options})
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        io_loop.run_sync(engine.stop, timeout=60)


@pytest.fixture
def app_settings():
    """Settings the test's app changes (name: value) from TEST_SETTINGS; a test module or a
    folder's conftest.py overrides this fixture."""
    return {}


@pytest.fixture
def app(store, hub, app_settings):
    """Auth on, with the operator and viewer tokens of tests/tokens.py."""
    settings = TEST_SETTINGS.replace(**app_settings) if app_settings else TEST_SETTINGS
    return make_app(store, settings, hub)


class API:
    """Small JSON client over pytest-tornado's http_client: returns (status, body, headers)."""

    def __init__(self, http_client, base_url):
        self.http_client = http_client
        self.base_url = base_url

    async def call(self, method: str, path: str, body=None, raw: bytes | None = None,
                   headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is None and method in ("POST", "PATCH", "PUT"):
            data = b""
        hdrs = {"Content-Type": "application/json", **OPERATOR_HEADERS, **(headers or {})}
        try:
            response = await self.http_client.fetch(self.base_url + path, method=method,
                                                    body=data, headers=hdrs)
        except HTTPClientError as exc:
            response = exc.response
        text = response.body.decode()
        content_type = response.headers.get("Content-Type", "")
        parsed = json.loads(text) if content_type.startswith("application/json") else text
        return response.code, parsed, response.headers

    async def get(self, path, **kw):
        return await self.call("GET", path, **kw)

    async def post(self, path, body=None, **kw):
        return await self.call("POST", path, body, **kw)

    async def patch(self, path, body=None, **kw):
        return await self.call("PATCH", path, body, **kw)

    async def post_form(self, *parts: tuple[str, str | bytes], path: str = "/files/"):
        """POST a multipart/form-data body of `parts`, each (its header lines, its content), in
        order: `form_field` and `form_file` make the usual ones, a test may write its own."""
        body = b"".join(f"--{FORM_BOUNDARY}\r\n{head}\r\n\r\n".encode()
                        + (content.encode() if isinstance(content, str) else content) + b"\r\n"
                        for head, content in parts) + f"--{FORM_BOUNDARY}--\r\n".encode()
        return await self.call(
            "POST", path, raw=body,
            headers={"Content-Type": f"multipart/form-data; boundary={FORM_BOUNDARY}"})


FORM_BOUNDARY = "jobdeck-test-boundary"


def form_field(name: str, value) -> tuple[str, str]:
    return f'Content-Disposition: form-data; name="{name}"', str(value)


def form_file(file_name: str, content: str | bytes, media_type: str | None = "text/plain",
              disposition: str | None = None) -> tuple[str, str | bytes]:
    """The file part; `disposition`: the whole filename parameter, as written (RFC 2231)."""
    head = ('Content-Disposition: form-data; name="file"; '
            + (disposition or f'filename="{file_name}"'))
    if media_type is not None:
        head += f"\r\nContent-Type: {media_type}"
    return head, content


@pytest.fixture
def api(http_client, base_url):
    return API(http_client, base_url)


class JobBuilder:
    """Job types, jobs and executions, made the way the product makes them:

    - job types and jobs through the store's own functions, the ones the job engine calls, so
      every status a test sees was reached the way the engine reaches it (`job_type`,
      `command_type`; `pending`, `queued`, `running`, `completed`, `failed`);
    - through the REST API when the test runs the app (`posted_type`, `submit`, `workspace`,
      `upload`);
    - a job moved on by its latest execution (`start`, `complete`, `cancel`);
    - many PENDING jobs in one insert_many, as the seeders write them (`bulk_jobs`), for tests
      that need more jobs than the transitions make quickly.
    """

    def __init__(self, store: Store, api: API | None = None):
        self.store = store
        self._api = api

    @property
    def api(self) -> API:
        if self._api is None:
            raise RuntimeError("this test runs no app: request `api` (or `base_url`) to build "
                               "through the REST API")
        return self._api

    # -- job types ------------------------------------------------------------------------

    @staticmethod
    def interface(*inputs: str) -> dict:
        """A Scale job interface with one required property input per name."""
        return {"version": "1.0", "command": "run.sh", "command_arguments": "${input}",
                "input_data": [{"name": name, "type": "property", "required": True}
                               for name in inputs],
                "output_data": []}

    async def job_type(self, name="test1", version="1.0", category="test-1", interface=None,
                       **fields) -> dict:
        """Through the store; `interface` (SIMPLE_INTERFACE unless given) is validated first."""
        return await self.store.job_types.create(
            name, version, validate_interface(interface or SIMPLE_INTERFACE),
            {"category": category, **fields})

    async def command_type(self, name: str, command: str, arguments: str = "", inputs=(),
                           outputs=(), error_mapping=None, **fields) -> dict:
        """A job type the job engine really runs: `command arguments`, category "test", one CPU
        unless told; `error_mapping` maps exit codes (as text) to error names."""
        if error_mapping is not None:
            fields["error_mapping"] = validate_error_mapping(
                {"version": "1.0", "exit_codes": error_mapping}, await self.store.errors.names())
        fields.setdefault("cpus_required", 1.0)
        return await self.job_type(
            name, "1.0", "test", {"command": command, "command_arguments": arguments,
                                  "input_data": list(inputs), "output_data": list(outputs)},
            **fields)

    async def posted_type(self, name: str, version: str = "1.0", **fields) -> dict:
        """Through POST /job-types/, with VALUE_INTERFACE; the API's body."""
        status, body, _ = await self.api.post("/job-types/", {
            "name": name, "version": version, "interface": VALUE_INTERFACE, **fields})
        assert status == 201, body
        return body

    # -- jobs through the store -------------------------------------------------------------

    async def event(self) -> dict:
        return await self.store.jobs.create_event("USER", {"user": "Anonymous"})

    async def pending(self, job_type: dict, data=None) -> dict:
        """A PENDING job, as Scale's create_job leaves it."""
        return await self.store.jobs.create_job(job_type, data or {}, await self.event())

    async def queued(self, job_type: dict, data=None, input_file_ids=()) -> tuple[dict, dict]:
        """A QUEUED job with its QUEUED execution."""
        return await self.store.jobs.submit_job(job_type, data or {}, await self.event(),
                                                "args", input_file_ids=input_file_ids)

    async def running(self, job_type: dict, data=None, input_file_ids=(),
                      node_id: int | None = None) -> tuple[dict, dict]:
        _, exe = await self.queued(job_type, data, input_file_ids)
        return await self.store.jobs.start_execution(exe["id"], node_id)

    async def completed(self, job_type: dict, results=None) -> tuple[dict, dict]:
        job, exe = await self.running(job_type)
        job = await self.store.jobs.complete_execution(exe["id"], results)
        return job, await self.store.jobs.get_exe(exe["id"])

    async def failed(self, job_type: dict, error_name="algorithm-unknown") -> tuple[dict, dict]:
        job, exe = await self.running(job_type)
        error = await self.store.errors.by_name(error_name)
        job = await self.store.jobs.fail_execution(exe["id"], error)
        return job, await self.store.jobs.get_exe(exe["id"])

    async def touch(self, job_id: int, last_modified: int, last_status_change=None) -> None:
        """Pin a job's times so range and order tests do not depend on the clock; a new last
        status change marks the job for the kept counts' next fold, as a transition does."""
        update: dict = {"$set": {"last_modified": last_modified}}
        if last_status_change is not None:
            update = uncounted({"$set": {**update["$set"],
                                         "last_status_change": last_status_change}})
        await self.store.db["jobs"].update_one({"id": job_id}, update)

    # -- through the REST API ---------------------------------------------------------------

    async def submit(self, job_type: dict, inputs=(), outputs=()) -> dict:
        """Through POST /queue/new-job/ (QUEUED with its first execution); the API's body."""
        status, body, _ = await self.api.post("/queue/new-job/", {
            "job_type_id": job_type["id"],
            "job_data": {"version": "1.0", "input_data": list(inputs),
                         "output_data": list(outputs)}})
        assert status == 201, body
        return body

    async def workspace(self, name="products") -> dict:
        status, body, _ = await self.api.post("/workspaces/", {"name": name})
        assert status == 201, body
        return body

    async def upload(self, workspace_id: int, file_name: str, data: bytes,
                     media_type="text/plain") -> dict:
        query = urlencode({"workspace_id": workspace_id, "file_name": file_name,
                           "media_type": media_type})
        status, body, _ = await self.api.call(
            "POST", f"/files/?{query}", raw=data,
            headers={"Content-Type": "application/octet-stream"})
        assert status == 201, body
        return body

    # -- a job moved on by its latest execution ---------------------------------------------

    async def start(self, job: dict, node_id: int | None = None) -> dict:
        """QUEUED → RUNNING; the job (its `latest_exe_id` is the running execution)."""
        latest = await self.store.jobs.get_job(job["id"])
        started = await self.store.jobs.start_execution(latest["latest_exe_id"], node_id)
        assert started is not None, f"job {job['id']} did not start"
        return started[0]

    async def complete(self, job: dict, results=None) -> dict:
        """RUNNING → COMPLETED with `results` ({} unless given); the job."""
        latest = await self.store.jobs.get_job(job["id"])
        completed = await self.store.jobs.complete_execution(
            latest["latest_exe_id"], {} if results is None else results)
        assert completed is not None, f"job {job['id']} did not complete"
        return completed

    async def cancel(self, job: dict) -> dict:
        return await self.store.jobs.cancel_job(job["id"])

    # -- many at once -----------------------------------------------------------------------

    async def bulk_jobs(self, job_type: dict, times: Iterable[int], data=None,
                        event=None) -> list[dict]:
        """One PENDING job per time in `times` (ms: created and last modified), bulk-inserted
        with consecutive ids; `job_type` may be the store's or the API's body. The documents."""
        times = list(times)
        job_type = await self.store.job_types.get(job_type["id"])
        if event is None:
            event = await self.store.jobs.create_event("USER", {"user": "seed"})
        ids = await self.store.db.next_ids("jobs", len(times))
        docs = [self.store.jobs.new_job_doc(job_id, job_type, copy.deepcopy(data or {}), event,
                                            when) for job_id, when in zip(ids, times, strict=True)]
        await self.store.db["jobs"].insert_many(docs)
        return docs


APP_FIXTURES = {"api", "base_url", "http_client", "http_server"}


@pytest.fixture
def make(store, request):
    """The job builder on the test's store. When the test talks to the app (requests one of
    APP_FIXTURES), the builder's `api` is the test's, which also starts the app's server
    (pytest-tornado's `base_url` alone does not); otherwise no server runs."""
    api = request.getfixturevalue("api") if APP_FIXTURES & set(request.fixturenames) else None
    return JobBuilder(store, api)
