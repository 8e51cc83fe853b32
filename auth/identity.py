"""Who a request is, from a Bearer token or the session cookie, and whether its role may do what
it asks."""

import hmac
import secrets
from dataclasses import dataclass
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
from presentation.errors import APIError

SESSION_COOKIE = "jobdeck_session"
SESSION_DAYS = 7
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
            why = (exc.log_message % exc.args if exc.log_message and exc.args
                   else exc.log_message or exc.reason or str(exc))
            raise APIError(403, f"XSRF check failed ({why}); the dashboard sends the "
                                f"X-XSRFToken header, API clients use 'Authorization: Bearer "
                                f"<token>'") from None
