"""The base handler: JSON out, text/plain errors (presentation/errors.py), typed query arguments
(presentation/filters.py)."""

import json
import logging
import math
from collections import Counter
from urllib.parse import parse_qsl, urlencode

import tornado.web
from pymongo.errors import PyMongoError
from tornado import httputil

from presentation import filters, http
from presentation.errors import APIError, error_message, write_text_error
from presentation.filters import INT64_MAX, INT64_MIN
from presentation.http import SECURITY_HEADERS, SecurityHeaders

log = logging.getLogger("jobdeck")


class LongInt(str):
    """A JSON integer literal over 20 characters: out of range, and not worth parsing (int()
    refuses over 4300 digits)."""


def parse_body_int(text: str) -> int | LongInt:
    return int(text) if len(text) <= 20 else LongInt(text)


def unstorable_number(body) -> str | None:
    """Why a parsed body holds a number MongoDB cannot store (over 64 bits) or JSON cannot carry
    back out (NaN, Infinity, 1e400), naming its place; None when all fit. Checked before any
    handler runs, so nothing is half-written."""
    stack = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}" if path else str(key), item)
                         for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, LongInt) or (isinstance(value, int) and not isinstance(value, bool)
                                            and not INT64_MIN <= value <= INT64_MAX):
            return (f"{path[:100] or 'The body'} {str(value)[:40]} is out of range; integers "
                    "must fit in 64 bits")
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{path[:100] or 'The body'} {value} is not allowed; numbers must be finite"
    return None


# What every API call and page says while the store does not answer (503, Retry-After: 2).
STORE_UNAVAILABLE = ("The job store is unavailable: it did not answer in time (it may be "
                     "restarting); try again in a few seconds.")
# ...and when it answers but cannot write (a full disk: store/writes.py), with the cause.
STORE_CANNOT_WRITE = "The job store cannot write: {cause}; try again later."
CANNOT_WRITE_RETRY_AFTER = "10"


class BaseHandler(SecurityHeaders, tornado.web.RequestHandler):
    # Authentication (auth/): `public` handlers need no credentials; dashboard pages
    # send a browser without a session to the login page instead of answering 401.
    public = False
    login_redirect = False

    def get_current_user(self):
        """The caller's auth.identity.Identity (role, name), or None without credentials."""
        return self.settings["authenticator"].identify(self)

    def prepare(self):
        self.settings["authenticator"].authorize(self)

    def store_unavailable(self, exc: Exception | None = None) -> str:
        """503 with Retry-After, for API calls and pages alike; the message to show: why the
        store cannot write when `exc` says it cannot (a full disk), else that it is
        unavailable."""
        self.set_status(503)
        problem = self.store.writes.failed(exc) if exc is not None else None
        if problem is not None:
            self.set_header("Retry-After", CANNOT_WRITE_RETRY_AFTER)
            return STORE_CANNOT_WRITE.format(cause=problem.cause)
        self.set_header("Retry-After", "2")
        return STORE_UNAVAILABLE

    def check_xsrf_cookie(self) -> None:
        self.settings["authenticator"].check_xsrf(self, super().check_xsrf_cookie)

    @property
    def store(self):
        return self.application.settings["store"]

    @property
    def base_url(self) -> str:
        return http.base_url(self.request)

    def write_json(self, body, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PyMongoError):
            message = self.store_unavailable(exc)
        else:
            message = error_message(self, exc)
        write_text_error(self, message)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, APIError):
            return
        if isinstance(value, PyMongoError):
            # A write the store cannot make: its outage's one warning comes from store/writes.py.
            level = logging.DEBUG if self.store.writes.failed(value) else logging.WARNING
            log.log(level, "store error on %s %s: %s", self.request.method, self.request.uri,
                    value)
            return
        super().log_exception(typ, value, tb)

    # -- request bodies ----------------------------------------------------------------------

    def json_body(self) -> dict:
        """The body as a JSON object, or a 400 (415 for a non-JSON content type) naming why."""
        content_type = self.request.headers.get("Content-Type", "application/json")
        try:
            body = json.loads(self.request.body or b"null", parse_int=parse_body_int)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if "json" not in content_type.lower():
                raise APIError(415, f"Send a JSON body with Content-Type: application/json, "
                                    f"not {content_type}") from exc
            raise APIError(400, f"Request body is not valid JSON: {exc}") from exc
        except RecursionError:
            raise APIError(400, "Request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise APIError(400, "Request body must be a JSON object")
        problem = unstorable_number(body)
        if problem:
            raise APIError(400, problem)
        return body

    # -- query arguments (presentation/filters.py) -----------------------------------------------

    def query_strings(self, name: str) -> list[str]:
        return filters.strings(self.get_query_arguments, name)

    def query_ints(self, name: str) -> list[int]:
        return filters.ints(self.get_query_arguments, name)

    def query_int(self, name: str, default: int | None = None, low: int | None = None,
                  high: int | None = None) -> int | None:
        return filters.integer(self.get_query_arguments, name, default, low, high)

    def query_bool(self, name: str) -> bool | None:
        return filters.boolean(self.get_query_arguments, name)

    def query_choices(self, name: str, choices) -> list[str]:
        return filters.choices(self.get_query_arguments, name, choices)

    async def job_type_ids_filter(self) -> set[int] | None:
        """`job_type_id`, `job_type_name`, `job_type_category` resolved to one id set (None: any)."""
        type_ids = self.query_ints("job_type_id")
        names = self.query_strings("job_type_name")
        categories = self.query_strings("job_type_category")
        job_type_ids = set(type_ids) if type_ids else None
        if names or categories:
            named = await self.store.job_types.ids_matching(names, categories)
            job_type_ids = named if job_type_ids is None else job_type_ids & named
        return job_type_ids

    def parse_time_range(self, default_started: str | None = None) -> tuple[int | None, int | None]:
        return filters.time_range(self.get_query_arguments, default_started)

    def parse_order(self, allowed: dict[str, str], default) -> list[tuple[str, int]]:
        return filters.order(self.get_query_arguments, allowed, default)

    def parse_page(self) -> tuple[int, int]:
        return filters.page(self.get_query_arguments)

    def page_url(self, page: int) -> str:
        args = [(k, v.decode("utf-8", "replace")) for k, values in
                self.request.query_arguments.items() if k != "page" for v in values]
        args.append(("page", str(page)))
        return f"{self.base_url}{self.request.path}?{urlencode(args)}"

    def write_page(self, count: int, results: list, page: int, page_size: int) -> None:
        """Scale's paginated body; a page past the last is a 404, page 1 may be empty."""
        if page > 1 and (page - 1) * page_size >= count:
            raise APIError(404, f"page {page} is past the last page of {count} results")
        self.write_json({
            "count": count,
            "next": self.page_url(page + 1) if page * page_size < count else None,
            "previous": self.page_url(page - 1) if page > 1 else None,
            "results": results,
        })


# -- request limits (settings in config.py) ---------------------------------------------------

LIMIT_DEFAULTS = {"max_body_kb": 1024, "max_upload_mb": 256, "max_query_values": 1000,
                  "max_header_kb": 256}
UPLOAD_PATHS = frozenset({"/files/"})
# A body declared at most this much over its limit is read and dropped before the 413: clients
# that read the answer only after sending their body (most do) would otherwise see a reset
# connection. A larger one is answered at once and its connection closed.
DRAIN_BYTES = 64 * 1024 * 1024


def limit_setting(settings, name: str) -> int:
    return settings.get(name) or LIMIT_DEFAULTS[name]


def http_server_options(settings) -> dict:
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
                 connection: httputil.HTTPConnection, settings: dict):
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
    """An Application whose every request passes LimitedRequest first."""

    def start_request(self, server_conn, request_conn):
        return LimitedRequest(super().start_request(server_conn, request_conn), request_conn,
                              self.settings)


class NotFoundHandler(BaseHandler):
    def prepare(self):
        raise APIError(404, f"No such endpoint: {self.request.path}")
