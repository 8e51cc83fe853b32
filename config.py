"""Settings: built-in defaults < settings.yaml < JOBDECK_* environment variables < flags."""

import argparse
import os
from pathlib import Path

import yaml

DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8000,
    "data_dir": "./data",
    "mongo_url": None,
    "db_name": "jobdeck",
    "store_timeout_ms": 5000,
}
TYPES = {"port": int, "store_timeout_ms": int}


class SettingsError(ValueError):
    pass


def _coerce(key: str, value):
    if value is None or key not in TYPES:
        return value
    try:
        return TYPES[key](value)
    except (TypeError, ValueError):
        raise SettingsError(f"{key} must be {TYPES[key].__name__}, not {value!r}") from None


def parse_flags(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Jobdeck: live job service and dashboard")
    parser.add_argument("--settings", default="settings.yaml", help="settings file (YAML)")
    for key in DEFAULTS:
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None)
    return parser.parse_args(argv)


def load_settings(argv=None, environ=None) -> dict:
    """Merge the four layers; unknown keys in the file are an error so typos do not pass."""
    flags = parse_flags(argv)
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    path = Path(flags.settings)
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a mapping of settings")
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}")
        settings.update(loaded)
    elif flags.settings != "settings.yaml":
        raise SettingsError(f"settings file {path} does not exist")
    for key in DEFAULTS:
        env = environ.get(f"JOBDECK_{key.upper()}")
        if env is not None:
            settings[key] = env
        value = getattr(flags, key)
        if value is not None:
            settings[key] = value
    return {key: _coerce(key, value) for key, value in settings.items()}
