"""Scale's status model and built-in records, shared by the store, the engine and the API."""

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status. Members are `str`s equal to their names: they are stored, compared with
    what the store hands back (plain strings), written to JSON and rendered as those names."""

    PENDING = "PENDING"
    BLOCKED = "BLOCKED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class ExeStatus(StrEnum):
    """A job execution's status (a subset of the job's, with the same names)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


JOB_STATUSES = tuple(JobStatus)
FINAL_JOB_STATUSES = (JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.CANCELED)
CANCELABLE_JOB_STATUSES = (JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.QUEUED,
                           JobStatus.RUNNING, JobStatus.FAILED)
REQUEUEABLE_JOB_STATUSES = (JobStatus.FAILED, JobStatus.CANCELED)
# What Scale's queue_jobs moves to QUEUED.
QUEUEABLE_JOB_STATUSES = (JobStatus.PENDING, JobStatus.FAILED, JobStatus.CANCELED)

EXE_STATUSES = tuple(ExeStatus)
FINAL_EXE_STATUSES = (ExeStatus.FAILED, ExeStatus.COMPLETED, ExeStatus.CANCELED)
UNFINISHED_EXE_STATUSES = (ExeStatus.QUEUED, ExeStatus.RUNNING)

ERROR_CATEGORIES = ("SYSTEM", "ALGORITHM", "DATA")

# Scale's fixtures: error/basic_errors.json, job/basic_job_errors.json, scheduler/scheduler_errors.json.
BUILTIN_ERRORS = (
    ("unknown", "Unknown", "The cause of this failure is unknown.", "SYSTEM"),
    ("database", "Database", "The database could not be reached or failed.", "SYSTEM"),
    ("database-operation", "Database Operation", "A database operation failed.", "SYSTEM"),
    ("filesystem-io", "Filesystem I/O", "Reading or writing a file failed.", "SYSTEM"),
    ("nfs", "NFS", "A network file system failed.", "SYSTEM"),
    ("task-launch", "Task Launch", "The task could not be started.", "SYSTEM"),
    ("docker-task-launch", "Docker Task Launch", "The Docker task could not be started.", "SYSTEM"),
    ("node-lost", "Node Lost", "The node running the job was lost.", "SYSTEM"),
    ("timeout", "Timeout", "The job ran longer than its timeout and was killed.", "ALGORITHM"),
    ("algorithm-unknown", "Algorithm Unknown", "The algorithm exited with an unmapped error code.",
     "ALGORITHM"),
    ("scheduler-lost", "Scheduler Lost", "The scheduler was lost while the job ran.", "SYSTEM"),
    ("mesos-lost", "Mesos Lost", "The cluster manager lost the task.", "SYSTEM"),
    # Jobdeck's own, for the Slurm backend (engine/slurm.py).
    ("out-of-memory", "Out of Memory", "The job went over its memory and was killed.",
     "ALGORITHM"),
    ("slurm-timeout", "Slurm Time Limit", "Slurm ended the job at its time limit.", "ALGORITHM"),
    ("slurm-rejected", "Slurm Rejected", "Slurm refused the job at submission.", "ALGORITHM"),
)

# Scale's JobType model defaults.
JOB_TYPE_DEFAULTS = {
    "title": None,
    "description": None,
    "category": None,
    "author_name": None,
    "author_url": None,
    "is_system": False,
    "is_long_running": False,
    "is_active": True,
    "is_operational": True,
    "is_paused": False,
    "icon_code": None,
    "uses_docker": False,
    "docker_privileged": False,
    "docker_image": None,
    "priority": 100,
    "max_scheduled": None,
    "timeout": 1800,
    "max_tries": 3,
    "cpus_required": 1.0,
    "mem_required": 64.0,
    "disk_out_const_required": 64.0,
    "disk_out_mult_required": 0.0,
    "error_mapping": {"version": "1.0", "exit_codes": {}},
}

# Fields a client may set on POST/PATCH /job-types/ (Scale's editable model fields).
JOB_TYPE_EDITABLE = tuple(k for k in JOB_TYPE_DEFAULTS if k not in ("is_system", "is_long_running",
                                                                    "is_active", "uses_docker"))
# Uneditable fields Scale silently drops from a request body.
JOB_TYPE_IGNORED = ("is_system", "is_long_running", "is_active", "requires_cleanup", "uses_docker",
                    "revision_num", "created", "archived", "paused", "last_modified", "id")

MIN_CPUS = 0.25
MIN_MEM = 128.0
