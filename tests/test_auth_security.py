"""The attacks of issue 11 on the auth layer, each reproduced against the real app: XSRF token
fixation and cross-site job submission (item 2), login throttle bypass and login floods (item 5),
sessions that outlive logout (item 6), and login CSRF through the login link (item 7)."""

import asyncio
import inspect
import json
import re
import threading
import time
import uuid
from urllib.parse import urlencode

import pymongo
import pytest
from tornado import httputil
from tornado.httpclient import AsyncHTTPClient
from tornado.util import _websocket_mask
from tornado.web import decode_signed_value

from auth.identity import SESSION_COOKIE, Authenticator, session_key
from auth.login import LOGIN_FAILURES_ALLOWED, PASSWORD_CHECK_QUEUE, PASSWORD_CHECK_WORKERS
from auth.proxies import client_address, client_scheme
from core.credentials import hash_password
from core.settings import Settings, SettingsError
from routes import routes
from server import make_app
from tests.test_auth import (
    DIRECT,
    MISSING,
    NEW_TYPE,
    PASSWORD,
    Server,
    Session,
    assert_plain,
    request,
    text,
)
from tests.tokens import OPERATOR_HEADERS, OPERATOR_TOKEN, TEST_SETTINGS, VIEWER_TOKEN

JSON = {"Content-Type": "application/json"}
SECRET = "a-cookie-secret-for-these-tests-0123456789"
USERS_SETTINGS = TEST_SETTINGS.replace(users=(f"ada:operator:{hash_password(PASSWORD)}",),
                                       cookie_secret=SECRET)
CROSS_SITE = ("Cross-site request refused (Sec-Fetch-Site: {}): changes made with the session "
              "cookie must come from this server's own pages\n")
CROSS_ORIGIN = ("Cross-origin request refused (Origin: {}): changes made with the session "
                "cookie must come from this server's own pages\n")
XSRF_HELP = ("; the dashboard sends the X-XSRFToken header, API clients use 'Authorization: "
             "Bearer <token>'\n")
NOT_THIS_SESSION = "XSRF check failed (the token is not this session's)" + XSRF_HELP
NO_TOKEN = "XSRF check failed (the request carries no XSRF token)" + XSRF_HELP


@pytest.fixture
def app(request, store, hub):
    """tests/fixtures.py's app, or one made with the settings a test passes indirectly."""
    return make_app(store, getattr(request, "param", TEST_SETTINGS), hub)


@pytest.fixture
def session(http_client, base_url):
    return Session(http_client, base_url)


@pytest.fixture
def other_session(http_client, base_url):
    return Session(http_client, base_url)


def planted_xsrf_cookie() -> str:
    """A well-formed Tornado `_xsrf` cookie whose token the attacker chose; a page on another
    port of the same host can set it (cookies ignore ports)."""
    mask = b"\x01\x02\x03\x04"
    return (f"2|{mask.hex()}|{_websocket_mask(mask, b'attacker-chosen-token').hex()}|"
            f"{int(time.time())}")


def other_port(base_url: str) -> str:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return f"http://{host}:{int(port) + 1}"


async def job_type_names(store) -> list[str]:
    return [t["name"] for t in await store.job_types.all_job_types()]


# -- item 2: XSRF token fixation, cross-site job submission --------------------------------------

@pytest.mark.gen_test
async def test_the_cross_port_job_type_attack_is_refused(session, base_url, store):
    """The attack as found: a page on another port plants `_xsrf`, then posts a text/plain form
    whose body is JSON, with `_xsrf` in the query string, to the operator's session."""
    await session.login(OPERATOR_TOKEN)
    planted = planted_xsrf_cookie()
    session.cookies["_xsrf"] = planted
    response = await session.fetch(
        "/job-types/?" + urlencode({"_xsrf": planted}), "POST", NEW_TYPE,
        headers={"Content-Type": "text/plain", "Origin": other_port(base_url),
                 "Sec-Fetch-Site": "same-site"})
    assert_plain(response, 403, CROSS_SITE.format("same-site"))
    assert await job_type_names(store) == []


@pytest.mark.gen_test
async def test_a_planted_xsrf_cookie_makes_no_valid_token(session, store):
    await session.login(OPERATOR_TOKEN)
    planted = planted_xsrf_cookie()
    session.cookies["_xsrf"] = planted
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={**JSON, "X-XSRFToken": planted})
    assert_plain(response, 403, NOT_THIS_SESSION)
    assert await job_type_names(store) == []


@pytest.mark.gen_test
async def test_the_token_is_bound_to_its_session(session, other_session, store):
    await session.login(OPERATOR_TOKEN)
    await other_session.login(OPERATOR_TOKEN)
    theirs = await other_session.page_xsrf()
    assert theirs != await session.page_xsrf()
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={**JSON, "X-XSRFToken": theirs})
    assert_plain(response, 403, NOT_THIS_SESSION)
    assert await job_type_names(store) == []
    response = await other_session.fetch("/job-types/", "POST", NEW_TYPE,
                                         headers={**JSON, "X-XSRFToken": theirs})
    assert response.code == 201, text(response)


@pytest.mark.gen_test
async def test_the_xsrf_token_is_never_taken_from_the_query_string(session, store):
    await session.login(OPERATOR_TOKEN)
    token = await session.page_xsrf()
    response = await session.fetch("/job-types/?" + urlencode({"_xsrf": token}), "POST",
                                   NEW_TYPE, headers=JSON)
    assert_plain(response, 403, NO_TOKEN)
    assert await job_type_names(store) == []


@pytest.mark.gen_test
async def test_the_xsrf_form_field_counts_only_on_the_dashboards_own_forms(session, store):
    """A form post can carry `_xsrf` in its body; the API's JSON endpoints do not read it (and
    refuse a form body anyway)."""
    await session.login(OPERATOR_TOKEN)
    token = await session.page_xsrf()
    response = await session.fetch("/job-types/", "POST", urlencode({"_xsrf": token}),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_plain(response, 403, NO_TOKEN)
    assert await job_type_names(store) == []


@pytest.mark.gen_test
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded",
                                          "application/jsonx", "application/json; charset=latin-1"])
async def test_json_endpoints_take_only_application_json(api, store, content_type):
    status, body, response_headers = await api.call("POST", "/job-types/", raw=NEW_TYPE.encode(),
                                                    headers={"Content-Type": content_type})
    if content_type.endswith("latin-1"):
        expected = "JSON bodies must be UTF-8, not charset application/json; charset=latin-1\n"
    else:
        expected = f"Send a JSON body with Content-Type: application/json, not {content_type}\n"
    assert (status, body) == (415, expected)
    assert response_headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert await job_type_names(store) == []


@pytest.mark.gen_test
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8"])
async def test_json_with_or_without_a_utf8_charset_is_taken(api, content_type):
    status, body, _ = await api.call("POST", "/job-types/", raw=NEW_TYPE.encode(),
                                     headers={"Content-Type": content_type})
    assert status == 201, body


@pytest.mark.gen_test
async def test_a_request_without_a_body_needs_no_content_type(http_client, base_url):
    response = await http_client.fetch(base_url + "/queue/requeue-jobs/", method="POST", body=b"",
                                       headers={**OPERATOR_HEADERS, "Content-Type": ""},
                                       raise_error=False)
    assert_plain(response, 400, "Request body must be a JSON object\n")


@pytest.mark.gen_test
@pytest.mark.parametrize("headers, message", [
    ({"Sec-Fetch-Site": "same-site"}, CROSS_SITE.format("same-site")),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
     CROSS_SITE.format("cross-site")),
    ({"Origin": "OTHER_PORT"}, CROSS_ORIGIN.format("OTHER_PORT")),
    ({"Origin": "null"}, CROSS_ORIGIN.format("null")),
])
async def test_cookie_changes_from_another_origin_are_refused_even_with_the_token(
        session, base_url, store, headers, message):
    await session.login(OPERATOR_TOKEN)
    token = await session.page_xsrf()
    headers = {k: v.replace("OTHER_PORT", other_port(base_url)) for k, v in headers.items()}
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={**JSON, "X-XSRFToken": token, **headers})
    assert_plain(response, 403, message.replace("OTHER_PORT", other_port(base_url)))
    assert await job_type_names(store) == []


@pytest.mark.gen_test
@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "same-origin"}, {"Origin": "SELF"},
                                     {"Sec-Fetch-Site": "same-origin", "Origin": "SELF"}])
async def test_the_dashboards_own_changes_pass(session, base_url, headers):
    await session.login(OPERATOR_TOKEN)
    token = await session.page_xsrf()
    headers = {k: v.replace("SELF", base_url) for k, v in headers.items()}
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={**JSON, "X-XSRFToken": token, **headers})
    assert response.code == 201, text(response)


@pytest.mark.gen_test
async def test_bearer_clients_need_no_token_and_no_origin(http_client, base_url):
    response = await http_client.fetch(
        base_url + "/job-types/", method="POST", body=NEW_TYPE, raise_error=False,
        headers={**OPERATOR_HEADERS, **JSON, "Sec-Fetch-Site": "cross-site",
                 "Origin": "http://evil.example"})
    assert response.code == 201, response.body


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [Settings(auth=False)], indirect=True)
async def test_auth_off_the_cross_port_attack_is_refused_and_the_dashboard_works(
        app, session, base_url, store):
    planted = planted_xsrf_cookie()
    session.cookies["_xsrf"] = planted
    response = await session.fetch(
        "/job-types/?" + urlencode({"_xsrf": planted}), "POST", NEW_TYPE,
        headers={"Content-Type": "text/plain", "Origin": other_port(base_url)})
    assert_plain(response, 403, CROSS_ORIGIN.format(other_port(base_url)))
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        **JSON, "X-XSRFToken": planted, "Origin": base_url, "Sec-Fetch-Site": "same-origin"})
    assert_plain(response, 403, NOT_THIS_SESSION)
    assert await job_type_names(store) == []
    token = await session.page_xsrf()  # the dashboard's own page and script
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        **JSON, "X-XSRFToken": token, "Origin": base_url, "Sec-Fetch-Site": "same-origin"})
    assert response.code == 201, text(response)
    response = await session.fetch("/job-types/", "POST", NEW_TYPE.replace("auth-test", "cli"),
                                   headers=JSON)  # not a browser: no Origin, no Sec-Fetch-*
    assert response.code == 201, text(response)


def test_every_prepare_awaits_the_authorization():
    """BaseHandler.prepare is a coroutine (it looks the session up in the store): an override
    that called it without awaiting would skip authorization."""
    for route in routes():
        handler = route[1]
        prepare = getattr(handler, "prepare", None)
        if prepare is not None and "prepare" in vars(handler):
            assert inspect.iscoroutinefunction(prepare), handler.__name__


# -- item 5: the login throttle and login floods -------------------------------------------------

def forwarded(address: str) -> dict:
    return {"X-Forwarded-For": address, "X-Real-IP": address}


async def login_form(session: Session) -> dict:
    page = await session.fetch("/login")
    return {"_xsrf": re.search(r'name="_xsrf" value="([^"]+)"', text(page)).group(1),
            "next": "/"}


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("app", [USERS_SETTINGS], indirect=True)
async def test_concurrent_wrong_passwords_are_checked_only_up_to_the_limit(app, session,
                                                                          base_url):
    form = await login_form(session)
    body = urlencode({**form, "username": "ada", "password": "wrong password"})
    client = AsyncHTTPClient(force_instance=True, max_clients=100)
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    try:
        responses = await asyncio.gather(*(
            client.fetch(base_url + "/login", method="POST", body=body, raise_error=False,
                         follow_redirects=False, headers={"Cookie": cookie})
            for _ in range(60)))
    finally:
        client.close()
    codes = [r.code for r in responses]
    assert (codes.count(401), codes.count(429)) == (LOGIN_FAILURES_ALLOWED,
                                                    60 - LOGIN_FAILURES_ALLOWED), codes
    refused = next(r for r in responses if r.code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed logins from this address; try again in" in text(refused)


@pytest.mark.gen_test
async def test_spoofed_forwarding_headers_do_not_reset_the_throttle(session):
    for i in range(LOGIN_FAILURES_ALLOWED):
        response = await session.fetch("/login?token=wrong-token-wrong-token",
                                       headers={**DIRECT, **forwarded(f"198.51.100.{i}")})
        assert response.code == 401
    response = await session.fetch("/login?token=wrong-token-wrong-token",
                                   headers={**DIRECT, **forwarded("198.51.100.99")})
    assert response.code == 429
    assert "Too many failed logins from this address" in text(response)


def test_the_server_believes_no_forwarding_headers_by_default(mongo_url, tmp_path):
    """server.py itself (it listened with Tornado's xheaders, which believe any peer)."""
    db_name = f"test_auth_sec_{uuid.uuid4().hex[:12]}"
    server = Server(mongo_url, db_name, tmp_path / "data")
    try:
        server.wait_ready()
        codes = [request(server.url + "/login?token=wrong-token-wrong-token",
                         headers={**DIRECT, **forwarded(f"198.51.100.{i}")})[0]
                 for i in range(LOGIN_FAILURES_ALLOWED + 2)]
    finally:
        server.stop()
        with pymongo.MongoClient(mongo_url) as client:
            client.drop_database(db_name)
    assert codes == [401] * LOGIN_FAILURES_ALLOWED + [429, 429]


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [TEST_SETTINGS.replace(trusted_proxies=("127.0.0.0/8",))],
                         indirect=True)
async def test_a_trusted_proxys_forwarded_for_names_the_client(app, session):
    for i in range(LOGIN_FAILURES_ALLOWED + 1):  # each its own client: none throttled
        response = await session.fetch("/login?token=wrong-token-wrong-token", headers={
            **DIRECT, "X-Forwarded-For": f"203.0.113.{i}"})
        assert response.code == 401
    for _ in range(LOGIN_FAILURES_ALLOWED):  # a client lying in front of the proxy
        await session.fetch("/login?token=wrong-token-wrong-token", headers={
            **DIRECT, "X-Forwarded-For": "203.0.113.77"})
    response = await session.fetch("/login?token=wrong-token-wrong-token", headers={
        **DIRECT, "X-Forwarded-For": "10.9.9.9, 203.0.113.77"})
    assert response.code == 429


def test_client_address_walks_forwarded_for_from_the_right():
    trusted = ("10.0.0.0/8", "127.0.0.1/32")

    def headers(**values):
        return httputil.HTTPHeaders({k.replace("_", "-"): v for k, v in values.items()})

    assert client_address("192.0.2.1", headers(X_Forwarded_For="1.1.1.1"), trusted) == \
        "192.0.2.1"  # an untrusted peer: its own address
    assert client_address("127.0.0.1", headers(X_Forwarded_For="1.1.1.1"), ()) == "127.0.0.1"
    assert client_address("127.0.0.1", headers(X_Forwarded_For="6.6.6.6, 1.1.1.1, 10.0.0.2"),
                          trusted) == "1.1.1.1"
    assert client_address("127.0.0.1", headers(X_Forwarded_For="junk, 10.0.0.2"),
                          trusted) == "10.0.0.2"
    assert client_address("127.0.0.1", headers(X_Real_IP="2001:db8::1"), trusted) == \
        "2001:db8::1"
    assert client_address("127.0.0.1", headers(X_Real_IP="1.1.1.1", X_Forwarded_For="2.2.2.2"),
                          trusted) == "2.2.2.2"
    assert client_address("::ffff:127.0.0.1", headers(X_Forwarded_For="2.2.2.2"),
                          trusted) == "2.2.2.2"
    assert client_scheme("127.0.0.1", headers(X_Forwarded_Proto="https"), "http",
                         trusted) == "https"
    assert client_scheme("192.0.2.1", headers(X_Forwarded_Proto="https"), "http",
                         trusted) == "http"


def test_trusted_proxies_setting():
    assert Settings(trusted_proxies="10.0.0.0/8, 192.0.2.7,::1").trusted_proxies == (
        "10.0.0.0/8", "192.0.2.7/32", "::1/128")
    assert Settings().trusted_proxies == ()
    with pytest.raises(SettingsError, match="trusted_proxies must be ip_networks, not 'proxy'"):
        Settings(trusted_proxies="proxy")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("app", [USERS_SETTINGS.replace(trusted_proxies=("127.0.0.1",))],
                         indirect=True)
async def test_a_login_flood_is_bounded_and_health_answers_during_it(app, session, base_url,
                                                                     http_client):
    """The password checks' workers are busy: 100 bogus logins from 100 addresses (behind a
    trusted proxy, so the per-address throttle does not stop them): a queue's worth wait, the
    rest get 503 at once, and /health answers while they wait."""
    checks = app.settings["password_checks"]
    release = threading.Event()
    blockers = [asyncio.ensure_future(checks.run(release.wait))
                for _ in range(PASSWORD_CHECK_WORKERS)]
    await asyncio.sleep(0)
    assert checks.in_flight == PASSWORD_CHECK_WORKERS
    form = await login_form(session)
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    client = AsyncHTTPClient(force_instance=True, max_clients=150)
    try:
        logins = [asyncio.ensure_future(client.fetch(
            base_url + "/login", method="POST", raise_error=False, follow_redirects=False,
            body=urlencode({**form, "username": f"nobody{i}", "password": "x"}),
            headers={"Cookie": cookie, "X-Forwarded-For": f"198.51.100.{i}"}))
            for i in range(100)]
        refused = 100 - PASSWORD_CHECK_QUEUE
        while sum(f.done() for f in logins) < refused:  # the refused ones answer at once
            await asyncio.wait([f for f in logins if not f.done()],
                               return_when=asyncio.FIRST_COMPLETED)
        done = [f.result() for f in logins if f.done()]
        assert [r.code for r in done] == [503] * refused
        assert done[0].headers["Retry-After"] == "2"
        assert "The server is busy checking other logins; try again in 2 s." in text(done[0])
        health = await http_client.fetch(base_url + "/health", raise_error=False)
        assert health.code == 200
        waiting = [f for f in logins if not f.done()]
        assert len(waiting) == PASSWORD_CHECK_QUEUE  # still queued after /health answered
        release.set()
        await asyncio.gather(*blockers)
        assert [r.code for r in await asyncio.gather(*waiting)] == [401] * PASSWORD_CHECK_QUEUE
    finally:
        release.set()
        client.close()
    response = await session.login(username="ada", password=PASSWORD)
    assert response.code == 303


# -- item 6: logout and credential changes end sessions ------------------------------------------

@pytest.mark.gen_test
async def test_a_saved_cookie_stops_working_after_logout(session):
    await session.login(OPERATOR_TOKEN)
    saved = session.cookies[SESSION_COOKIE]
    assert (await session.fetch("/jobs/")).code == 200
    token = await session.page_xsrf()
    response = await session.fetch("/logout", "POST", urlencode({"_xsrf": token}))
    assert (response.code, response.headers["Location"]) == (303, "/login")
    session.cookies[SESSION_COOKIE] = saved  # replayed, as from a copy of the cookie jar
    assert_plain(await session.fetch("/jobs/"), 401, MISSING)
    response = await session.fetch("/dashboard/jobs")
    assert (response.code, response.headers["Location"]) == (
        302, "/login?" + urlencode({"next": "/dashboard/jobs"}))


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("app", [USERS_SETTINGS], indirect=True)
async def test_a_changed_password_ends_the_sessions_made_with_the_old_one(app, session):
    response = await session.login(username="ada", password=PASSWORD)
    assert response.code == 303
    assert (await session.fetch("/jobs/")).code == 200
    # A restart with a new password hash for ada (same cookie secret, same store).
    app.settings["authenticator"] = Authenticator(
        True, USERS_SETTINGS.tokens, (f"ada:operator:{hash_password('a new password!')}",),
        SECRET)
    assert_plain(await session.fetch("/jobs/"), 401, MISSING)


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [USERS_SETTINGS], indirect=True)
async def test_a_changed_token_ends_the_sessions_made_with_the_old_one(app, session):
    await session.login(OPERATOR_TOKEN)
    assert (await session.fetch("/jobs/")).code == 200
    app.settings["authenticator"] = Authenticator(
        True, (f"operator:{OPERATOR_TOKEN}-rotated", f"viewer:{VIEWER_TOKEN}"), (), SECRET)
    assert_plain(await session.fetch("/jobs/"), 401, MISSING)


@pytest.mark.gen_test
async def test_an_expired_session_record_is_no_session(session, store):
    await session.login(OPERATOR_TOKEN)
    assert (await session.fetch("/jobs/")).code == 200
    await store.db["sessions"].update_many({}, {"$set": {"expires": 1}})
    assert_plain(await session.fetch("/jobs/"), 401, MISSING)


@pytest.mark.gen_test
async def test_the_store_keeps_only_a_hash_of_the_session_id(app, session, store):
    await session.login(OPERATOR_TOKEN)
    session_id = decode_signed_value(app.settings["cookie_secret"], SESSION_COOKIE,
                                     session.cookies[SESSION_COOKIE]).decode()
    records = await store.db["sessions"].find({}).to_list(None)
    assert [r["_id"] for r in records] == [session_key(session_id)]
    assert session_id not in json.dumps(records, default=str)
    assert {k: records[0][k] for k in ("kind", "name")} == {"kind": "token", "name": "token"}


# -- item 7: login CSRF through the login link ---------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("site", ["cross-site", "same-site", None])
async def test_a_login_link_from_elsewhere_asks_before_logging_in(session, base_url, site):
    headers = {} if site is None else {"Sec-Fetch-Site": site}
    url = "/login?" + urlencode({"token": VIEWER_TOKEN, "next": "/dashboard/jobs"})
    response = await session.fetch(url, headers=headers)
    assert response.code == 200
    page = text(response)
    assert "You followed a login link from another page." in page
    assert f'name="token" value="{VIEWER_TOKEN}"' in page
    assert SESSION_COOKIE not in session.cookies
    assert (await session.fetch("/dashboard/jobs")).code == 302
    # The user confirms: the form posts from this server's page.
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    response = await session.fetch("/login", "POST", urlencode({
        "_xsrf": xsrf, "next": "/dashboard/jobs", "token": VIEWER_TOKEN}),
        headers={"Origin": base_url, "Sec-Fetch-Site": "same-origin"})
    assert (response.code, response.headers["Location"]) == (303, "/dashboard/jobs")
    assert (await session.fetch("/dashboard/jobs")).code == 200


@pytest.mark.gen_test
@pytest.mark.parametrize("site", ["none", "same-origin"])
async def test_a_login_link_opened_directly_or_from_this_server_logs_in(session, site):
    response = await session.fetch("/login?" + urlencode({"token": VIEWER_TOKEN}),
                                   headers={"Sec-Fetch-Site": site})
    assert (response.code, response.headers["Location"]) == (303, "/")
    assert SESSION_COOKIE in session.cookies


@pytest.mark.gen_test
async def test_a_cross_origin_login_form_post_is_refused(session, other_session, base_url):
    """The attacker takes a login form's cookie and token from their own visit, plants the
    cookie from another port and posts their token: refused for its origin."""
    form = await login_form(other_session)
    session.cookies.update(other_session.cookies)
    response = await session.fetch("/login", "POST", urlencode({**form, "token": OPERATOR_TOKEN}),
                                   headers={"Origin": other_port(base_url)})
    assert_plain(response, 403, CROSS_ORIGIN.format(other_port(base_url)))
    assert SESSION_COOKIE not in session.cookies
