"""Documents as the store hands them out: what nx-27017 changes in a document is undone as it is
read, so no caller above the store has to know.

nx-27017 stores a boolean written with `$set` as 0/1 (an insert keeps true/false): a job type
paused through PATCH, a node paused or re-registered, reads back `is_paused: 1`. The flags each
collection declares here leave the store as true/false, a missing one as false.

JobDoc and ExeDoc are a job and an execution as store/jobs.py makes them. A `status` made there
is a core.model JobStatus or ExeStatus; read back from the store it is the plain string equal to
it. Reads are typed `dict`: a projection leaves fields out.
"""

from typing import Any, NotRequired, TypedDict, overload


class JobEvent(TypedDict):
    """The trigger event a job keeps a copy of."""

    id: int
    type: str
    rule_id: int | None
    occurred: int
    description: NotRequired[dict]  # written since issue 13 (job details show it)


class JobDoc(TypedDict):
    """A job as JobStore.new_job_doc makes it (`_id` equal to `id`, see store/db.py)."""

    _id: int
    id: int
    job_type_id: int
    job_type_name: str
    job_type_version: str
    job_type_rev_id: int
    job_type_rev_num: int
    event: JobEvent
    error_id: int | None
    status: str
    priority: int
    num_exes: int
    timeout: int
    max_tries: int
    cpus_required: float
    mem_required: float
    disk_in_required: float
    disk_out_required: float
    created: int
    queued: int | None
    started: int | None
    ended: int | None
    last_status_change: int
    last_modified: int
    data: dict[str, Any]
    results: dict[str, Any] | None
    input_file_ids: list[int]
    latest_exe_id: int | None
    # store/counts.py: the transition version; `fold_gen`: NOT_COUNTED while the counters lag
    # behind it (else the `gen` of the fold that counted it); `ctv`, `cst`, `cg` (the version, status and
    # gen counted) and `pcst`/`pcg` (those of the fold before) are written by the folds.
    tv: int
    fold_gen: NotRequired[int]
    ctv: NotRequired[int]
    cst: NotRequired[str]
    cg: NotRequired[int]
    pcst: NotRequired[str]
    pcg: NotRequired[int]


class ExeDoc(TypedDict):
    """A job execution as JobStore makes it QUEUED; the engine's claim adds the rest."""

    _id: NotRequired[int]
    id: int
    job_id: int
    job_type_id: int
    status: str
    command_arguments: str
    timeout: int
    pre_started: int | None
    pre_completed: int | None
    pre_exit_code: int | None
    job_started: int | None
    job_completed: int | None
    job_exit_code: int | None
    post_started: int | None
    post_completed: int | None
    post_exit_code: int | None
    created: int
    queued: int
    started: int | None
    ended: int | None
    last_modified: int
    node_id: int | None
    error_id: int | None
    environment: dict[str, str]
    cpus_scheduled: float | None
    mem_scheduled: float | None
    disk_in_scheduled: float | None
    disk_out_scheduled: float | None
    disk_total_scheduled: float | None
    results: dict[str, Any] | None
    results_manifest: dict[str, Any] | None
    # Written by the engine's claim (engine/runner.py claim_fields) and its start.
    work_dir: NotRequired[str]
    stdout_file: NotRequired[str]
    stderr_file: NotRequired[str]
    engine: NotRequired[dict[str, Any]]
    process: NotRequired[dict[str, Any]]

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
