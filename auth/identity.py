"""Who a request is, from a Bearer token or the session cookie, and whether its role may do what
it asks; and the checks on changes a browser makes with ambient credentials (the session cookie,
or any browser with auth off): this server's own origin, and an XSRF token bound to the session."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

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
# Anchors the XSRF token of a browser without a session (the login form; every page with auth
# off): a random id in a signed cookie.
ANONYMOUS_COOKIE = "jobdeck_xsrf"
SESSION_DAYS = 7
READ_METHODS = ("GET", "HEAD", "OPTIONS")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jobdeck"'}
# Sec-Fetch-Site values of a request made by this server's own pages, or typed by the user.
OWN_SITE = ("same-origin", "none")
XSRF_HELP = ("the dashboard sends the X-XSRFToken header, API clients use 'Authorization: Bearer "
             "<token>'")


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


def session_key(session_id: str) -> str:
    """The store keeps a hash of the session id, never the id the cookie carries."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def shown(value: str) -> str:
    """A header value for a message: printable and short."""
    return "".join(c if " " <= c < "\x7f" else "?" for c in value[:100])


def origin_host(origin: str) -> str:
    """`host[:port]` of an Origin header; "" for `null` or anything unparsable."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return ""


class Authenticator:
    """The configured tokens (hashes) and users; answers who a request is and whether it may.
    `secret` (the cookie secret) keys the XSRF tokens."""

    def __init__(self, enabled: bool = True, tokens=(), users=(), secret: str | None = None):
        self.enabled = enabled
        self.tokens = [tuple(token_entry(t).split(":sha256:")) for t in tokens]
        self.users = {}
        for entry in users:
            name, role, encoded = user_entry(entry).split(":", 2)
            self.users[name] = (role, encoded)
        self.dummy_hash = hash_password(secrets.token_hex(8)) if self.users else None
        self.secret = (secret or secrets.token_urlsafe(32)).encode()

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

    # -- sessions -------------------------------------------------------------------------------

    def credential(self, kind: str, subject: str) -> tuple[str, str] | None:
        """(role, fingerprint) of the credential a session is made with: a token (by its hash)
        or a user. The fingerprint changes with the token or the password hash, so a session
        made before a change no longer matches; None when the credential is gone."""
        if kind == "token":
            role = self.role_of_hash(subject)
            return (role, subject) if role else None
        if kind == "user" and subject in self.users:
            role, encoded = self.users[subject]
            return role, hashlib.sha256(encoded.encode()).hexdigest()
        return None

    def session_id(self, handler: tornado.web.RequestHandler) -> str | None:
        """The session id in the signed cookie (not yet checked against the store)."""
        if not self.enabled:
            return None
        value = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        try:
            return value.decode() if value else None
        except UnicodeDecodeError:
            return None

    async def session_identity(self, handler: tornado.web.RequestHandler) -> Identity | None:
        """The session's identity when the store still holds it, unexpired, and its credential
        is unchanged; None otherwise (logged out, expired, token or password changed)."""
        session_id = self.session_id(handler)
        if not session_id:
            return None
        record = await handler.settings["store"].sessions.get(session_key(session_id))
        if record is None:
            return None
        now = self.credential(record.get("kind", ""), record.get("subject", ""))
        if now is None or not hmac.compare_digest(now[1], record.get("fingerprint", "")):
            return None
        return Identity(now[0], record.get("name", "token"), "cookie")

    # -- who, and may they ----------------------------------------------------------------------

    async def identify(self, handler: tornado.web.RequestHandler) -> Identity | None:
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
        return await self.session_identity(handler)

    async def authorize(self, handler) -> None:
        """Sets the handler's current_user; 401 without valid credentials (dashboard pages
        redirect to the login page), 403 when the role is too low for the method."""
        if not self.enabled:
            handler.current_user = ANONYMOUS
            return
        if handler.public:
            return
        identity = await self.identify(handler)
        handler.current_user = identity
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

    # -- XSRF and origin ------------------------------------------------------------------------

    def xsrf_anchor(self, handler, create: bool) -> str | None:
        """What the XSRF token is bound to: the session id, or without a session the browser's
        anonymous id (made, with its cookie, when `create` and there is none)."""
        session_id = self.session_id(handler)
        if session_id:
            return f"session:{session_id}"
        anonymous = getattr(handler, "_anonymous_xsrf_id", None)
        if anonymous is None:
            value = handler.get_signed_cookie(ANONYMOUS_COOKIE, max_age_days=SESSION_DAYS)
            try:
                anonymous = value.decode() if value else None
            except UnicodeDecodeError:
                anonymous = None
        if anonymous is None and create:
            anonymous = secrets.token_urlsafe(24)
            handler.set_signed_cookie(ANONYMOUS_COOKIE, anonymous, expires_days=SESSION_DAYS,
                                      httponly=True, samesite="Strict",
                                      secure=handler.request.protocol == "https")
        handler._anonymous_xsrf_id = anonymous
        return f"anonymous:{anonymous}" if anonymous else None

    def xsrf_token_for(self, anchor: str) -> str:
        return hmac.new(self.secret, f"xsrf|{anchor}".encode(), hashlib.sha256).hexdigest()

    def xsrf_token(self, handler) -> bytes:
        """The token this browser's pages hand their scripts and forms."""
        return self.xsrf_token_for(self.xsrf_anchor(handler, create=True) or "").encode()

    def check_xsrf(self, handler) -> None:
        """Changes made with ambient authority (a session cookie, or with auth off any browser)
        must come from this server's own pages (Sec-Fetch-Site, else Origin) and carry the XSRF
        token bound to the session: in the X-XSRFToken header, or in the `_xsrf` field of the
        dashboard's own forms (handlers with `xsrf_form_field`); never in the query string. A
        Bearer header is never sent by a browser on its own, so it needs neither."""
        headers = handler.request.headers
        if not handler.public:
            if "Authorization" in headers:
                return
            if self.enabled and handler.get_cookie(SESSION_COOKIE) is None:
                return  # authorize() answers 401
            if not self.enabled and "Origin" not in headers and "Sec-Fetch-Site" not in headers:
                return  # not a browser
        self.check_origin(handler)
        token = headers.get("X-XSRFToken")
        if token is None and getattr(handler, "xsrf_form_field", False):
            token = handler.get_body_argument("_xsrf", None)
        if not token:
            raise APIError(403, f"XSRF check failed (the request carries no XSRF token); "
                                f"{XSRF_HELP}")
        anchor = self.xsrf_anchor(handler, create=False)
        if anchor is None or not hmac.compare_digest(token.encode(),
                                                     self.xsrf_token_for(anchor).encode()):
            raise APIError(403, f"XSRF check failed (the token is not this session's); "
                                f"{XSRF_HELP}")

    def check_origin(self, handler) -> None:
        """403 for a browser request from another site or origin (another port of this host
        is another origin, though the same site)."""
        headers = handler.request.headers
        site = headers.get("Sec-Fetch-Site")
        if site is not None:
            if site.lower() not in OWN_SITE:
                raise APIError(403, f"Cross-site request refused (Sec-Fetch-Site: {shown(site)}): "
                                    f"changes made with the session cookie must come from this "
                                    f"server's own pages")
            return
        origin = headers.get("Origin")
        if origin is not None and origin_host(origin) != handler.request.host.lower():
            raise APIError(403, f"Cross-origin request refused (Origin: {shown(origin)}): changes "
                                f"made with the session cookie must come from this server's own "
                                f"pages")
