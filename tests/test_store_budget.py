"""The store-operation budget of issue 13: how many store commands one HTTP request may send.

Counted with pymongo's command monitoring on the app's own clients (`Store(listeners=...)`),
only while the request is in flight, and without the background traffic: no engine runs in
this app (`engine=False`), and the live feed's change stream (its `$changeStream` aggregate and
the getMores on that cursor) is left out. A failure names every command the request sent.

The first request of each kind may fill this process's caches (job types, revisions, errors)
and its block of ids; each budget is checked on a request after a warm-up one, as a server
that has been running answers it.
"""

import asyncio

import pytest
from pymongo import monitoring

from store.db import ID_KEYED
from tests.tokens import TEST_SETTINGS

BUDGETS = {
    "GET /jobs/": 3,
    "GET /jobs/updates/": 3,
    "GET /jobs/executions/": 3,
    "GET /jobs/{id}/": 3,
    "PATCH /jobs/{id}/ cancel": 3,
    "POST /queue/new-job/": 3,
    "GET / (overview)": 4,
    "GET /dashboard/jobs": 4,
    "GET /dashboard/jobs/{id}": 4,
}


class CommandCounter(monitoring.CommandListener):
    """The commands started while `recording`, as "name collection", change streams left out;
    `filters`, each one's (collection, filter) beside it."""

    def __init__(self):
        self.recording = False
        self.commands: list[str] = []
        self.filters: list[tuple[str, dict]] = []
        self.stream_cursors: set[int] = set()
        self.stream_requests: set[int] = set()

    @staticmethod
    def _is_stream(event) -> bool:
        pipeline = event.command.get("pipeline") or []
        return event.command_name == "aggregate" and any("$changeStream" in stage
                                                         for stage in pipeline)

    def started(self, event):
        if self._is_stream(event):
            self.stream_requests.add(event.request_id)
            return
        if event.command_name == "getMore" and event.command.get("getMore") in \
                self.stream_cursors:
            return
        if self.recording:
            target = event.command.get(event.command_name)
            self.commands.append(f"{event.command_name} {target}" if isinstance(target, str)
                                 else event.command_name)
            self.filters.append((target, command_filter(event.command)))

    def succeeded(self, event):
        if event.request_id in self.stream_requests:
            self.stream_requests.discard(event.request_id)
            cursor = (event.reply or {}).get("cursor") or {}
            if cursor.get("id"):
                self.stream_cursors.add(cursor["id"])

    def failed(self, event):
        self.stream_requests.discard(event.request_id)


def command_filter(command: dict) -> dict:
    """The documents a find, findAndModify, count or aggregate's first `$match` selects."""
    for key in ("filter", "query"):
        if isinstance(command.get(key), dict):
            return dict(command[key])
    stages = command.get("pipeline") or [{}]
    return dict(stages[0].get("$match") or {})


@pytest.fixture
def counter():
    return CommandCounter()


@pytest.fixture
def store_listeners(counter):
    """tests/fixtures.py's store, with `counter` listening on its clients."""
    return [counter]


@pytest.fixture
def app_settings():
    return {"engine": False}


@pytest.fixture
def counted(api, counter):
    """`await counted(method, path, body)`: (status, body, commands) of one request."""

    async def call(method: str, path: str, body=None, headers=None):
        counter.commands, counter.filters = [], []
        counter.recording = True
        try:
            status, answer, _ = await api.call(method, path, body, headers=headers)
        finally:
            counter.recording = False
        return status, answer, list(counter.commands)

    return call


def over_budget(name: str, commands: list[str]) -> str:
    return (f"{name} sent {len(commands)} store commands, budget {BUDGETS[name]}: "
            f"{', '.join(commands)}")


async def seed(make) -> dict:
    """What the real pages show: job types, jobs with executions in every status, a FAILED
    job with its error, a workspace with a file one job reads, and nothing of it cached."""
    convert = await make.job_type("convert", "1.0", "imaging")
    fetch = await make.job_type("fetch", "2.0", "network")
    workspace = await make.workspace("raw")
    upload = await make.upload(workspace["id"], "a.txt", b"hello")
    reader = await make.job_type("reader", "1.0", "imaging", interface={
        "version": "1.0", "command": "cat", "command_arguments": "${f}",
        "input_data": [{"name": "f", "type": "file", "required": True}], "output_data": []})
    with_input, _ = await make.queued(reader, {"version": "1.0", "input_data": [
        {"name": "f", "file_id": upload["id"]}], "output_data": []},
        input_file_ids=[upload["id"]])
    queued, _ = await make.queued(convert)
    running, _ = await make.running(fetch)
    completed, _ = await make.completed(convert, {"version": "1.0", "output_data": []})
    failed, _ = await make.failed(fetch)
    return {"convert": convert, "fetch": fetch, "queued": queued, "running": running,
            "completed": completed, "failed": failed, "with_input": with_input}


async def within_budget(counted, name: str, method: str, path: str, body=None,
                        expected_status=200):
    status, answer, commands = await counted(method, path, body)
    assert status == expected_status, answer
    assert len(commands) <= BUDGETS[name], over_budget(name, commands)
    return answer


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/jobs/", "/jobs/updates/", "/jobs/executions/"])
async def test_job_lists_within_budget(make, counted, path):
    await seed(make)
    await counted("GET", path)  # warm-up
    body = await within_budget(counted, f"GET {path}", "GET", path)
    assert body["count"] == 5


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/jobs/", "/jobs/updates/", "/jobs/executions/"])
@pytest.mark.parametrize("query, matching", [
    ("", {}), ("?status=QUEUED", {"status": "QUEUED"}),
    ("?job_type_id={convert}&status=COMPLETED&status=QUEUED",
     {"job_type_id": "{convert}", "status": {"$in": ["COMPLETED", "QUEUED"]}}),
    ("?job_type_name=convert", {"job_type_name": "convert"}),
    ("?job_type_name=convert&job_type_name=fetch&status=FAILED&status=QUEUED",
     {"job_type_name": {"$in": ["convert", "fetch"]}, "status": {"$in": ["FAILED", "QUEUED"]}}),
    ("?job_type_category=imaging&status=QUEUED",
     {"job_type_name": {"$in": ["convert", "reader"]}, "status": "QUEUED"})],
    ids=["all", "status", "type-and-statuses", "name", "names-and-statuses", "category"])
async def test_job_list_totals_are_the_kept_counts_within_budget(make, counted, store, path,
                                                                query, matching):
    """The totals by status and job type come from the kept counts, one read beside the page
    and the rows' files or executions: never a count over the jobs, which grows with them."""
    convert = (await seed(make))["convert"]["id"]
    query = query.format(convert=convert)
    if "job_type_id" in matching:
        matching = {**matching, "job_type_id": convert}
    await counted("GET", path + query)  # warm-up
    status, body, commands = await counted("GET", path + query)
    assert status == 200, body
    assert len(commands) <= BUDGETS[f"GET {path}"] and "aggregate jobs" not in commands, \
        over_budget(f"GET {path}", commands)
    assert body["count"] == len(body["results"]) == \
        await store.db["jobs"].count_documents(matching)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("which", ["queued", "running", "failed", "completed", "with_input"])
async def test_job_details_within_budget(make, counted, which):
    seeded = await seed(make)
    job = seeded[which]
    await counted("GET", f"/jobs/{job['id']}/")  # warm-up
    body = await within_budget(counted, "GET /jobs/{id}/", "GET", f"/jobs/{job['id']}/")
    assert body["id"] == job["id"]
    assert len(body["job_exes"]) == 1


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("which", ["queued", "running", "failed"])
async def test_cancel_within_budget(make, counted, which):
    seeded = await seed(make)
    job = seeded[which]
    await counted("GET", f"/jobs/{job['id']}/")  # warm-up
    body = await within_budget(counted, "PATCH /jobs/{id}/ cancel", "PATCH",
                               f"/jobs/{job['id']}/", {"status": "CANCELED"})
    assert body["status"] == "CANCELED"
    assert body["error"] is None
    assert [e["status"] for e in body["job_exes"]] == (
        ["FAILED"] if which == "failed" else ["CANCELED"])


@pytest.mark.gen_test(timeout=60)
async def test_new_job_within_budget(make, counted):
    seeded = await seed(make)
    submission = {"job_type_id": seeded["convert"]["id"],
                  "job_data": {"version": "1.0", "input_data": [], "output_data": []}}
    await counted("POST", "/queue/new-job/", submission)  # warm-up
    for _ in range(3):
        body = await within_budget(counted, "POST /queue/new-job/", "POST", "/queue/new-job/",
                                   submission, 201)
        assert body["status"] == "QUEUED"
        assert body["job_type"]["name"] == "convert"
        assert len(body["job_exes"]) == 1


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("name,path", [
    ("GET / (overview)", "/"),
    ("GET /dashboard/jobs", "/dashboard/jobs"),
                                       ("GET /dashboard/jobs/{id}", "/dashboard/jobs/{id}")])
async def test_pages_within_budget(make, counted, name, path):
    seeded = await seed(make)
    path = path.format(id=seeded["failed"]["id"])
    await counted("GET", path)  # warm-up
    await within_budget(counted, name, "GET", path)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("query, total", [("", 5), ("?status=QUEUED", 2)])
async def test_the_jobs_page_total_is_the_kept_counts(make, counted, query, total):
    """The jobs page's total by status and job type, as the API lists': no count over the jobs."""
    await seed(make)
    await counted("GET", f"/dashboard/jobs{query}")  # warm-up
    status, page, commands = await counted("GET", f"/dashboard/jobs{query}")
    assert status == 200
    assert len(commands) <= BUDGETS["GET /dashboard/jobs"] and "aggregate jobs" not in commands, \
        over_budget("GET /dashboard/jobs", commands)
    assert f"<strong data-count>{total}</strong> jobs" in page


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("method, path, body, expected", [
    ("GET", "/jobs/{id}/", None, "Job {id} does not exist"),
    ("PATCH", "/jobs/{id}/", {"status": "CANCELED"}, "Job {id} does not exist"),
    ("GET", "/job-executions/{id}/", None, "Job execution {id} does not exist"),
    ("GET", "/dashboard/jobs/{id}", None, None),
    ("GET", "/files/{id}/", None, "File {id} does not exist")],
    ids=["job", "cancel", "execution", "job-page", "file"])
async def test_an_id_that_does_not_exist_is_looked_up_by_its_key_alone(
        make, counted, counter, method, path, body, expected):
    """A job, execution or file that does not exist is a 404 after reads by `_id` alone: a
    read by `id` reads every document on nx-27017 (175 ms at 100,000 jobs), which any client
    could send over and over, for ids past the highest."""
    seeded = await seed(make)
    missing = max(doc["id"] for doc in seeded.values()) + 10_000
    path = path.format(id=missing)
    await counted(method, path, body)  # warm-up
    status, answer, commands = await counted(method, path, body)
    assert status == 404
    if expected is not None:
        assert answer == expected.format(id=missing) + "\n"
    looked_up = [(collection, flt) for collection, flt in counter.filters
                 if collection in ID_KEYED]
    assert looked_up and all("id" not in flt for _, flt in looked_up), looked_up
    assert len(commands) <= 3, commands


def test_budget_counts_the_apps_commands():
    """The budgets above are the issue's."""
    assert TEST_SETTINGS.engine is True  # so this module's app_settings must turn it off
    assert max(BUDGETS.values()) == 4


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_submissions_share_their_writes_and_fail_alone(store, make, counter):
    """Submissions pending together are written together (three inserts per batch); one whose
    data the store cannot encode fails alone, with nothing of it left, the others stored."""
    job_type = await make.job_type("convert", "1.0", "imaging")
    events_before = await store.db.count("trigger_events", {})
    good = {"version": "1.0", "input_data": [], "output_data": []}
    bad = {**good, "note": "\ud800"}
    counter.commands, counter.recording = [], True
    try:
        outcomes = await asyncio.gather(*(
            store.jobs.submit_user_job(job_type, bad if n == 3 else good, "")
            for n in range(8)), return_exceptions=True)
    finally:
        counter.recording = False
    assert [type(o).__name__ for o in outcomes] == ["tuple"] * 3 + ["Unstorable"] + \
        ["tuple"] * 4
    stored = [o for o in outcomes if isinstance(o, tuple)]
    assert [(await store.jobs.get_job(job["id"]))["status"] for job, _ in stored] == \
        ["QUEUED"] * 7
    assert await store.db.count("jobs", {}) == 7
    assert await store.db.count("job_exes", {}) == 7
    assert await store.db.count("trigger_events", {}) == events_before + 7
    # Together: far fewer than the 3 inserts each that one at a time would take.
    inserts = [c for c in counter.commands if c.startswith("insert")]
    assert len(inserts) < 3 * 8, counter.commands


@pytest.mark.gen_test(timeout=60)
async def test_a_job_types_change_here_shows_at_once_in_job_answers(make, api):
    """The job type cache (store/cache.py) drops what this process changes."""
    job_type = await make.posted_type("scan")
    job = await make.submit(job_type)
    status, body, _ = await api.get(f"/jobs/{job['id']}/")
    assert (status, body["job_type"]["is_paused"]) == (200, False)
    status, body, _ = await api.patch(f"/job-types/{job_type['id']}/", {"is_paused": True})
    assert status == 200, body
    status, body, _ = await api.get(f"/jobs/{job['id']}/")
    assert (status, body["job_type"]["is_paused"]) == (200, True)
    status, body, _ = await api.get("/jobs/")
    assert [row["job_type"]["is_paused"] for row in body["results"]] == [True]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("query", ["?started=PT1H", "?started=PT30M&status=QUEUED&status=FAILED",
                                   "?started=PT1H&job_type_name=convert"])
async def test_recent_updates_are_counted_from_the_kept_minutes_within_budget(make, counted,
                                                                              store, query):
    """/jobs/updates/ over the last hour or so: its total from the kept per-minute counts (and
    page 1's rows for the first minute), not a count over the range's jobs."""
    await seed(make)
    await counted("GET", "/jobs/updates/" + query)  # warm-up
    status, body, commands = await counted("GET", "/jobs/updates/" + query)
    assert status == 200, body
    assert len(commands) <= BUDGETS["GET /jobs/updates/"] and "aggregate jobs" not in commands, \
        over_budget("GET /jobs/updates/", commands)
    assert body["count"] == len(body["results"]) == {
        "?started=PT1H": 5, "?started=PT30M&status=QUEUED&status=FAILED": 3,
        "?started=PT1H&job_type_name=convert": 2}[query]
