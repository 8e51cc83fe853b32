"""What every HTTP answer shares, whichever layer serves it: the security headers and the server's
own base URL (links in bodies are absolute, on the host and scheme the client used)."""

from typing import Protocol

from tornado import httputil

# On every response: no MIME sniffing, no framing, no inline scripts (static/js only).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _Handler(Protocol):
    def set_header(self, name: str, value: str) -> None: ...


class SecurityHeaders:
    """Mixed into every handler class: API, pages, static files and the live socket."""

    def set_default_headers(self: _Handler) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)


def base_url(request: httputil.HTTPServerRequest) -> str:
    """`scheme://host` as the client reached this server (behind a proxy in `trusted_proxies`, the
    scheme is the one it reports in X-Forwarded-Proto: auth/proxies.py)."""
    return f"{request.protocol}://{request.host}"
