"""The base handler: JSON out, text/plain errors (presentation/errors.py), typed query arguments
(presentation/filters.py)."""

import json
import logging
import math
from urllib.parse import urlencode

import tornado.web
from pymongo.errors import PyMongoError

from core.text import escaped, lone_surrogate
from presentation import filters, http
from presentation.errors import APIError, error_message, write_text_error
from presentation.filters import INT64_MAX, INT64_MIN
from presentation.http import SecurityHeaders
from presentation.serializers import page_body

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


def unstorable_text(body) -> str | None:
    """Why a parsed body holds text the store cannot keep (a lone surrogate, from a JSON escape
    such as "\\ud800": not Unicode, so not UTF-8), naming its place; None when all is text.
    Checked with unstorable_number, before any handler runs."""
    stack = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key in value:
                found = lone_surrogate(str(key))
                if found:
                    return (f"A field name in {escaped(path)[:100] or 'the body'} is not valid "
                            f"Unicode: it holds the lone surrogate {found}")
            stack.extend((f"{path}.{key}" if path else str(key), item)
                         for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str) and not isinstance(value, LongInt):
            found = lone_surrogate(value)
            if found:
                return (f"{escaped(path)[:100] or 'The body'} is not valid Unicode: it holds the "
                        f"lone surrogate {found}")
    return None


def json_content_type_problem(content_type: str | None) -> str | None:
    """Why a request body is not declared as JSON (`application/json`, with an optional UTF-8
    charset); None when it is."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    shown = "".join(c if " " <= c < "\x7f" else "?" for c in (content_type or "")[:100])
    if media != "application/json":
        return (f"Send a JSON body with Content-Type: application/json, not "
                f"{shown or 'no Content-Type'}")
    charset = next((value.strip().strip('"').lower() for name, _, value in
                    (param.partition("=") for param in params.split(";"))
                    if name.strip().lower() == "charset"), "utf-8")
    if charset not in ("utf-8", "utf8"):
        return f"JSON bodies must be UTF-8, not charset {shown}"
    return None


# What every API call and page says while the store does not answer (503, Retry-After: 2).
STORE_UNAVAILABLE = ("The job store is unavailable: it did not answer in time (it may be "
                     "restarting); try again in a few seconds.")
# ...and when it answers but cannot write (a full disk: store/writes.py), with the cause.
STORE_CANNOT_WRITE = "The job store cannot write: {cause}; try again later."
CANNOT_WRITE_RETRY_AFTER = "10"


class BaseHandler(SecurityHeaders, tornado.web.RequestHandler):
    # Authentication (auth/): `public` handlers need no credentials; dashboard pages
    # send a browser without a session to the login page instead of answering 401;
    # `xsrf_form_field`: the XSRF token may come in the `_xsrf` field of a form post (the
    # dashboard's own forms), not only in the X-XSRFToken header.
    public = False
    login_redirect = False
    xsrf_form_field = False

    async def prepare(self):
        """Who the caller is (`current_user`, set here: a session is looked up in the store)
        and whether they may (auth.identity.Authenticator.authorize). Subclasses that override
        this must `await super().prepare()` first."""
        await self.settings["authenticator"].authorize(self)

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
        """Tornado calls this before prepare() for every change; the session-bound token and the
        origin checks are the Authenticator's (auth/identity.py)."""
        self.settings["authenticator"].check_xsrf(self)

    @property
    def xsrf_token(self) -> bytes:
        """The XSRF token bound to this browser's session (not Tornado's `_xsrf` cookie, which
        a page on another port of this host could plant)."""
        return self.settings["authenticator"].xsrf_token(self)

    @property
    def store(self):
        return self.application.settings["store"]

    @property
    def base_url(self) -> str:
        return http.base_url(self.request)

    async def cluster_nodes(self) -> list[dict]:
        """The Slurm nodes the engine recorded, with executor slurm (no store read otherwise):
        what a QUEUED job's reason for waiting is found from."""
        if self.settings["config"].executor != "slurm":
            return []
        return await self.store.nodes.cluster()

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
        """The body as a JSON object, or a 400 naming why; a body not sent as
        `application/json` (a form's text/plain, say) is a 415 whatever it holds."""
        if self.request.body:
            problem = json_content_type_problem(self.request.headers.get("Content-Type"))
            if problem:
                raise APIError(415, problem)
        try:
            body = json.loads(self.request.body or b"null", parse_int=parse_body_int)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise APIError(400, f"Request body is not valid JSON: {exc}") from exc
        except RecursionError:
            raise APIError(400, "Request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise APIError(400, "Request body must be a JSON object")
        problem = unstorable_number(body) or unstorable_text(body)
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
        self.write_json(page_body(
            count, self.page_url(page + 1) if page * page_size < count else None,
            self.page_url(page - 1) if page > 1 else None, results))


class NotFoundHandler(BaseHandler):
    """No route matched. A GET or HEAD that matches one with its trailing slash added (or, for
    the dashboards, removed) is redirected there (301, query kept); anything else is a 404 that
    names the right URL when there is one."""

    def prepare(self):
        path = self.request.path
        other = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        if not self.has_route(other):
            raise APIError(404, f"No such endpoint: {path}")
        if self.request.method in ("GET", "HEAD"):
            query = self.request.uri[len(path):] if self.request.uri.startswith(path) else ""
            self.redirect(other + query, permanent=True)
            return
        raise APIError(404, f"No such endpoint: {path}; did you mean {other}?")

    def has_route(self, path: str) -> bool:
        """Whether a route of this application matches `path` exactly."""
        for rule in self.application.wildcard_router.rules:
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and regex.match(path):
                return True
        return False
