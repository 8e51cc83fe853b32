"""The HTTP server layer: request limits checked as soon as a request's line and headers are in,
before authentication and before any body is buffered (settings `max_body_kb`, `max_upload_mb`,
`max_query_values`, `max_header_kb`), and Tornado's own caps for the listening server."""

import logging
from collections import Counter
from urllib.parse import parse_qsl

import tornado.web
from tornado import httputil

from auth.proxies import apply_forwarded
from core.settings import DEFAULTS, Settings
from presentation.http import SECURITY_HEADERS

log = logging.getLogger("jobdeck")

UPLOAD_PATHS = frozenset({"/files/"})
# A body declared at most this much over its limit is read and dropped before the 413: clients
# that read the answer only after sending their body (most do) would otherwise see a reset
# connection. A larger one is answered at once and its connection closed.
DRAIN_BYTES = 64 * 1024 * 1024


def limit_setting(settings: Settings, name: str) -> int:
    """A limit; an unset one (null in settings.yaml) is its built-in default."""
    return getattr(settings, name) or getattr(DEFAULTS, name)


def http_server_options(settings: Settings) -> dict:
    """Tornado's own caps (it closes the connection past them): the request line and headers,
    and the largest body any route takes plus the drain."""
    largest = max(limit_setting(settings, "max_body_kb") * 1024,
                  limit_setting(settings, "max_upload_mb") * 1024 * 1024)
    return {"max_header_size": limit_setting(settings, "max_header_kb") * 1024,
            "max_body_size": largest + DRAIN_BYTES}


def query_values_problem(query: str, cap: int) -> str | None:
    """Why the query string has too many values (naming its most repeated parameter), or None."""
    counts = Counter(name for name, _ in parse_qsl(query, keep_blank_values=True))
    total = sum(counts.values())
    if total <= cap:
        return None
    name, repeats = counts.most_common(1)[0]
    return (f"Too many query parameter values: {total}, '{name[:50]}' {repeats} times; "
            f"at most {cap} per request (max_query_values)")


class LimitedRequest(httputil.HTTPMessageDelegate):
    """Checks the query and body limits as soon as the request line and headers are in, before
    a handler runs; an oversized body is never handed on, so it is never buffered."""

    def __init__(self, inner: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection, settings: Settings):
        self.inner, self.connection, self.settings = inner, connection, settings
        self.rejection: tuple[int, str] | None = None
        self.forwarded = self.replied = False
        self.limit = self.received = 0
        self.too_large = ""

    def headers_received(self, start_line, headers):
        path, _, query = start_line.path.partition("?")
        if path in UPLOAD_PATHS:
            megabytes = limit_setting(self.settings, "max_upload_mb")
            self.limit, self.too_large = megabytes * 1024 * 1024, (
                f"Upload too large: the limit is {megabytes} MiB (max_upload_mb)")
        else:
            kilobytes = limit_setting(self.settings, "max_body_kb")
            self.limit, self.too_large = kilobytes * 1024, (
                f"Request body too large: the limit is {kilobytes} KiB (max_body_kb)")
        self.connection.set_max_body_size(self.limit + DRAIN_BYTES)
        declared = headers.get("Content-Length", "")
        problem = query_values_problem(query, limit_setting(self.settings, "max_query_values"))
        length = int(declared) if declared.isdigit() else 0
        if problem:
            self.rejection = (400, problem)
        elif length > self.limit:
            self.rejection = (413, self.too_large)
        if self.rejection and (length > self.limit + DRAIN_BYTES
                               or headers.get("Expect", "").lower() == "100-continue"):
            # The client is waiting for the go-ahead, or the body is too large to drain.
            self.connection.set_max_body_size(max(length, self.limit))
            self.reply(close=True)
        if self.rejection:
            log.info("rejected %s %s: %s", start_line.method, path, self.rejection[1])
            return None
        self.forwarded = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        self.received += len(chunk)
        if self.forwarded and self.received > self.limit:
            self.rejection, self.forwarded = (413, self.too_large), False
            self.inner.on_connection_close()  # the handler drops what it buffered
        return self.inner.data_received(chunk) if self.forwarded else None

    def finish(self):
        if self.forwarded:
            return self.inner.finish()
        return self.reply(close=False)

    def on_connection_close(self):
        if self.forwarded:
            self.inner.on_connection_close()

    def reply(self, close: bool) -> None:
        if self.replied:
            return
        if self.rejection is None:
            raise RuntimeError("a request that was not rejected has no rejection to answer")
        self.replied = True
        status, message = self.rejection
        body = f"{message}\n".encode()
        headers = httputil.HTTPHeaders({"Content-Type": "text/plain; charset=UTF-8",
                                        "Content-Length": str(len(body)), **SECURITY_HEADERS})
        if close:
            headers["Connection"] = "close"
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses[status]),
            headers, body)
        self.connection.finish()


class LimitedApplication(tornado.web.Application):
    """An Application whose every request passes LimitedRequest first, with the limits of its
    Settings (`settings["config"]`, see server.make_app)."""

    def start_request(self, server_conn, request_conn):
        return LimitedRequest(super().start_request(server_conn, request_conn), request_conn,
                              self.settings["config"])

    def find_handler(self, request, **kwargs):
        """Believe forwarding headers only from `trusted_proxies` (auth/proxies.py); the server
        listens without Tornado's xheaders."""
        apply_forwarded(request, self.settings["config"].trusted_proxies)
        return super().find_handler(request, **kwargs)
