"""The base handler: JSON out, text/plain errors, typed query arguments."""

import json
import logging
import math
from urllib.parse import urlencode

import tornado.web
from pymongo.errors import PyMongoError

from core.times import now_ms, parse_instant

log = logging.getLogger("jobdeck")

MAX_PAGE_SIZE = 1000
# MongoDB stores 64-bit signed integers; a larger number can match nothing and must not reach it.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# No result set has this many pages, and a larger page would overflow the store's skip.
MAX_PAGE = INT64_MAX // MAX_PAGE_SIZE


def sentence(message: str) -> str:
    """A store message as a response line: first letter up, the rest (names, statuses) kept."""
    return message[:1].upper() + message[1:]


def check_int64(name: str, value: int) -> int:
    """`value` if MongoDB can hold it, else a 400 naming `name`."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise APIError(400, f"{name} {value} is out of range; integers must fit in 64 bits")
    return value


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


class APIError(tornado.web.HTTPError):
    """A client-facing error whose message is the whole response body."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(status, reason=None)
        self.message = message
        self.headers = headers or {}


# On every response: no MIME sniffing, no framing, no inline scripts (static/js only).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Mixed into every handler class, static files included."""

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)


class BaseHandler(SecurityHeaders, tornado.web.RequestHandler):
    # Authentication (handlers/auth.py): `public` handlers need no credentials; dashboard pages
    # send a browser without a session to the login page instead of answering 401.
    public = False
    login_redirect = False

    def get_current_user(self):
        """The caller's handlers.auth.Identity (role, name), or None without credentials."""
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

    def write_json(self, body, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, APIError):
            message = exc.message
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, OverflowError):
            self.set_status(400)
            message = "A number in the request is too large"
        elif isinstance(exc, PyMongoError):
            message = self.store_unavailable(exc)
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(message.rstrip() + "\n")

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

    # -- query arguments ---------------------------------------------------------------------

    def query_strings(self, name: str) -> list[str]:
        return [v for v in self.get_query_arguments(name) if v != ""]

    def query_ints(self, name: str) -> list[int]:
        values = []
        for raw in self.query_strings(name):
            try:
                values.append(int(raw))
            except ValueError:
                raise APIError(400, f"{name} must be an integer, not '{raw}'") from None
            if name != "page":
                check_int64(name, values[-1])
        return values

    def query_int(self, name: str, default: int | None = None, low: int | None = None,
                  high: int | None = None) -> int | None:
        values = self.query_ints(name)
        if not values:
            return default
        value = values[-1]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise APIError(400, f"{name} must be {bounds}, not {value}")
        return value

    def query_bool(self, name: str) -> bool | None:
        values = self.query_strings(name)
        if not values:
            return None
        raw = values[-1].lower()
        if raw not in ("true", "false", "1", "0"):
            raise APIError(400, f"{name} must be true or false, not '{values[-1]}'")
        return raw in ("true", "1")

    def query_choices(self, name: str, choices) -> list[str]:
        values = self.query_strings(name)
        for value in values:
            if value not in choices:
                raise APIError(400, f"{name} '{value}' is not valid; choose from "
                                    f"{', '.join(choices)}")
        return values

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
        """`started`/`ended`: ISO-8601 datetimes with a zone, or durations back from now."""
        now = now_ms()
        bounds = []
        for name, default in (("started", default_started), ("ended", None)):
            values = self.query_strings(name)
            raw = values[-1] if values else default
            if raw is None:
                bounds.append(None)
                continue
            try:
                bounds.append(parse_instant(raw, now))
            except ValueError as exc:
                raise APIError(400, f"{name}: {exc}") from None
            except OverflowError:
                raise APIError(400, f"{name}: '{raw}' reaches outside the calendar") from None
        started, ended = bounds
        if started is not None and ended is not None and started >= ended:
            raise APIError(400, "started must be before ended")
        return started, ended

    def parse_order(self, allowed: dict[str, str], default) -> list[tuple[str, int]]:
        """`order` values (`-` for descending, `a__b` or `a.b` paths) as stored sort keys."""
        order = []
        for raw in self.query_strings("order"):
            name = raw.removeprefix("-")
            key = allowed.get(name.replace(".", "__"))
            if key is None:
                raise APIError(400, f"order '{raw}' is not a field you can order by; choose from "
                                    f"{', '.join(sorted(allowed))}")
            if all(key != seen for seen, _ in order):  # the first mention of a field wins
                order.append((key, -1 if raw.startswith("-") else 1))
        return order or list(default)

    def parse_page(self) -> tuple[int, int]:
        page = self.query_int("page", 1, low=1)
        page_size = self.query_int("page_size", 100, low=1, high=MAX_PAGE_SIZE)
        if page > MAX_PAGE:
            raise APIError(404, f"page {page} is past the last page")
        return page, page_size

    def page_url(self, page: int) -> str:
        args = [(k, v.decode("utf-8", "replace")) for k, values in
                self.request.query_arguments.items() if k != "page" for v in values]
        args.append(("page", str(page)))
        return f"{self.request.protocol}://{self.request.host}{self.request.path}?{urlencode(args)}"

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


class NotFoundHandler(BaseHandler):
    def prepare(self):
        raise APIError(404, f"No such endpoint: {self.request.path}")
