"""The dashboard's login page (a token, or a user name and password) and logout: a good login
sets the signed session cookie that auth/identity.py reads."""

import asyncio
import math
import time

from auth.identity import SESSION_COOKIE, SESSION_DAYS, Authenticator
from core.credentials import hash_token
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
    guessing; tokens are too long to guess)."""

    def __init__(self) -> None:
        self.failures: dict[str, list[float]] = {}

    def _recent(self, client: str) -> list[float]:
        cutoff = time.monotonic() - LOGIN_WINDOW_S
        recent = [t for t in self.failures.get(client, []) if t > cutoff]
        if recent:
            self.failures[client] = recent
        else:
            self.failures.pop(client, None)
        return recent

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        recent = self._recent(client)
        if len(recent) < LOGIN_FAILURES_ALLOWED:
            return 0
        return max(1, math.ceil(recent[0] + LOGIN_WINDOW_S - time.monotonic()))

    def failed(self, client: str) -> None:
        self.failures.setdefault(client, []).append(time.monotonic())


class LoginHandler(BaseHandler):
    """GET shows the form (or logs in with `?token=`, the first-start URL); POST checks a token or
    a user name and password and sets the signed session cookie."""

    public = True

    def render_login(self, status: int = 200, message: str = "") -> None:
        if status == 401:
            self.settings["login_throttle"].failed(self.request.remote_ip)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(ENV.get_template("login.html").render(
            static_url=self.static_url, nav="login", live_client=False, message=message,
            xsrf_token=self.xsrf_token.decode(), next=safe_next(self.get_argument("next", "/")),
            users=bool(self.authenticator.users)))

    @property
    def authenticator(self) -> Authenticator:
        return self.settings["authenticator"]

    def start_session(self, session: str) -> None:
        self.set_signed_cookie(SESSION_COOKIE, session, expires_days=SESSION_DAYS, httponly=True,
                               samesite="Strict", secure=self.request.protocol == "https")
        self.redirect(safe_next(self.get_argument("next", "/")), status=303)

    def throttled(self) -> bool:
        """Too many failed logins from this address lately: 429 with Retry-After."""
        wait = self.settings["login_throttle"].retry_after(self.request.remote_ip)
        if wait:
            self.set_header("Retry-After", str(wait))
            self.render_login(429, f"Too many failed logins from this address; try again in "
                                   f"{wait} s.")
        return bool(wait)

    def get(self):
        if not self.authenticator.enabled:
            self.redirect(safe_next(self.get_argument("next", "/")))
            return
        token = self.get_query_argument("token", "")
        if not token:
            self.render_login()
            return
        if not self.throttled():
            self.token_login(token)

    def token_login(self, token: str) -> None:
        if self.authenticator.role_of_token(token) is None:
            self.render_login(401, "That token is not valid on this server.")
            return
        self.start_session(f"token:{hash_token(token)}")

    async def post(self):
        if not self.authenticator.enabled:
            self.redirect(safe_next(self.get_argument("next", "/")), status=303)
            return
        if self.throttled():
            return
        token = self.get_body_argument("token", "").strip()
        name = self.get_body_argument("username", "").strip()
        if token:
            self.token_login(token)
            return
        if name:
            password = self.get_body_argument("password", "")
            role = await asyncio.to_thread(self.authenticator.role_of_password, name, password)
            if role is None:
                self.render_login(401, "Wrong user name or password.")
                return
            self.start_session(f"user:{name}")
            return
        self.render_login(400, "Enter a token, or a user name and password.")


class LogoutHandler(BaseHandler):
    """POST (with the XSRF token) ends the session."""

    public = True

    def post(self):
        self.clear_cookie(SESSION_COOKIE)
        self.redirect("/login", status=303)
