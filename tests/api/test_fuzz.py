"""schemathesis against /openapi.json of a real server.py process: every documented operation
gets generated requests, valid and invalid, and every answer must be no 5xx and match the
documented status codes, content types, headers and body schemas.

The run is bounded (FUZZ_EXAMPLES per operation) and derandomized, so CI sees the same requests
every time. The server runs without its job engine: generated job types must never be executed.
"""

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from presentation.openapi import document
from tests.test_server import free_port
from tests.tokens import OPERATOR_HEADERS, OPERATOR_TOKEN

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = 60
STARTUP_LIMIT = 60  # seconds; a guard against a hung start, not a performance assertion
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# Schema-violating JSON bodies must be refused. Not applied to query parameters: on the wire
# every value is text, so a generated "violation" (`?job_type_name=true`) is often a valid one.
BODY_CHECKS = [*CHECKS, negative_data_rejection]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-data")


@pytest.fixture(scope="module")
def server_url(mongo_url, data_dir):
    """server.py on a free port, on its own database of the session's store, engine off."""
    port = free_port()
    db_name = f"test_fuzz_{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "JOBDECK_TOKENS": f"operator:{OPERATOR_TOKEN}"}
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port), "--mongo-url", mongo_url,
         "--db-name", db_name, "--data-dir", str(data_dir), "--engine", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        try:
            probe = urllib.request.Request(f"{url}/health", headers=OPERATOR_HEADERS)
            with urllib.request.urlopen(probe, timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail((data_dir / "server.log").read_text())
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(STARTUP_LIMIT)
    log.close()
    MongoClient(mongo_url).drop_database(db_name)


schema = schemathesis.openapi.from_dict(document("http://127.0.0.1"))
schema.config.generation.update(max_examples=FUZZ_EXAMPLES, deterministic=True, database="none",
                                with_security_parameters=False)
# Without credentials every answer but three is the same 401: random requests show that, and the
# coverage phase's thousands of boundary cases (generated while collecting) would add nothing.
anonymous = schemathesis.openapi.from_dict(document("http://127.0.0.1"))
anonymous.config.generation.update(deterministic=True, database="none",
                                   with_security_parameters=False)
anonymous.config.phases.update(phases=["examples", "fuzzing"])


def confine_workspaces(case, data_dir: Path) -> None:
    """A generated absolute base_path would make a folder anywhere on this machine: it goes
    under the server's data_dir instead."""
    body = case.body if case.path == "/workspaces/" else None
    if isinstance(body, dict) and isinstance(body.get("base_path"), str) \
            and os.path.isabs(body["base_path"]):
        body["base_path"] = str(data_dir / "fuzz-workspaces")


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server_url, data_dir):
    confine_workspaces(case, data_dir)
    json_body = case.operation.method.upper() in ("POST", "PATCH") and case.path != "/files/"
    case.call_and_validate(base_url=server_url, headers=OPERATOR_HEADERS,
                           checks=BODY_CHECKS if json_body else CHECKS, timeout=30)


@anonymous.parametrize()
@settings(max_examples=3, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_without_credentials_answers_are_documented_too(case, server_url, data_dir):
    """401 everywhere but /health, /metrics and /openapi.json, as the document says."""
    confine_workspaces(case, data_dir)
    case.call_and_validate(base_url=server_url, checks=CHECKS, timeout=30)
