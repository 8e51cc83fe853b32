"""The Slurm tests' app and engines: executor slurm on the `slurm_cluster` fixture's cluster."""

import pytest


@pytest.fixture
def app_settings(data_dir):
    return {"data_dir": str(data_dir), "executor": "slurm"}


@pytest.fixture
def engine_options(slurm_engine_options):
    """start_engine's engines (tests/fixtures.py) use executor=slurm on the test cluster."""
    return slurm_engine_options
