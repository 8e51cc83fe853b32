"""Page tests seed through tests/seeding.py; their jobs carry the `value` input "x"."""

import pytest

from tests.seeding import Seeder


@pytest.fixture
def seed(api, store):
    return Seeder(api, store, value="x")
