"""Issue 11, items 8, 9 and 11: text that cannot be stored, partial records, requeue's unknown
fields and its counts, and unsafe stored values (author_url links, control characters in names,
commands that cannot be split). Against the real app on a real port and the real store; store
failures are injected at pymongo's collection methods, under the store's own code."""

import json

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, OperationFailure

from core.text import HTTP_URL_PATTERN
from presentation import models
from presentation.openapi import document
from tests.fixtures import VALUE_INTERFACE
from tests.responses import JOB_KEYS, assert_plain_error

COLLECTIONS = ("jobs", "job_exes", "trigger_events", "job_types", "job_type_revs")
SURROGATE = "\\ud800"  # as the JSON escape a client sends: json.loads makes it a lone surrogate


async def counts(store) -> dict:
    return {name: await store.db.count(name, {}) for name in COLLECTIONS}


def value_data(text: str) -> dict:
    return {"input_data": [{"name": "value", "value": text}]}


# -- item 8: lone surrogates are a 400 naming the field, nothing is written ------------------------

@pytest.mark.gen_test
async def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_naming_it(api, make, store):
    job_type = await make.job_type("surrogates", interface=VALUE_INTERFACE)
    failed, _ = await make.failed(job_type)
    type_id = job_type["id"]
    cases = [
        ("POST", "/queue/new-job/",
         (f'{{"job_type_id": {type_id}, "job_data": {{"input_data": '
         f'[{{"name": "value", "value": "a{SURROGATE}"}}]}}}}'),
         ("job_data.input_data[0].value is not valid Unicode: it holds the lone surrogate "
         "\\ud800")),
        ("POST", "/queue/new-job/",
         f'{{"job_type_id": {type_id}, "job_data": {{"x{SURROGATE}": 1}}}}',
         "A field name in job_data is not valid Unicode: it holds the lone surrogate \\ud800"),
        ("POST", "/job-types/",
         (f'{{"name": "n{SURROGATE}", "version": "1", "interface": '
         f'{json.dumps(VALUE_INTERFACE)}}}'),
         "name is not valid Unicode: it holds the lone surrogate \\ud800"),
        ("PATCH", f"/job-types/{type_id}/", f'{{"title": "x{SURROGATE}x"}}',
         "title is not valid Unicode: it holds the lone surrogate \\ud800"),
        ("POST", "/queue/requeue-jobs/", f'{{"job_type_names": ["ok", "{SURROGATE}"]}}',
         "job_type_names[1] is not valid Unicode: it holds the lone surrogate \\ud800"),
    ]
    before = await counts(store)
    for method, path, raw, message in cases:
        status, body, headers = await api.call(method, path, raw=raw.encode())
        assert_plain_error(status, body, headers, 400)
        assert body == message + "\n", raw
    assert await counts(store) == before
    assert (await store.jobs.get_job(failed["id"]))["status"] == "FAILED"
    status, body, _ = await api.get("/job-executions/")
    assert status == 200 and all(row["job"] is not None for row in body["results"])


@pytest.mark.gen_test
async def test_a_surrogate_pair_is_one_character_and_is_stored(api, make):
    job_type = await make.posted_type("emoji")
    status, body, _ = await api.call(
        "POST", "/queue/new-job/",
        raw=(f'{{"job_type_id": {job_type["id"]}, "job_data": {{"input_data": '
             '[{"name": "value", "value": "\\ud83d\\ude00"}]}}').encode())
    assert status == 201 and body["data"]["input_data"][0]["value"] == "\U0001f600"


# -- item 8: no partial records when a write fails ----------------------------------------------

class Failing:
    """Make `method` of pymongo's AsyncCollection fail on `collection` (once per test), raising
    `error`; with `after`, the write is made first (the acknowledgement is what gets lost)."""

    def __init__(self, monkeypatch, method: str, collection: str, error: Exception,
                 after: bool = False):
        self.calls = 0
        original = getattr(AsyncCollection, method)

        async def failing(coll, *args, **kwargs):
            if coll.name != collection or self.calls:
                return await original(coll, *args, **kwargs)
            self.calls += 1
            if after:
                await original(coll, *args, **kwargs)
            raise error

        monkeypatch.setattr(AsyncCollection, method, failing)


DISK_FULL = OperationFailure("database or disk is full", code=1)
CONNECTION_LOST = AutoReconnect("connection reset by peer")
BAD_DOCUMENT = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


@pytest.mark.gen_test
@pytest.mark.parametrize("collection, error, code", [
    ("trigger_events", DISK_FULL, 503),
    ("job_exes", DISK_FULL, 503),
    ("jobs", DISK_FULL, 503),
    ("job_exes", CONNECTION_LOST, 503),
    ("jobs", CONNECTION_LOST, 503),
    ("jobs", BAD_DOCUMENT, 400),
])
async def test_a_failed_submission_leaves_no_records(api, make, store, monkeypatch, collection,
                                                     error, code):
    job_type = await make.posted_type("atomic")
    before = await counts(store)
    failing = Failing(monkeypatch, "insert_one", collection, error)
    status, body, headers = await api.post(
        "/queue/new-job/", {"job_type_id": job_type["id"], "job_data": value_data("v")})
    assert failing.calls == 1
    assert_plain_error(status, body, headers, code)
    if code == 400:
        assert body == ("The job cannot be stored: 'utf-8' codec can't encode character "
                        "'\\ud800' in position 0: surrogates not allowed\n")
    assert await counts(store) == before
    assert store.db.leftovers == []
    status, body, _ = await api.get("/job-executions/")
    assert status == 200 and body["count"] == 0
    # The store works again: the same submission goes through, whole.
    status, body, _ = await api.post(
        "/queue/new-job/", {"job_type_id": job_type["id"], "job_data": value_data("v")})
    assert status == 201 and body["status"] == "QUEUED" and len(body["job_exes"]) == 1
    after = await counts(store)
    assert (after["jobs"], after["job_exes"], after["trigger_events"]) == (
        before["jobs"] + 1, before["job_exes"] + 1, before["trigger_events"] + 1)


@pytest.mark.gen_test
async def test_a_submission_whose_answer_was_lost_stays_whole(api, make, store, monkeypatch):
    """The job was written but its acknowledgement lost: the job is there, so its execution and
    event stay with it (the client sees a 503 and finds the job in /jobs/)."""
    job_type = await make.posted_type("acked")
    before = await counts(store)
    Failing(monkeypatch, "insert_one", "jobs", CONNECTION_LOST, after=True)
    status, body, headers = await api.post("/queue/new-job/", {"job_type_id": job_type["id"]})
    assert_plain_error(status, body, headers, 503)
    after = await counts(store)
    assert (after["jobs"], after["job_exes"], after["trigger_events"]) == (
        before["jobs"] + 1, before["job_exes"] + 1, before["trigger_events"] + 1)
    _, jobs, _ = await api.get("/jobs/executions/")
    assert jobs["results"][0]["latest_job_exe"]["status"] == "QUEUED"


@pytest.mark.gen_test
@pytest.mark.parametrize("error", [DISK_FULL, CONNECTION_LOST])
async def test_a_failed_job_type_creation_leaves_no_revision(api, store, monkeypatch, error):
    before = await counts(store)
    Failing(monkeypatch, "insert_one", "job_types", error)
    status, body, headers = await api.post("/job-types/", {
        "name": "half", "version": "1", "interface": VALUE_INTERFACE})
    assert_plain_error(status, body, headers, 503)
    assert await counts(store) == before
    status, body, _ = await api.post("/job-types/", {
        "name": "half", "version": "1", "interface": VALUE_INTERFACE})
    assert status == 201 and body["revision_num"] == 1


@pytest.mark.gen_test
async def test_a_failed_interface_change_leaves_no_revision(api, make, store, monkeypatch):
    job_type = await make.posted_type("edited")
    before = await counts(store)
    Failing(monkeypatch, "update_one", "job_types", DISK_FULL)
    status, body, headers = await api.patch(f"/job-types/{job_type['id']}/", {
        "interface": {**VALUE_INTERFACE, "command": "other.sh"}})
    assert_plain_error(status, body, headers, 503)
    assert await counts(store) == before
    _, details, _ = await api.get(f"/job-types/{job_type['id']}/")
    assert details["revision_num"] == 1 and details["interface"]["command"] == "run.sh"


@pytest.mark.gen_test
@pytest.mark.parametrize("error", [DISK_FULL, CONNECTION_LOST])
async def test_a_failed_requeue_leaves_no_execution(api, make, store, monkeypatch, error):
    job_type = await make.job_type("requeued")
    failed, _ = await make.failed(job_type)
    before = await counts(store)
    Failing(monkeypatch, "find_one_and_update", "jobs", error)
    status, body, headers = await api.post("/queue/requeue-jobs/", {"job_ids": [failed["id"]]})
    assert_plain_error(status, body, headers, 503)
    assert await counts(store) == before
    job = await store.jobs.get_job(failed["id"])
    assert job["status"] == "FAILED" and job["num_exes"] == 1
    assert [e["status"] for e in await store.jobs.exes_for_job(failed["id"])] == ["FAILED"]


# -- item 9: requeue's unknown fields and its counts -------------------------------------------

@pytest.mark.gen_test
async def test_requeue_with_a_misspelled_field_is_a_400_and_requeues_nothing(api, make, store):
    job_type = await make.job_type("misspelled")
    one, _ = await make.failed(job_type)
    two, _ = await make.failed(job_type)
    for payload, unknown in (({"job_id": one["id"]}, "job_id"),
                             ({"job_ids": [one["id"]], "statuses": ["FAILED"], "Priority": 1},
                              "Priority, statuses")):
        status, body, headers = await api.post("/queue/requeue-jobs/", payload)
        assert_plain_error(status, body, headers, 400)
        assert body == (f"Unknown fields: {unknown}; the fields are started, ended, status, "
                        "job_ids, job_type_ids, job_type_names, job_type_categories, "
                        "priority\n")
    for job in (one, two):
        assert (await store.jobs.get_job(job["id"]))["status"] == "FAILED"


@pytest.mark.gen_test
async def test_requeue_says_how_many_it_requeued_apart_from_how_many_matched(api, make):
    job_type = await make.job_type("counted")
    failed, _ = await make.failed(job_type)
    done, _ = await make.completed(job_type)
    queued, _ = await make.queued(job_type)
    ids = [failed["id"], done["id"], queued["id"]]
    status, body, headers = await api.post("/queue/requeue-jobs/", {"job_ids": ids})
    assert status == 200 and list(body) == ["count", "next", "previous", "results"]
    assert body["count"] == 3 and all(list(r) == JOB_KEYS for r in body["results"])
    assert (headers["X-Jobs-Matched"], headers["X-Jobs-Requeued"]) == ("3", "1")
    assert set(models.REQUEUE_HEADERS) == {"X-Jobs-Matched", "X-Jobs-Requeued"}
    status, body, headers = await api.post("/queue/requeue-jobs/", {"job_ids": ids})
    assert status == 200 and body["count"] == 3
    assert (headers["X-Jobs-Matched"], headers["X-Jobs-Requeued"]) == ("3", "0")


# -- item 11: author_url, control characters in names, unbalanced quotes -------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:x", "//evil.example/x",
    "http:evil", "http://", "https://exa mple.org/", "http://example.org/\nx", "ftp://x.org/",
    "/relative/path", "",
])
async def test_author_url_must_be_http_or_https(api, make, store, url):
    job_type = await make.posted_type("urls")
    before = await counts(store)
    message = f"author_url must be an http:// or https:// URL, not {url!r}\n"
    status, body, headers = await api.post("/job-types/", {
        "name": "linked", "version": "1", "interface": VALUE_INTERFACE, "author_url": url})
    assert_plain_error(status, body, headers, 400)
    assert body == message
    status, body, headers = await api.patch(f"/job-types/{job_type['id']}/",
                                            {"author_url": url})
    assert_plain_error(status, body, headers, 400)
    assert body == message
    assert await counts(store) == before


@pytest.mark.gen_test
async def test_http_author_urls_and_null_are_accepted(api, make):
    for url in ("http://example.org", "HTTPS://example.org/a?b=c#d", None):
        job_type = await make.posted_type(f"ok{len(str(url))}", author_url=url)
        assert job_type["author_url"] == url


@pytest.mark.gen_test
async def test_a_stored_javascript_url_is_not_rendered_as_a_link(api, make):
    """Values written before the check (or straight into the store) are shown as text."""
    bad = await make.job_type("old", author_name="Mallory", author_url="javascript:alert(1)")
    good = await make.job_type("new", author_name="Alice", author_url="https://alice.example/")
    status, html, _ = await api.get(f"/dashboard/job-types/{bad['id']}")
    assert status == 200
    assert "<dt>Author</dt><dd>Mallory (javascript:alert(1))</dd>" in html
    assert 'href="javascript:' not in html
    status, html, _ = await api.get(f"/dashboard/job-types/{good['id']}")
    assert ('<dt>Author</dt><dd><a href="https://alice.example/" rel="nofollow noopener">'
            "Alice</a></dd>") in html


@pytest.mark.gen_test
@pytest.mark.parametrize("field, text, shown", [
    ("name", "evil\x00name", "'\\x00' at position 4"),
    ("version", "1.0\n", "'\\n' at position 3"),
    ("title", "Title\x1b[31m", "'\\x1b' at position 5"),
    ("category", "cat\r", "'\\r' at position 3"),
    ("author_name", "\x7fbob", "'\\x7f' at position 0"),
    ("icon_code", "f\x85", "'\\x85' at position 1"),
    ("docker_image", "img\t", "'\\t' at position 3"),
    ("description", "line\x00", "'\\x00' at position 4"),
])
async def test_control_characters_in_names_are_a_400(api, make, store, field, text, shown):
    job_type = await make.posted_type("controls")
    before = await counts(store)
    message = f"{field} holds a control character ({shown}); names must be printable text\n"
    if field == "description":
        message = f"{field} holds a control character ({shown})\n"
    body_fields = {"name": "clean", "version": "1", field: text}
    status, body, headers = await api.post("/job-types/",
                                           {**body_fields, "interface": VALUE_INTERFACE})
    assert_plain_error(status, body, headers, 400)
    assert body == message
    if field not in ("name", "version"):
        status, body, headers = await api.patch(f"/job-types/{job_type['id']}/",
                                                {field: text})
        assert_plain_error(status, body, headers, 400)
        assert body == message
    assert await counts(store) == before


@pytest.mark.gen_test
async def test_a_description_keeps_its_lines_and_tabs(api, make):
    job_type = await make.posted_type("described", description="one\n\ttwo\r\nthree")
    assert job_type["description"] == "one\n\ttwo\r\nthree"


@pytest.mark.gen_test
@pytest.mark.parametrize("interface, message", [
    ({"command": "run.sh", "command_arguments": "'${value}"},
     "command_arguments cannot be split into words: No closing quotation"),
    ({"command": "run.sh", "command_arguments": '--name="${value}'},
     "command_arguments cannot be split into words: No closing quotation"),
    ({"command": "run.sh", "command_arguments": "${value} \\"},
     "command_arguments cannot be split into words: No escaped character"),
    ({"command": "'/opt/my tool/run", "command_arguments": ""},
     "command cannot be split into words: No closing quotation"),
    ({"command": "  ", "command_arguments": ""}, "command holds no words"),
    ({"command": "run\x00.sh", "command_arguments": ""},
     "command holds a NUL character, which no command line can carry"),
    ({"command": "run.sh", "command_arguments": "${value}\x00"},
     "command_arguments holds a NUL character, which no command line can carry"),
    ({"command": "run.sh", "command_arguments": "",
      "input_data": [{"name": "value\n", "type": "property"}]},
     "input_data[0].name: 'value\\n' is not a name: use letters, digits, _ and -"),
    ({"command": "run.sh", "command_arguments": "",
      "output_data": [{"name": "out", "type": "file", "media_type": "text/plain\r\nX: y"}]},
     "output_data[0].media_type holds a control character ('\\r' at position 10)"),
    ({"command": "run.sh", "command_arguments": "",
      "shared_resources": [{"name": "db\x00", "type": "database"}]},
     "shared_resources[0].name holds a control character ('\\x00' at position 2)"),
])
async def test_interfaces_that_cannot_run_are_refused_when_registered(api, make, store,
                                                                      interface, message):
    job_type = await make.posted_type("commands")
    before = await counts(store)
    full = {"input_data": [{"name": "value", "type": "property", "required": False}],
            **interface}
    status, body, headers = await api.post("/job-types/", {
        "name": "broken", "version": "1", "interface": full})
    assert_plain_error(status, body, headers, 400)
    assert body == f"Job type interface invalid: {message}\n"
    status, body, headers = await api.patch(f"/job-types/{job_type['id']}/",
                                            {"interface": full})
    assert_plain_error(status, body, headers, 400)
    assert body == f"Job type interface invalid: {message}\n"
    assert await counts(store) == before


@pytest.mark.gen_test
async def test_quoted_commands_that_split_are_accepted(api):
    status, body, _ = await api.post("/job-types/", {
        "name": "quoted", "version": "1", "interface": {
            "command": "'/opt/my tool/run'", "command_arguments": "--name=\"${value} x\" 'a b'",
            "input_data": [{"name": "value", "type": "property"}]}})
    assert status == 201, body


@pytest.mark.gen_test
async def test_a_nul_in_a_job_value_is_a_400(api, make, store):
    job_type = await make.posted_type("nul-value")
    before = await counts(store)
    status, body, headers = await api.post(
        "/queue/new-job/", {"job_type_id": job_type["id"], "job_data": value_data("a\x00b")})
    assert_plain_error(status, body, headers, 400)
    assert body == ("Invalid job data: input_data[0].value holds a NUL character, which no "
                    "command line can carry\n")
    assert await counts(store) == before


def test_the_openapi_document_declares_requeue_fields_and_counts():
    doc = document("http://127.0.0.1")
    body = doc["components"]["schemas"]["RequeueJobs"]
    assert tuple(body["properties"]) == models.REQUEUE_FIELDS
    assert body["additionalProperties"] is False
    ok = doc["paths"]["/queue/requeue-jobs/"]["post"]["responses"]["200"]
    assert set(ok["headers"]) == {"X-Jobs-Matched", "X-Jobs-Requeued"}
    job_type = doc["components"]["schemas"]["JobTypeCreate"]["properties"]
    assert job_type["author_url"]["pattern"] == HTTP_URL_PATTERN
