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


def short_time(iso: str | None) -> str:
    """`2015-08-28T17:55:41.005Z` → `2015-08-28 17:55:41` (the page says times are UTC)."""
    return "" if not iso else iso[:19].replace("T", " ")


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


ENV = Environment(loader=FileSystemLoader(str(ROOT / "templates")), autoescape=True,
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(file_size=file_size, short_time=short_time, pretty_json=pretty_json)
ENV.globals.update(JOB_STATUSES=JOB_STATUSES, CANCELABLE=CANCELABLE_JOB_STATUSES,
                   REQUEUEABLE=REQUEUEABLE_JOB_STATUSES, MIN_CPUS=MIN_CPUS, MIN_MEM=MIN_MEM)
