"""What the API tests expect of responses: field lists in order, the time format and the plain
one-line client error."""

import re

from presentation import models

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Field lists in order, from the response models (presentation/models.py) the serializers and the
# OpenAPI document are built from.
JOB_TYPE_BASE_KEYS = list(models.JobTypeBase.keys)
JOB_TYPE_KEYS = list(models.JobType.keys)
JOB_TYPE_DETAILS_KEYS = list(models.JobTypeDetails.keys)
JOB_KEYS = list(models.Job.keys)
JOB_DETAILS_KEYS = list(models.JobDetails.keys)
EXE_BASE_KEYS = list(models.JobExecutionBase.keys)
EXE_DETAILS_KEYS = list(models.JobExecutionDetails.keys)
FILE_KEYS = list(models.ScaleFile.keys)
PRODUCT_KEYS = list(models.ProductFile.keys)
ERROR_BASE_KEYS = list(models.ErrorBase.keys)
ERROR_KEYS = list(models.Error.keys)


def assert_plain_error(status, body, headers, code: int, *fragments: str) -> None:
    """A client error: the code, text/plain, one line, naming what went wrong."""
    assert status == code, body
    assert headers["Content-Type"].startswith("text/plain"), headers["Content-Type"]
    assert isinstance(body, str) and body.endswith("\n") and body.count("\n") == 1, body
    assert "Traceback" not in body
    for fragment in fragments:
        assert fragment in body, (fragment, body)
