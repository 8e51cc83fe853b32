"""Fixtures for the browser tests; helpers live in browser_helpers.py so test modules can import them
under a name no other test folder uses."""

from browser_helpers import artifacts, seed  # noqa: F401
