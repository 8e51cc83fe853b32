"""Authentication and roles: API tokens (`Authorization: Bearer`), a signed session cookie for the
dashboard (token or user/password login), XSRF for cookie-authenticated changes, and the operator
token made at first start.

Tokens and passwords are kept only as hashes; tokens are compared in constant time. Roles:
`viewer` reads (API GETs, dashboards, live updates), `operator` also changes (POST/PATCH).

    python -m handlers.auth hash-password      # a `users` entry's password hash
    python -m handlers.auth new-token operator # a new token and its `tokens` entry
"""

import asyncio
import getpass
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import tornado.web

from core.credentials import (
    ROLES,
    hash_password,
    hash_token,
    token_entry,
    user_entry,
    verify_password,
)
from handlers.base import APIError, BaseHandler, SecurityHeaders
from handlers.dashboard import ENV

log = logging.getLogger("jobdeck")

SESSION_COOKIE = "jobdeck_session"
SESSION_DAYS = 7
AUTH_FILE = "auth.json"
READ_METHODS = ("GET", "HEAD", "OPTIONS")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jobdeck"'}


@dataclass(frozen=True)
class Identity:
    role: str
    name: str
    via: str  # "bearer", "cookie" or "none" (auth off)

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


ANONYMOUS = Identity("operator", "anonymous", "none")


class AuthError(APIError):
    """A 401 carrying the Bearer challenge."""

    def __init__(self, message: str):
        super().__init__(401, message, headers=CHALLENGE)


class Authenticator:
    """The configured tokens (hashes) and users; answers who a request is and whether it may."""

    def __init__(self, enabled: bool = True, tokens=(), users=()):
        self.enabled = enabled
        self.tokens = [tuple(token_entry(t).split(":sha256:")) for t in tokens]
        self.users = {}
        for entry in users:
            name, role, encoded = user_entry(entry).split(":", 2)
            self.users[name] = (role, encoded)
        self.dummy_hash = hash_password(secrets.token_hex(8)) if self.users else None

    def role_of_hash(self, digest: str) -> str | None:
        """Compares with every configured hash, so the time does not tell which one matched."""
        role = None
        for entry_role, entry_digest in self.tokens:
            if hmac.compare_digest(entry_digest, digest):
                role = entry_role
        return role

    def role_of_token(self, token: str) -> str | None:
        return self.role_of_hash(hash_token(token))

    def role_of_password(self, name: str, password: str) -> str | None:
        role, encoded = self.users.get(name, (None, self.dummy_hash))
        if encoded is None:
            return None
        ok = verify_password(password, encoded)
        return role if ok else None

    def identify(self, handler: tornado.web.RequestHandler) -> Identity | None:
        """The caller from a Bearer header (which wins) or the session cookie; None if neither."""
        if not self.enabled:
            return ANONYMOUS
        header = handler.request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("The Authorization header must be 'Bearer <token>'")
            role = self.role_of_token(token.strip())
            if role is None:
                raise AuthError("The Bearer token is not valid on this server")
            return Identity(role, "token", "bearer")
        session = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        return self.session_identity(session.decode() if session else "")

    def session_identity(self, session: str) -> Identity | None:
        """A session names its token hash or user, so removing either from the settings ends it."""
        kind, _, value = session.partition(":")
        if kind == "token":
            role = self.role_of_hash(value)
            return Identity(role, "token", "cookie") if role else None
        if kind == "user" and value in self.users:
            return Identity(self.users[value][0], value, "cookie")
        return None

    def authorize(self, handler) -> None:
        """401 without valid credentials (dashboard pages redirect to the login page), 403 when
        the role is too low for the method."""
        if not self.enabled or handler.public:
            return
        identity = handler.current_user
        if identity is None:
            if handler.login_redirect and handler.request.method in READ_METHODS:
                handler.redirect("/login?" + urlencode({"next": handler.request.uri}))
                raise tornado.web.Finish()
            raise AuthError("Authentication required: send 'Authorization: Bearer <token>' "
                            "or log in at /login")
        needed = "viewer" if handler.request.method in READ_METHODS else "operator"
        if not identity.can(needed):
            raise APIError(403, f"This needs the {needed} role; you have the {identity.role} "
                                f"role")

    def check_xsrf(self, handler, check) -> None:
        """XSRF applies where authority is ambient: a session cookie, or (auth off) a browser.
        A Bearer header is never sent by a browser on its own, so it needs no XSRF token."""
        headers = handler.request.headers
        if not handler.public:
            if "Authorization" in headers:
                return
            if self.enabled and handler.get_cookie(SESSION_COOKIE) is None:
                return  # authorize() answers 401
            if not self.enabled and "Origin" not in headers:
                return  # not a browser
        try:
            check()
        except tornado.web.HTTPError as exc:
            why = exc.log_message % exc.args if exc.args else exc.log_message
            raise APIError(403, f"XSRF check failed ({why}); the dashboard sends the "
                                f"X-XSRFToken header, API clients use 'Authorization: Bearer "
                                f"<token>'") from None


def app_settings(settings) -> dict:
    """Tornado's application settings for `auth`, `tokens`, `users` and `cookie_secret` (of a
    core.settings.Settings): the Authenticator and the cookie and XSRF settings."""
    authenticator = Authenticator(bool(settings.auth), settings.tokens, settings.users)
    secret = settings.cookie_secret or secrets.token_urlsafe(32)
    return {"authenticator": authenticator, "login_throttle": LoginThrottle(),
            "cookie_secret": secret, "xsrf_cookies": True,
            "xsrf_cookie_kwargs": {"httponly": True, "samesite": "Strict"},
            "static_handler_class": StaticFiles}


class StaticFiles(SecurityHeaders, tornado.web.StaticFileHandler):
    """static/ with the same security headers as every other response."""


# -- first start ---------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_private(path: Path, data: dict) -> None:
    """Written readable by the owner only (0600), replaced atomically."""
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.chmod(temp, 0o600)
    os.replace(temp, path)


def server_auth(settings) -> tuple[dict, str | None]:
    """The auth settings to replace in the server's core.settings.Settings and, on a first start
    with no credentials configured, the new operator token (the caller prints it once; only its
    hash is kept in data_dir)."""
    if not settings.auth:
        if not is_loopback(settings.host):
            log.warning("AUTHENTICATION IS OFF and the server listens on %s: anyone who can "
                        "reach it can submit, cancel and change jobs", settings.host)
        return {"auth": False}, None
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / AUTH_FILE
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = "cookie_secret" not in stored
    stored.setdefault("cookie_secret", secrets.token_urlsafe(32))
    tokens, users, new_token = list(settings.tokens), list(settings.users), None
    if not tokens and not users:
        if stored.get("tokens"):
            log.info("auth: using the operator token made at first start (its hash is in %s); "
                     "delete that file's tokens to make a new one", path)
        else:
            new_token = secrets.token_urlsafe(32)
            stored["tokens"] = [token_entry(f"operator:{new_token}")]
            changed = True
        tokens = stored["tokens"]
    if changed:
        write_private(path, stored)
    return {"auth": True, "tokens": tokens, "users": users,
            "cookie_secret": settings.cookie_secret or stored["cookie_secret"]}, new_token


def login_url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/login?{urlencode({'token': token})}"


# -- the login page --------------------------------------------------------------------------------

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

    def __init__(self):
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


# -- command line ----------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if argv[:1] == ["hash-password"]:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                print("the passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("a password must be at least 8 characters long", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    if len(argv) == 2 and argv[0] == "new-token" and argv[1] in ROLES:
        token = secrets.token_urlsafe(32)
        print(f"token (give it to the client; it is not stored): {token}")
        print(f"tokens entry for settings.yaml: {token_entry(f'{argv[1]}:{token}')}")
        return 0
    print("usage: python -m handlers.auth hash-password | new-token viewer|operator",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
