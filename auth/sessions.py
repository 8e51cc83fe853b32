"""The app's auth set-up: the Authenticator, the login throttle, the password-check pool, and
Tornado's signed-cookie and XSRF settings for make_app; and, for server.py, the first start: the
operator token and the cookie secret kept in data_dir/auth.json."""

import ipaddress
import json
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

import tornado.web

from auth.identity import Authenticator
from auth.login import LoginThrottle, PasswordChecks
from core.credentials import token_entry
from presentation.http import SecurityHeaders

log = logging.getLogger("jobdeck")

AUTH_FILE = "auth.json"


def app_settings(settings) -> dict:
    """Tornado's application settings for `auth`, `tokens`, `users` and `cookie_secret` (of a
    core.settings.Settings): the Authenticator and the cookie and XSRF settings."""
    secret = settings.cookie_secret or secrets.token_urlsafe(32)
    authenticator = Authenticator(bool(settings.auth), settings.tokens, settings.users, secret)
    return {"authenticator": authenticator, "login_throttle": LoginThrottle(),
            "password_checks": PasswordChecks(), "cookie_secret": secret,
            # Tornado calls check_xsrf_cookie before every change; handlers/base.py hands it to
            # the Authenticator (a token bound to the session, and the origin checks).
            "xsrf_cookies": True, "static_handler_class": StaticFiles}


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
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several servers may start at once
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
