"""The dashboard's login page (a token, or a user name and password) and logout: a good login
records a session in the store and sets the signed cookie carrying its id, which
auth/identity.py reads; logout deletes the record, so a saved cookie is worthless after it."""

import asyncio
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from auth.identity import (
    OWN_SITE,
    SESSION_COOKIE,
    SESSION_DAYS,
    Authenticator,
    session_key,
)
from core.credentials import hash_token
from core.times import now_ms
from handlers.base import BaseHandler
from presentation.templates import ENV


def safe_next(target: str | None) -> str:
    """Only a path on this server, so the login page cannot redirect elsewhere (browsers drop
    control characters such as tabs and read a backslash as a slash)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    return target


LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_S = 300.0


class LoginThrottle:
    """Failed logins per client address: after LOGIN_FAILURES_ALLOWED within LOGIN_WINDOW_S,
    that address gets 429 until the oldest of them is out of the window (slows password
    guessing; tokens are too long to guess). A login being checked holds one of those slots
    (`begin` ... `end`), so concurrent attempts cannot all be checked before the first fails."""

    def __init__(self) -> None:
        self.failures: dict[str, list[float]] = {}
        self.pending: dict[str, int] = {}

    def _recent(self, client: str) -> list[float]:
        cutoff = time.monotonic() - LOGIN_WINDOW_S
        recent = [t for t in self.failures.get(client, []) if t > cutoff]
        if recent:
            self.failures[client] = recent
        else:
            self.failures.pop(client, None)
        return recent

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may now (1 while its other attempts
        being checked hold the remaining slots)."""
        recent = self._recent(client)
        if len(recent) + self.pending.get(client, 0) < LOGIN_FAILURES_ALLOWED:
            return 0
        if len(recent) < LOGIN_FAILURES_ALLOWED:
            return 1
        return max(1, math.ceil(recent[0] + LOGIN_WINDOW_S - time.monotonic()))

    def begin(self, client: str) -> int:
        """Reserve a slot for one attempt: 0, or the seconds to wait (no slot taken)."""
        wait = self.retry_after(client)
        if not wait:
            self.pending[client] = self.pending.get(client, 0) + 1
        return wait

    def end(self, client: str, failed: bool) -> None:
        """The attempt `begin` let through is over; a failed one stays counted."""
        left = self.pending.get(client, 0) - 1
        if left > 0:
            self.pending[client] = left
        else:
            self.pending.pop(client, None)
        if failed:
            self.failed(client)

    def failed(self, client: str) -> None:
        self.failures.setdefault(client, []).append(time.monotonic())


# Password checks (scrypt, about 0.3 s of CPU each) run on their own small pool, never on the
# event loop nor on asyncio's shared one; at most PASSWORD_CHECK_QUEUE wait for a worker, and a
# login past that is answered 503 at once instead of queueing without bound.
PASSWORD_CHECK_WORKERS = 2
PASSWORD_CHECK_QUEUE = 8
BUSY_RETRY_AFTER = 2


class PasswordChecksBusy(Exception):
    pass


class PasswordChecks:
    def __init__(self, workers: int = PASSWORD_CHECK_WORKERS,
                 queue: int = PASSWORD_CHECK_QUEUE):
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="password-check")
        self.limit = workers + queue
        self.in_flight = 0

    async def run(self, check, *args):
        """`check(*args)` on the pool; PasswordChecksBusy when the pool and its queue are full."""
        if self.in_flight >= self.limit:
            raise PasswordChecksBusy
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, check, *args)
        finally:
            self.in_flight -= 1


class LoginHandler(BaseHandler):
    """GET shows the form, or with `?token=` (the first-start URL) logs in when the browser
    navigated here directly or from this server's pages, and otherwise asks to confirm (a page
    on another site must not log the browser in as someone else); POST checks a token or a user
    name and password, records a session and sets the signed session cookie."""

    public = True
    xsrf_form_field = True

    def render_login(self, status: int = 200, message: str = "", confirm_token: str = "") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(ENV.get_template("login.html").render(
            static_url=self.static_url, nav="login", live_client=False, message=message,
            xsrf_token=self.xsrf_token.decode(), next=safe_next(self.get_argument("next", "/")),
            users=bool(self.authenticator.users), confirm_token=confirm_token))

    @property
    def authenticator(self) -> Authenticator:
        return self.settings["authenticator"]

    async def start_session(self, kind: str, subject: str, name: str) -> None:
        """Record the session (with the fingerprint of the credential it is made with) and
        hand its id to the browser in the signed cookie."""
        credential = self.authenticator.credential(kind, subject)
        if credential is None:
            raise RuntimeError(f"no {kind} credential to start a session with")
        session_id = secrets.token_urlsafe(32)
        expires = now_ms() + SESSION_DAYS * 86_400_000
        await self.store.sessions.create(session_key(session_id), {
            "kind": kind, "subject": subject, "name": name, "fingerprint": credential[1]},
            expires)
        self.set_signed_cookie(SESSION_COOKIE, session_id, expires_days=SESSION_DAYS,
                               httponly=True, samesite="Strict",
                               secure=self.request.protocol == "https")
        self.redirect(safe_next(self.get_argument("next", "/")), status=303)

    def throttled(self, wait: int) -> None:
        """Too many failed logins from this address lately: 429 with Retry-After."""
        self.set_header("Retry-After", str(wait))
        self.render_login(429, f"Too many failed logins from this address; try again in "
                               f"{wait} s.")

    async def get(self):
        if not self.authenticator.enabled:
            self.redirect(safe_next(self.get_argument("next", "/")))
            return
        token = self.get_query_argument("token", "")
        if not token:
            self.render_login()
            return
        if self.request.headers.get("Sec-Fetch-Site", "").lower() not in OWN_SITE:
            # A link from elsewhere (or a client that does not say): ask first.
            self.render_login(confirm_token=token)
            return
        await self.attempt(token=token)

    async def post(self):
        if not self.authenticator.enabled:
            self.redirect(safe_next(self.get_argument("next", "/")), status=303)
            return
        await self.attempt(token=self.get_body_argument("token", "").strip(),
                           name=self.get_body_argument("username", "").strip(),
                           password=self.get_body_argument("password", ""))

    async def attempt(self, token: str = "", name: str = "", password: str = "") -> None:
        """One login attempt, holding a throttle slot while its credentials are checked."""
        throttle, client = self.settings["login_throttle"], self.request.remote_ip
        wait = throttle.begin(client)
        if wait:
            self.throttled(wait)
            return
        failed = False
        try:
            if token:
                role = self.authenticator.role_of_token(token)
                kind, subject, shown = "token", hash_token(token), "token"
                wrong = "That token is not valid on this server."
            elif name:
                role = await self.settings["password_checks"].run(
                    self.authenticator.role_of_password, name, password)
                kind, subject, shown = "user", name, name
                wrong = "Wrong user name or password."
            else:
                self.render_login(400, "Enter a token, or a user name and password.")
                return
            if role is None:
                failed = True
                self.render_login(401, wrong)
                return
            await self.start_session(kind, subject, shown)
        except PasswordChecksBusy:
            self.set_header("Retry-After", str(BUSY_RETRY_AFTER))
            self.render_login(503, f"The server is busy checking other logins; try again in "
                                   f"{BUSY_RETRY_AFTER} s.")
        finally:
            throttle.end(client, failed)


class LogoutHandler(BaseHandler):
    """POST (with the XSRF token) ends the session: its record is deleted from the store, so
    the cookie no longer works anywhere, and the cookie is cleared."""

    public = True
    xsrf_form_field = True

    async def post(self):
        authenticator: Authenticator = self.settings["authenticator"]
        session_id = authenticator.session_id(self)
        if session_id:
            await self.store.sessions.delete(session_key(session_id))
        self.clear_cookie(SESSION_COOKIE)
        self.redirect("/login", status=303)
