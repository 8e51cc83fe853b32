"""Query arguments read the way every list reads them: typed values with the API's 400 messages,
and the job filter that GET /jobs/, /jobs/updates/ and /jobs/executions/, the jobs page and the
live socket all build with `job_filter`, so each refuses a bad argument with the same text.

Each function reads `arguments`: a handler's `get_query_arguments` (the decoded, stripped values
of one name), so Tornado's decoding and its 400 for text that is not UTF-8 stay the same."""

from collections.abc import Callable
from typing import overload

from core.model import JOB_STATUSES
from core.times import now_ms, parse_instant
from presentation.errors import APIError
from store.jobs import JOB_ORDER_FIELDS, JobFilter

Arguments = Callable[[str], list[str]]

MAX_PAGE_SIZE = 1000
# MongoDB stores 64-bit signed integers; a larger number can match nothing and must not reach it.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# No result set has this many pages, and a larger page would overflow the store's skip.
MAX_PAGE = INT64_MAX // MAX_PAGE_SIZE


def check_int64(name: str, value: int) -> int:
    """`value` if MongoDB can hold it, else a 400 naming `name`."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise APIError(400, f"{name} {value} is out of range; integers must fit in 64 bits")
    return value


def strings(arguments: Arguments, name: str) -> list[str]:
    return [v for v in arguments(name) if v != ""]


def ints(arguments: Arguments, name: str) -> list[int]:
    values = []
    for raw in strings(arguments, name):
        try:
            values.append(int(raw))
        except ValueError:
            raise APIError(400, f"{name} must be an integer, not '{raw}'") from None
        if name != "page":
            check_int64(name, values[-1])
    return values


@overload
def integer(arguments: Arguments, name: str, default: int, low: int | None = None,
            high: int | None = None) -> int: ...


@overload
def integer(arguments: Arguments, name: str, default: None = None, low: int | None = None,
            high: int | None = None) -> int | None: ...


def integer(arguments: Arguments, name: str, default: int | None = None, low: int | None = None,
            high: int | None = None) -> int | None:
    values = ints(arguments, name)
    if not values:
        return default
    value = values[-1]
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise APIError(400, f"{name} must be {bounds}, not {value}")
    return value


def boolean(arguments: Arguments, name: str) -> bool | None:
    values = strings(arguments, name)
    if not values:
        return None
    raw = values[-1].lower()
    if raw not in ("true", "false", "1", "0"):
        raise APIError(400, f"{name} must be true or false, not '{values[-1]}'")
    return raw in ("true", "1")


def choices(arguments: Arguments, name: str, allowed) -> list[str]:
    values = strings(arguments, name)
    for value in values:
        if value not in allowed:
            raise APIError(400, f"{name} '{value}' is not valid; choose from "
                                f"{', '.join(allowed)}")
    return values


def time_range(arguments: Arguments,
               default_started: str | None = None) -> tuple[int | None, int | None]:
    """`started`/`ended`: ISO-8601 datetimes with a zone, or durations back from now."""
    now = now_ms()
    bounds: list[int | None] = []
    for name, default in (("started", default_started), ("ended", None)):
        values = strings(arguments, name)
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


def order(arguments: Arguments, allowed: dict[str, str], default) -> list[tuple[str, int]]:
    """`order` values (`-` for descending, `a__b` or `a.b` paths) as stored sort keys."""
    keys: list[tuple[str, int]] = []
    for raw in strings(arguments, "order"):
        name = raw.removeprefix("-")
        key = allowed.get(name.replace(".", "__"))
        if key is None:
            raise APIError(400, f"order '{raw}' is not a field you can order by; choose from "
                                f"{', '.join(sorted(allowed))}")
        if all(key != seen for seen, _ in keys):  # the first mention of a field wins
            keys.append((key, -1 if raw.startswith("-") else 1))
    return keys or list(default)


def page(arguments: Arguments) -> tuple[int, int]:
    number = integer(arguments, "page", 1, low=1)
    page_size = integer(arguments, "page_size", 100, low=1, high=MAX_PAGE_SIZE)
    if number > MAX_PAGE:
        raise APIError(404, f"page {number} is past the last page")
    return number, page_size


def job_filter(arguments: Arguments, time_field: str = "last_modified") -> JobFilter:
    """`status`, `job_id`, `job_type_id`, `job_type_name`, `job_type_category` and the
    `started`/`ended` range, applied to `time_field` (`last_status_change` for updates)."""
    started, ended = time_range(arguments)
    return JobFilter(
        statuses=choices(arguments, "status", JOB_STATUSES),
        job_ids=ints(arguments, "job_id"),
        job_type_ids=ints(arguments, "job_type_id"),
        job_type_names=strings(arguments, "job_type_name"),
        job_type_categories=strings(arguments, "job_type_category"),
        started=started, ended=ended, time_field=time_field)


def job_order(arguments: Arguments, time_field: str = "last_modified") -> list[tuple[str, int]]:
    """`order` for a job list; by default oldest `time_field` first, then id."""
    return order(arguments, JOB_ORDER_FIELDS, ((time_field, 1), ("id", 1)))
