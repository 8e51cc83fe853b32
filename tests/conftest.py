"""The tests' fixtures live in tests/fixtures.py, registered here as a plugin; its docstring says
where a new fixture goes."""

pytest_plugins = ["tests.fixtures"]
