"""Settings: built-in defaults < settings.yaml < JOBDECK_* environment variables < flags."""

import argparse
import os
from pathlib import Path

import yaml

from core.credentials import token_entry, user_entry
from handlers.base import LIMIT_DEFAULTS

DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8000,
    "data_dir": "./data",
    "mongo_url": None,
    "db_name": "jobdeck",
    "store_timeout_ms": 5000,
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    "ws_max_queue": 256,
    "ws_max_message_size": 65536,
    "live_stale_after": 2.0,
}
TYPES = {"port": int, "store_timeout_ms": int}
TYPES.update({"ws_ping_interval": float, "ws_ping_timeout": float, "ws_max_queue": int,
              "ws_max_message_size": int, "live_stale_after": float})


def boolean(value) -> bool:
    """true/false, yes/no, on/off, 1/0: YAML gives booleans, flags and the environment text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


# The job engine (engine/): capacity defaults to this machine's CPUs and memory (MiB).
DEFAULTS.update({"engine": True, "engine_cpus": None, "engine_mem": None, "cancel_grace": 10.0,
                 "engine_poll_interval": 0.5, "engine_reserve_after": 60.0, "demo": False})
TYPES.update({"engine": boolean, "engine_cpus": float, "engine_mem": float,
              "cancel_grace": float, "engine_poll_interval": float,
              "engine_reserve_after": float, "demo": boolean})
# Flags that may be given bare (`--demo` means `--demo true`).
BOOLEAN_FLAGS = ("engine", "demo")


def entries(value) -> list[str]:
    """A list from YAML, or one comma-separated string from a flag or the environment."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def token_entries(value) -> list[str]:
    """`role:token` entries hashed at once: only `role:sha256:<hex>` stays in memory."""
    return [token_entry(item) for item in entries(value)]


def user_entries(value) -> list[str]:
    return [user_entry(item) for item in entries(value)]


# Authentication (handlers/auth.py): on by default; with no tokens or users configured the server
# makes an operator token at first start. cookie_secret null: one made and kept in data_dir.
DEFAULTS.update({"auth": True, "tokens": [], "users": [], "cookie_secret": None})
TYPES.update({"auth": boolean, "tokens": token_entries, "users": user_entries})
BOOLEAN_FLAGS += ("auth",)
POSITIVE = ("engine_cpus", "engine_mem", "engine_poll_interval", "live_stale_after")
# Seconds an engine may go without a heartbeat before others recover its RUNNING executions.
DEFAULTS.update({"engine_dead_after": 30.0})
TYPES.update({"engine_dead_after": float})
POSITIVE += ("engine_dead_after",)
# Seconds a server told to stop (SIGTERM) waits for running executions to end before it fails
# them (scheduler-lost); 0 fails them at once.
DEFAULTS.update({"drain_timeout": 0.0})
TYPES.update({"drain_timeout": float})

# Request limits (handlers/base.py LimitedRequest): API JSON bodies (KiB), uploads to /files/
# (MiB), query parameter values per request, request line plus headers (KiB).
DEFAULTS.update(LIMIT_DEFAULTS)
TYPES.update(dict.fromkeys(LIMIT_DEFAULTS, int))
POSITIVE += tuple(LIMIT_DEFAULTS)


class SettingsError(ValueError):
    pass


def _coerce(key: str, value):
    if value is None or key not in TYPES:
        return value
    try:
        value = TYPES[key](value)
    except (TypeError, ValueError) as exc:
        if key in ("tokens", "users"):  # the message names the problem, never the secret
            raise SettingsError(f"{key}: {exc}") from None
        raise SettingsError(f"{key} must be {TYPES[key].__name__}, not {value!r}") from None
    if key == "port" and not 0 <= value <= 65535:
        raise SettingsError(f"port must be from 0 to 65535, not {value}")
    if key in POSITIVE and value <= 0:
        raise SettingsError(f"{key} must be greater than zero, not {value}")
    if key in ("cancel_grace", "engine_reserve_after", "drain_timeout") and value < 0:
        raise SettingsError(f"{key} must not be negative, not {value}")
    return value


def parse_flags(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Jobdeck: live job service and dashboard")
    parser.add_argument("--settings", default="settings.yaml", help="settings file (YAML)")
    for key in DEFAULTS:
        bare = {"nargs": "?", "const": "true"} if key in BOOLEAN_FLAGS else {}
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, **bare)
    parser.add_argument("--no-auth", dest="auth", action="store_const", const="false",
                        help="serve without authentication (local use only)")
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
