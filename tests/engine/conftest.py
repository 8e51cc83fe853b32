"""Fixtures for the engine tests; helpers live in engine_helpers.py so test modules can import them
under a name no other test folder uses."""

from engine_helpers import app, data_dir, start_engine  # noqa: F401
