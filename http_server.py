"""The HTTP server layer: the Host check (`allowed_hosts`) and request limits checked as soon as
a request's line and headers are in, before authentication and before any body is buffered
(settings `max_body_kb`, `max_upload_mb`, `max_query_values`, `max_header_kb`), the connection
timeouts (`header_timeout`, `idle_timeout`, `body_timeout`), and Tornado's own caps for the
listening server."""

import copy
import ipaddress
import logging
import socket
import weakref
from collections import Counter
from urllib.parse import parse_qsl

import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.ioloop import IOLoop

from auth.proxies import apply_forwarded
from core.settings import DEFAULTS, Settings, host_name
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


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# A `host` that listens on every address: clients reach it by this machine's name or any address.
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The names the Host header may give, against DNS rebinding (a page on another name that
    resolves to this server): the loopback names, `host`, and `allowed_hosts` (`*`: any). When
    `host` listens on every address (0.0.0.0, ::), also this machine's name and any IP address
    (an address, unlike a name, cannot be rebound)."""

    def __init__(self, settings: Settings):
        names = set(LOOPBACK_NAMES) | {host_name(settings.host)} | set(settings.allowed_hosts)
        self.any_address = settings.host.strip() in WILDCARD_ADDRESSES
        if self.any_address:
            names.add(host_name(socket.gethostname()))
        self.any_name = "*" in names
        self.names = frozenset(names - {""})

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return self.any_name or name in self.names or (self.any_address and is_address(name))

    def problem(self, start_line: httputil.RequestStartLine,
                headers: httputil.HTTPHeaders) -> str | None:
        """Why this request's Host is refused, or None. HTTP/1.0 may leave it out."""
        header = headers.get("Host")
        if header is None:
            return (None if start_line.version == "HTTP/1.0"
                    else "Missing Host header (HTTP/1.1 requires one)")
        if self.allows(header):
            return None
        return (f"Host not allowed: {host_name(header)[:100]!r} "
                "(add it to allowed_hosts to serve it)")


# Seconds a body may take per MiB it declares, on top of body_timeout (a floor of 1 MiB/s).
BODY_SECONDS_PER_MIB = 1.0


class LimitedRequest(httputil.HTTPMessageDelegate):
    """Checks the Host, the query and the body limits as soon as the request line and headers
    are in, before a handler runs; an oversized body is never handed on, so it is never
    buffered. Sets the request's header and body timeouts (see `time_headers`)."""

    def __init__(self, inner: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection, settings: Settings,
                 hosts: AllowedHosts | None = None):
        self.inner, self.connection, self.settings = inner, connection, settings
        self.hosts = hosts or AllowedHosts(settings)
        self.rejection: tuple[int, str] | None = None
        self.forwarded = self.replied = self.started = False
        self.limit = self.received = 0
        self.too_large = ""
        self.idle_timer: object | None = None

    def time_headers(self, kept_alive: bool) -> None:
        """A new connection's first request must have its line and headers in within
        header_timeout. On a kept-alive connection the next request must begin within
        idle_timeout (checked then: nothing of it has arrived, the connection is closed) and
        have its headers in within idle_timeout + header_timeout. Tornado times only until the
        headers are in, so a WebSocket (once upgraded) is never cut by these."""
        if not isinstance(self.connection, HTTP1Connection):
            return
        timeout = self.settings.header_timeout
        if kept_alive:
            timeout += self.settings.idle_timeout
            self.idle_timer = IOLoop.current().call_later(self.settings.idle_timeout,
                                                          self.close_if_idle)
        params = copy.copy(self.connection.params)
        params.header_timeout = timeout
        self.connection.params = params

    def close_if_idle(self) -> None:
        self.idle_timer = None
        connection = self.connection
        if self.started or not isinstance(connection, HTTP1Connection):
            return
        stream = connection.stream
        if stream is None or stream.closed():
            return
        # Bytes of the next request already read (Tornado's read buffer): it has begun.
        if getattr(stream, "_read_buffer_size", 0) == 0:
            connection.close()

    def _allow_body(self, size: int) -> None:
        """Tornado's body limit for this request (HTTP/1 is the only connection it serves)."""
        if isinstance(self.connection, HTTP1Connection):
            self.connection.set_max_body_size(size)

    def headers_received(self, start_line, headers):
        self.started = True
        if self.idle_timer is not None:
            IOLoop.current().remove_timeout(self.idle_timer)
            self.idle_timer = None
        path, _, query = start_line.path.partition("?")
        if path in UPLOAD_PATHS:
            megabytes = limit_setting(self.settings, "max_upload_mb")
            self.limit, self.too_large = megabytes * 1024 * 1024, (
                f"Upload too large: the limit is {megabytes} MiB (max_upload_mb)")
        else:
            kilobytes = limit_setting(self.settings, "max_body_kb")
            self.limit, self.too_large = kilobytes * 1024, (
                f"Request body too large: the limit is {kilobytes} KiB (max_body_kb)")
        self._allow_body(self.limit + DRAIN_BYTES)
        declared = headers.get("Content-Length", "")
        length = int(declared) if declared.isdigit() else 0
        if isinstance(self.connection, HTTP1Connection):
            expected = min(length, self.limit + DRAIN_BYTES) if declared.isdigit() else self.limit
            self.connection.set_body_timeout(
                self.settings.body_timeout + expected / 2**20 * BODY_SECONDS_PER_MIB)
        problem = (self.hosts.problem(start_line, headers)
                   or query_values_problem(query, limit_setting(self.settings, "max_query_values")))
        if problem:
            self.rejection = (400, problem)
        elif length > self.limit:
            self.rejection = (413, self.too_large)
        if self.rejection and (length > self.limit + DRAIN_BYTES
                               or headers.get("Expect", "").lower() == "100-continue"):
            # The client is waiting for the go-ahead, or the body is too large to drain.
            self._allow_body(max(length, self.limit))
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
    """An Application whose every request passes LimitedRequest first, with the limits, hosts
    and timeouts of its Settings (`settings["config"]`, see server.make_app)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = AllowedHosts(self.settings["config"])
        # The connections that have had a request: their next one is timed as kept-alive.
        self.served: weakref.WeakSet = weakref.WeakSet()

    def start_request(self, server_conn, request_conn):
        request = LimitedRequest(super().start_request(server_conn, request_conn), request_conn,
                                 self.settings["config"], self.hosts)
        request.time_headers(kept_alive=server_conn in self.served)
        self.served.add(server_conn)
        return request

    def find_handler(self, request, **kwargs):
        """Believe forwarding headers only from `trusted_proxies` (auth/proxies.py); the server
        listens without Tornado's xheaders."""
        apply_forwarded(request, self.settings["config"].trusted_proxies)
        return super().find_handler(request, **kwargs)
