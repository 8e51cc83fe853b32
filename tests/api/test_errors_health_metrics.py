"""/errors/ (Scale's built-in errors seeded), /health, /metrics and unknown paths."""

import re

import pytest
from pymongo.errors import WriteError

from core.model import BUILTIN_ERRORS
from tests.api.test_records_security import Failing
from tests.responses import ERROR_KEYS, TIME_FORMAT, assert_plain_error


@pytest.mark.gen_test
async def test_builtin_errors_are_listed(api):
    status, body, _ = await api.get("/errors/")
    assert status == 200
    assert body["count"] == len(BUILTIN_ERRORS) and body["next"] is None
    rows = body["results"]
    assert all(list(r) == ERROR_KEYS for r in rows)
    assert [(r["name"], r["title"], r["description"], r["category"]) for r in rows] == [
        tuple(e) for e in BUILTIN_ERRORS]
    assert all(TIME_FORMAT.match(r["created"]) for r in rows)
    _, page, _ = await api.get("/errors/?page_size=5&page=3")
    assert [r["name"] for r in page["results"]] == [e[0] for e in BUILTIN_ERRORS[10:]]
    assert page["previous"].endswith("/errors/?page_size=5&page=2")


@pytest.mark.gen_test
async def test_error_details(api):
    _, body, _ = await api.get("/errors/")
    first = body["results"][0]
    status, one, _ = await api.get(f"/errors/{first['id']}/")
    assert (status, one) == (200, first)
    status, text, headers = await api.get("/errors/9999/")
    assert_plain_error(status, text, headers, 404, "Error 9999 does not exist")
    for query, code in (("page=0", 400), ("page=2", 404), ("page_size=abc", 400),
                        ("page=99999999999999999999", 404)):
        status, text, headers = await api.get(f"/errors/?{query}")
        assert_plain_error(status, text, headers, code)


@pytest.mark.gen_test
async def test_health_pings_the_store(api):
    status, body, headers = await api.get("/health")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert list(body) == ["status", "store", "live"]
    assert body["status"] == "ok" and body["store"]["reachable"] is True
    assert list(body["store"]) == ["reachable", "ping_ms", "writable", "problem"]
    assert isinstance(body["store"]["ping_ms"], float)
    assert (body["store"]["writable"], body["store"]["problem"]) == (True, None)
    assert body["live"] == {"running": False, "mode": None, "lag_seconds": 0.0,
                            "max_lag_seconds": 0.0, "restarts": 0}


@pytest.mark.gen_test
async def test_a_write_the_store_refuses_is_a_503_naming_why_until_writes_work(
        api, store, make, monkeypatch, http_client, base_url):
    """What nx-27017 answers on a full disk (tests/test_disk_full.py has the real one): a 503
    with the cause, not the unreachable-store message; /metrics says so until a probe write
    (made by /health, since a failure was seen) succeeds."""
    job_type = await make.job_type()

    Failing(monkeypatch, "insert_one", "trigger_events",
            WriteError("database or disk is full", 8, {"code": 8,
                                                       "errmsg": "database or disk is full"}))
    status, body, headers = await api.post("/queue/new-job/", {"job_type_id": job_type["id"]})
    assert_plain_error(status, body, headers, 503)
    assert body == ("The job store cannot write: no space left on the store's disk; try again "
                    "later.\n")
    assert int(headers["Retry-After"]) > 0

    async def writable() -> str:
        text = (await http_client.fetch(base_url + "/metrics")).body.decode()
        return re.search(r"^jobdeck_store_writable (\S+)$", text, re.MULTILINE).group(1)

    assert await writable() == "0.0"
    monkeypatch.undo()
    status, health, _ = await api.get("/health")
    assert (status, health["status"], health["store"]["writable"]) == (200, "ok", True)
    assert await writable() == "1.0"
    assert (await api.post("/queue/new-job/", {"job_type_id": job_type["id"]}))[0] == 201


@pytest.mark.gen_test
async def test_metrics_histogram_by_handler_and_status(api, http_client, base_url):
    await api.get("/jobs/")
    await api.get("/jobs/?status=NOPE")
    response = await http_client.fetch(base_url + "/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    assert "# TYPE jobdeck_request_seconds histogram" in text
    for status in ("200", "400"):
        pattern = (r'^jobdeck_request_seconds_count\{handler="JobsHandler",method="GET",'
                   rf'status="{status}"\}} ([0-9.]+)$')
        match = re.search(pattern, text, re.MULTILINE)
        assert match and float(match.group(1)) >= 1, status
    assert re.search(r'^jobdeck_request_seconds_bucket\{handler="JobsHandler",le="\+Inf",'
                     r'method="GET",status="200"\} ', text, re.MULTILINE)


@pytest.mark.gen_test
async def test_unknown_paths_and_methods_are_plain(api):
    status, body, headers = await api.get("/nope/")
    assert_plain_error(status, body, headers, 404, "No such endpoint: /nope/")
    status, body, headers = await api.call("DELETE", "/jobs/")
    assert_plain_error(status, body, headers, 405)
    status, body, headers = await api.post("/jobs/updates/", {})
    assert_plain_error(status, body, headers, 405)
