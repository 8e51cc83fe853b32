"""The Jinja2 environment of every HTML page (the dashboards, the login page) and its filters."""

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from core.model import (
    CANCELABLE_JOB_STATUSES,
    JOB_STATUSES,
    MIN_CPUS,
    MIN_MEM,
    REQUEUEABLE_JOB_STATUSES,
)
from core.text import is_http_url
from presentation.models import SERIES_LABELS

ROOT = Path(__file__).resolve().parent.parent


def file_size(size) -> str:
    """Bytes in the largest unit that keeps the number at least 1."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def mib(value) -> str:
    """A size in MiB (node and job memory) in the largest unit that keeps it at least 1:
    `384.0` → `384 MiB`, `24105.12890625` → `23.5 GiB`."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def short_time(iso: str | None) -> str:
    """`2015-08-28T17:55:41.005Z` → `2015-08-28 17:55:41` (the page says times are UTC)."""
    return "" if not iso else iso[:19].replace("T", " ")


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


ENV = Environment(loader=FileSystemLoader(str(ROOT / "templates")), autoescape=True,
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(file_size=file_size, mib=mib, short_time=short_time, pretty_json=pretty_json)
# A stored URL is a link only when it is http(s): values stored before author_url was checked
# (or written straight into the store) are shown as text.
ENV.tests["http_url"] = is_http_url
ENV.globals.update(JOB_STATUSES=JOB_STATUSES, CANCELABLE=CANCELABLE_JOB_STATUSES,
                   REQUEUEABLE=REQUEUEABLE_JOB_STATUSES, MIN_CPUS=MIN_CPUS, MIN_MEM=MIN_MEM,
                   SERIES_LABELS=SERIES_LABELS)
