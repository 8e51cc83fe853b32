"""The Slurm tests' app and engines: executor slurm on the `slurm_cluster` fixture's cluster."""

import pytest

from tests.slurm.slurm_helpers import POLL


@pytest.fixture
def app_settings(data_dir):
    return {"data_dir": str(data_dir), "executor": "slurm"}


@pytest.fixture
def engine_options(slurm_cluster, monkeypatch):
    """start_engine's engines (tests/fixtures.py) use executor=slurm on the test cluster; its
    jobs are canceled once those engines are stopped."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    yield {"cancel_grace": 2.0, "poll_interval": 0.05, "executor": "slurm",
           "slurm_poll_interval": POLL}
    slurm_cluster.cancel_all()
