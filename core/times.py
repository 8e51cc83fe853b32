"""Time handling shared by the store and the API.

Times are stored as integer milliseconds since the Unix epoch: every MongoDB-compatible store
compares and sorts integers the same way (nx-27017 compares BSON dates as text and gets
millisecond boundaries wrong), and the API's format has millisecond precision anyway.
"""

from datetime import UTC, datetime
from typing import overload

import isodate


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@overload
def format_ms(ms: int) -> str: ...


@overload
def format_ms(ms: None) -> None: ...


@overload
def format_ms(ms: int | None) -> str | None: ...


def format_ms(ms: int | None) -> str | None:
    """`2015-08-28T17:55:41.005Z`: UTC, milliseconds, `Z`, as the API promises."""
    if ms is None:
        return None
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant(text: str, now: int | None = None) -> int:
    """An ISO-8601 datetime with a zone, or an ISO-8601 duration meaning "now minus it".

    Raises ValueError with a message fit for a 400 response.
    """
    text = text.strip()
    if text.upper().startswith("P"):
        try:
            duration = isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError) as exc:
            raise ValueError(f"'{text}' is not an ISO-8601 duration") from exc
        if isinstance(duration, isodate.Duration):
            duration = duration.totimedelta(end=datetime.now(UTC))
        if duration.total_seconds() < 0:
            raise ValueError(f"'{text}' is a negative duration")
        base = now_ms() if now is None else now
        return base - int(duration.total_seconds() * 1000)
    try:
        value = isodate.parse_datetime(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(f"'{text}' is not an ISO-8601 datetime or duration") from exc
    if value.tzinfo is None:
        raise ValueError(f"'{text}' has no timezone; add Z or an offset such as +00:00")
    return to_ms(value)
