"""Documents as the store hands them out: what nx-27017 changes in a document is undone as it is
read, so no caller above the store has to know.

nx-27017 stores a boolean written with `$set` as 0/1 (an insert keeps true/false): a job type
paused through PATCH, a node paused or re-registered, reads back `is_paused: 1`. The flags each
collection declares here leave the store as true/false, a missing one as false.
"""

from typing import overload

JOB_TYPE_FLAGS = ("is_system", "is_long_running", "is_active", "is_operational", "is_paused",
                  "uses_docker", "docker_privileged")
NODE_FLAGS = ("is_paused", "is_paused_errors", "is_active")


@overload
def with_flags(doc: dict, flags: tuple[str, ...]) -> dict: ...


@overload
def with_flags(doc: None, flags: tuple[str, ...]) -> None: ...


@overload
def with_flags(doc: dict | None, flags: tuple[str, ...]) -> dict | None: ...


def with_flags(doc: dict | None, flags: tuple[str, ...]) -> dict | None:
    """`doc` with each of `flags` as a bool (None stays None)."""
    if doc is not None:
        doc.update({name: bool(doc.get(name)) for name in flags})
    return doc
