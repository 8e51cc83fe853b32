"""Authentication, roles, the login page, XSRF, security headers and WebSocket credentials, against
the real app (tests/fixtures.py `app`: auth on with the tokens of tests/tokens.py) and, for the
first start and --no-auth, server.py as a real process."""

import json
import logging
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pymongo
import pytest
import tornado.websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

from auth.identity import SESSION_COOKIE, Authenticator
from auth.login import LOGIN_FAILURES_ALLOWED, LOGIN_WINDOW_S
from auth.sessions import server_auth
from core.credentials import hash_password, hash_token, verify_password
from core.settings import Settings, SettingsError, load_settings
from server import make_app
from tests.tokens import (
    OPERATOR_HEADERS,
    OPERATOR_TOKEN,
    TEST_SETTINGS,
    VIEWER_HEADERS,
    VIEWER_TOKEN,
)

ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 60  # seconds; a guard against a hung start, not a performance assertion
INTERFACE = {"version": "1.0", "command": "run.sh", "command_arguments": "", "input_data": [],
             "output_data": []}
NEW_TYPE = json.dumps({"name": "auth-test", "version": "1.0", "interface": INTERFACE})
MISSING = "Authentication required: send 'Authorization: Bearer <token>' or log in at /login\n"
DIRECT = {"Sec-Fetch-Site": "none"}  # what a browser sends for a URL the user opened itself
XSRF_FAILED = re.compile(r"XSRF check failed \(.+\); the dashboard sends the X-XSRFToken header, "
                         r"API clients use 'Authorization: Bearer <token>'\n")


class Session:
    """An HTTP client that keeps this server's cookies and never follows redirects, like a
    browser tab whose every step the test inspects."""

    def __init__(self, http_client, base_url):
        self.http_client = http_client
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    async def fetch(self, path: str, method: str = "GET", body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is None and method in ("POST", "PATCH"):
            body = b""
        response = await self.http_client.fetch(
            self.base_url + path, method=method, body=body, headers=headers,
            follow_redirects=False, raise_error=False)
        for header in response.headers.get_list("Set-Cookie"):
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response

    async def login(self, token: str = "", next_path: str = "/", **fields):
        page = await self.fetch("/login")
        assert page.code == 200
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode()).group(1)
        form = {"_xsrf": xsrf, "next": next_path, "token": token, **fields}
        return await self.fetch("/login", "POST", urlencode(form))

    async def page_xsrf(self, path: str = "/dashboard/jobs") -> str:
        """The XSRF token a dashboard page hands its scripts (the meta tag)."""
        page = await self.fetch(path)
        assert page.code == 200, page.body
        return re.search(r'<meta name="xsrf-token" content="([^"]+)">',
                         page.body.decode()).group(1)


@pytest.fixture
def session(http_client, base_url):
    return Session(http_client, base_url)


def text(response) -> str:
    return response.body.decode()


def assert_plain(response, status: int, body: str) -> None:
    assert (response.code, text(response)) == (status, body)
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"


# -- tokens and roles --------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_no_credentials_is_401_with_a_bearer_challenge(session):
    response = await session.fetch("/jobs/")
    assert_plain(response, 401, MISSING)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jobdeck"'
    assert_plain(await session.fetch("/job-types/", "POST", NEW_TYPE), 401, MISSING)


@pytest.mark.gen_test
@pytest.mark.parametrize("header, message", [
    ("Bearer not-a-token-this-server-knows", "The Bearer token is not valid on this server"),
    (f"Basic {OPERATOR_TOKEN}", "The Authorization header must be 'Bearer <token>'"),
    ("Bearer ", "The Authorization header must be 'Bearer <token>'"),
])
async def test_bad_credentials_are_401_naming_the_problem(session, header, message):
    response = await session.fetch("/jobs/", headers={"Authorization": header})
    assert_plain(response, 401, message + "\n")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jobdeck"'


@pytest.mark.gen_test
async def test_viewer_reads_but_cannot_change(session, store):
    response = await session.fetch("/jobs/", headers=VIEWER_HEADERS)
    assert response.code == 200
    assert json.loads(response.body) == {"count": 0, "next": None, "previous": None,
                                         "results": []}
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers=VIEWER_HEADERS)
    assert_plain(response, 403, "This needs the operator role; you have the viewer role\n")
    assert await store.job_types.all_job_types() == []


@pytest.mark.gen_test
async def test_operator_changes_with_a_bearer_token_and_no_xsrf_token(session):
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        **OPERATOR_HEADERS, "Content-Type": "application/json"})
    assert response.code == 201, response.body
    assert json.loads(response.body)["name"] == "auth-test"
    assert "_xsrf" not in session.cookies


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/health", "/metrics", "/openapi.json", "/static/js/common.js",
                                  "/login"])
async def test_open_endpoints_need_no_credentials(session, path):
    assert (await session.fetch(path)).code == 200


@pytest.mark.gen_test
async def test_websocket_path_and_unknown_paths_answer_without_leaking(session):
    assert_plain(await session.fetch("/nope"), 404, "No such endpoint: /nope\n")
    assert_plain(await session.fetch("/ws/jobs/updates/"), 401, MISSING)


# -- the dashboard's login, session cookie and XSRF ----------------------------------------------

@pytest.mark.gen_test
async def test_dashboard_without_a_session_redirects_to_login_keeping_next(session):
    response = await session.fetch("/dashboard/jobs?status=RUNNING")
    assert response.code == 302
    location = urlparse(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/dashboard/jobs?status=RUNNING"]}


@pytest.mark.gen_test
async def test_token_login_sets_a_secure_signed_cookie_and_returns_to_next(session):
    response = await session.login(OPERATOR_TOKEN, "/dashboard/queue")
    assert (response.code, response.headers["Location"]) == (303, "/dashboard/queue")
    set_cookie = next(h for h in response.headers.get_list("Set-Cookie")
                      if h.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert OPERATOR_TOKEN not in set_cookie
    page = await session.fetch("/dashboard/queue")
    assert page.code == 200
    assert "token (operator)" in text(page) and 'action="/logout"' in text(page)


@pytest.mark.gen_test
async def test_bad_login_is_401_on_the_login_page_and_sets_no_session(session):
    response = await session.login("wrong-token-wrong-token")
    assert response.code == 401
    assert "That token is not valid on this server." in text(response)
    assert SESSION_COOKIE not in session.cookies
    response = await session.login("")
    assert response.code == 400
    assert "Enter a token, or a user name and password." in text(response)


@pytest.mark.gen_test
async def test_repeated_failed_logins_are_throttled_per_address(session):
    for _ in range(LOGIN_FAILURES_ALLOWED):
        assert (await session.login("wrong-token-wrong-token")).code == 401
    response = await session.login(OPERATOR_TOKEN)  # even the right token waits now
    assert response.code == 429
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= LOGIN_WINDOW_S
    assert f"Too many failed logins from this address; try again in {wait} s." in text(response)
    assert SESSION_COOKIE not in session.cookies
    assert (await session.fetch("/jobs/", headers=OPERATOR_HEADERS)).code == 200  # API unaffected


@pytest.mark.gen_test
@pytest.mark.parametrize("next_path", ["//evil.example/", "/\\evil.example", "/\t/evil.example",
                                       "https://evil.example/", "evil.example"])
async def test_login_never_redirects_off_the_server(session, next_path):
    response = await session.login(VIEWER_TOKEN, next_path)
    assert (response.code, response.headers["Location"]) == (303, "/")


@pytest.mark.gen_test
async def test_login_url_with_a_token_starts_a_session(session):
    """Opened directly (typed, pasted, from the terminal): the browser says Sec-Fetch-Site:
    none. From another site it asks first (tests/test_auth_security.py)."""
    response = await session.fetch("/login?" + urlencode({"token": VIEWER_TOKEN,
                                                          "next": "/dashboard/jobs"}),
                                   headers=DIRECT)
    assert (response.code, response.headers["Location"]) == (303, "/dashboard/jobs")
    assert (await session.fetch("/dashboard/jobs")).code == 200
    bad = await session.fetch("/login?token=nope-nope-nope-nope", headers=DIRECT)
    assert bad.code == 401 and "That token is not valid on this server." in text(bad)


@pytest.mark.gen_test
async def test_login_form_itself_needs_the_xsrf_token(session):
    response = await session.fetch("/login", "POST", urlencode({"token": OPERATOR_TOKEN}))
    assert response.code == 403
    assert XSRF_FAILED.fullmatch(text(response))
    assert SESSION_COOKIE not in session.cookies


@pytest.mark.gen_test
async def test_cookie_changes_need_the_xsrf_token(session):
    await session.login(OPERATOR_TOKEN)
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={"Content-Type": "application/json"})
    assert response.code == 403 and XSRF_FAILED.fullmatch(text(response)), text(response)
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        "Content-Type": "application/json", "X-XSRFToken": "2|00000000|00|0"})
    assert response.code == 403 and XSRF_FAILED.fullmatch(text(response)), text(response)
    token = await session.page_xsrf()
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        "Content-Type": "application/json", "X-XSRFToken": token})
    assert response.code == 201, text(response)


@pytest.mark.gen_test
async def test_viewer_session_cannot_change_even_with_the_xsrf_token(session):
    await session.login(VIEWER_TOKEN)
    token = await session.page_xsrf()
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        "Content-Type": "application/json", "X-XSRFToken": token})
    assert_plain(response, 403, "This needs the operator role; you have the viewer role\n")


@pytest.mark.gen_test
async def test_logout_ends_the_session(session):
    await session.login(OPERATOR_TOKEN)
    token = await session.page_xsrf()
    response = await session.fetch("/logout", "POST", urlencode({"_xsrf": token}))
    assert (response.code, response.headers["Location"]) == (303, "/login")
    assert SESSION_COOKIE not in session.cookies
    assert (await session.fetch("/dashboard/jobs")).code == 302


@pytest.mark.gen_test
async def test_a_forged_session_cookie_is_no_session(session):
    session.cookies[SESSION_COOKIE] = f"token:{hash_token(OPERATOR_TOKEN)}"
    assert (await session.fetch("/dashboard/jobs")).code == 302
    assert_plain(await session.fetch("/jobs/"), 401, MISSING)


# -- user/password login --------------------------------------------------------------------------

PASSWORD = "correct horse battery"
USERS_SETTINGS = TEST_SETTINGS.replace(users=(f"ada:operator:{hash_password(PASSWORD)}",))


@pytest.mark.gen_test(timeout=30)  # three scrypt checks, about 1 s each on a busy 2-CPU machine
@pytest.mark.parametrize("app", [USERS_SETTINGS], indirect=True)
async def test_user_and_password_login(app, session):
    response = await session.login(username="ada", password="wrong password")
    assert response.code == 401 and "Wrong user name or password." in text(response)
    response = await session.login(username="bob", password=PASSWORD)
    assert response.code == 401 and "Wrong user name or password." in text(response)
    response = await session.login(username="ada", password=PASSWORD, next_path="/dashboard/jobs")
    assert (response.code, response.headers["Location"]) == (303, "/dashboard/jobs")
    page = await session.fetch("/dashboard/jobs")
    assert page.code == 200 and "ada (operator)" in text(page)


@pytest.fixture
def app(request, store, hub):
    """tests/fixtures.py's app, or one made with the settings a test passes indirectly."""
    return make_app(store, getattr(request, "param", TEST_SETTINGS), hub)


def test_password_hashes_are_salted_scrypt_and_verify():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$5$")
    assert verify_password(PASSWORD, first) and not verify_password(PASSWORD + "!", first)


def test_hash_password_command_makes_a_usable_users_entry():
    proc = subprocess.run([sys.executable, "-m", "auth", "hash-password"], cwd=ROOT,
                          input=PASSWORD + "\n", capture_output=True, text=True, check=True,
                          timeout=STARTUP_LIMIT)
    encoded = proc.stdout.strip()
    authenticator = Authenticator(True, [], [f"grace:viewer:{encoded}"])
    assert authenticator.role_of_password("grace", PASSWORD) == "viewer"
    assert authenticator.role_of_password("grace", "nope nope") is None


# -- headers -------------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/login", "/jobs/"])
async def test_security_headers(session, path):
    response = await session.fetch(path, headers=VIEWER_HEADERS)
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.gen_test
async def test_static_files_carry_the_security_headers(session):
    response = await session.fetch("/static/js/common.js")
    assert response.code == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_templates_have_no_inline_scripts_handlers_or_styles():
    """The CSP forbids them; the browser tests also fail on any CSP console error."""
    for template in (ROOT / "templates").glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert not re.search(r"\sstyle\s*=", html), template.name


# -- WebSocket ------------------------------------------------------------------------------------

def ws_request(base_url: str, headers: dict) -> HTTPRequest:
    return HTTPRequest(base_url.replace("http://", "ws://", 1) + "/ws/jobs/updates/",
                       headers=headers)


@pytest.mark.gen_test
@pytest.mark.parametrize("headers, code", [
    ({}, 401),
    ({"Authorization": "Bearer not-a-token-this-server-knows"}, 401),
    ({**OPERATOR_HEADERS, "Origin": "http://evil.example"}, 403),
])
async def test_websocket_refuses_before_upgrade(http_server, base_url, headers, code):
    with pytest.raises(HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(ws_request(base_url, headers))
    assert refused.value.code == code


@pytest.mark.gen_test
async def test_websocket_accepts_a_viewer_token_and_a_viewer_session_from_its_origin(
        base_url, session):
    connection = await tornado.websocket.websocket_connect(ws_request(base_url, VIEWER_HEADERS))
    connection.close()
    await session.login(VIEWER_TOKEN)
    cookie = f"{SESSION_COOKIE}={session.cookies[SESSION_COOKIE]}"
    connection = await tornado.websocket.websocket_connect(
        ws_request(base_url, {"Cookie": cookie, "Origin": base_url}))
    connection.close()
    with pytest.raises(HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(
            ws_request(base_url, {"Cookie": cookie, "Origin": "http://evil.example"}))
    assert refused.value.code == 403


# -- settings -------------------------------------------------------------------------------------

def test_tokens_are_hashed_at_load_and_errors_never_echo_them():
    settings = load_settings([], {"JOBDECK_TOKENS": f"operator:{OPERATOR_TOKEN}, "
                                                    f"viewer:{VIEWER_TOKEN}"})
    assert settings.tokens == (f"operator:sha256:{hash_token(OPERATOR_TOKEN)}",
                               f"viewer:sha256:{hash_token(VIEWER_TOKEN)}")
    with pytest.raises(SettingsError) as bad:
        load_settings(["--tokens", "admin:a-secret-token-12345"])
    assert str(bad.value) == "tokens: a tokens entry has role 'admin'; roles are viewer, operator"
    with pytest.raises(SettingsError) as short:
        load_settings(["--tokens", "viewer:short"])
    assert str(short.value) == "tokens: a token must be at least 16 characters long"


def test_auth_off_from_file_environment_and_flags(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("auth: off\n")
    assert load_settings(["--settings", str(path)]).auth is False
    assert load_settings([], {"JOBDECK_AUTH": "false"}).auth is False
    assert load_settings(["--no-auth"]).auth is False
    assert load_settings(["--auth", "false"]).auth is False
    assert load_settings([]).auth is True


def test_auth_off_on_a_public_address_warns_loudly(tmp_path, caplog):
    settings = load_settings(["--no-auth"]).replace(host="0.0.0.0", data_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="jobdeck"):
        assert server_auth(settings) == ({"auth": False}, None)
    assert any("AUTHENTICATION IS OFF" in r.message and "0.0.0.0" in r.message
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobdeck"):
        server_auth(settings.replace(host="127.0.0.1"))
    assert caplog.records == []


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [Settings(auth=False)], indirect=True)
async def test_auth_off_needs_no_credentials_but_still_stops_cross_site_browsers(app,
                                                                                 session):
    response = await session.fetch("/job-types/", "POST", NEW_TYPE,
                                   headers={"Content-Type": "application/json"})
    assert response.code == 201, text(response)
    response = await session.fetch("/job-types/", "POST", NEW_TYPE, headers={
        "Content-Type": "application/json", "Origin": "http://evil.example"})
    assert_plain(response, 403, "Cross-origin request refused (Origin: http://evil.example): "
                                "changes made with the session cookie must come from this "
                                "server's own pages\n")


# -- server.py as a process: first start and --no-auth ------------------------------------------

class Server:
    def __init__(self, mongo_url: str, db_name: str, data_dir: Path, *flags: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "server.py", "--mongo-url", mongo_url, "--db-name", db_name,
             "--data-dir", str(data_dir), "--port", str(self.port), "--engine", "false", *flags],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if "Jobdeck ready at" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> None:
        self.ready.wait(STARTUP_LIMIT)
        assert self.proc.poll() is None, "".join(self.lines)

    def log(self) -> str:
        """Everything logged so far; the first-start URL follows the ready line."""
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STARTUP_LIMIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def request(url: str, headers=None, method="GET", body=None) -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=body, headers=headers or {},
                                                method=method), timeout=STARTUP_LIMIT) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for_login_url(server: Server) -> str:
    """The URL is logged right after the ready line; read until it is there (the deadline is a
    guard against a hang, not a performance assertion)."""
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        match = re.search(r"http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_\-]+", server.log())
        if match or server.proc.poll() is not None or time.monotonic() > deadline:
            assert match, server.log()
            return match.group(0)
        time.sleep(0.05)


@pytest.fixture
def db_name(mongo_url):
    name = f"test_auth_{uuid.uuid4().hex[:12]}"
    yield name
    with pymongo.MongoClient(mongo_url) as client:
        client.drop_database(name)


def test_first_start_prints_a_login_url_once_and_keeps_only_a_hash(mongo_url, db_name, tmp_path):
    data_dir = tmp_path / "data"
    server = Server(mongo_url, db_name, data_dir)
    try:
        server.wait_ready()
        url = wait_for_login_url(server)
        assert url.startswith(f"{server.url}/login?token=")
        token = parse_qs(urlparse(url).query)["token"][0]
        assert server.log().count(token) == 1
        status, _, _ = request(server.url + "/jobs/")
        assert status == 401
        status, _, body = request(server.url + "/jobs/",
                                  headers={"Authorization": f"Bearer {token}"})
        assert (status, json.loads(body)["count"]) == (200, 0)
        status, headers, _ = request(url, headers=DIRECT)
        assert (status, headers["Location"]) == (303, "/")
        assert headers["Set-Cookie"].startswith(SESSION_COOKIE + "=")
    finally:
        server.stop()
    stored_path = data_dir / "auth.json"
    assert stat.S_IMODE(stored_path.stat().st_mode) == 0o600
    stored = stored_path.read_text()
    assert token not in stored
    assert json.loads(stored)["tokens"] == [f"operator:sha256:{hash_token(token)}"]

    again = Server(mongo_url, db_name, data_dir)
    try:
        again.wait_ready()
        status, _, _ = request(again.url + "/jobs/", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        assert "using the operator token made at first start" in again.log()
        assert "/login?token=" not in again.log()
    finally:
        again.stop()


def test_no_auth_flag_serves_without_credentials(mongo_url, db_name, tmp_path):
    server = Server(mongo_url, db_name, tmp_path / "data", "--no-auth")
    try:
        server.wait_ready()
        status, _, body = request(server.url + "/job-types/", method="POST",
                                  body=NEW_TYPE.encode(),
                                  headers={"Content-Type": "application/json"})
        assert status == 201, body
        assert "/login?token=" not in server.log()
    finally:
        server.stop()
    assert not (tmp_path / "data" / "auth.json").exists()
