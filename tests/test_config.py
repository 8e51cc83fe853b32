"""Settings precedence: flag > JOBDECK_* environment > settings file > built-in default."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from core.credentials import hash_token
from core.settings import (
    DEFAULTS,
    FIELDS,
    README,
    Settings,
    SettingsError,
    flag_name,
    load_settings,
    readme_with_table,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("port: 8100\ndata_dir: /from/file\ndb_name: filedb\n")
    return path


def test_defaults_when_nothing_is_set(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    settings = load_settings(["--settings", str(empty)], {})
    assert settings == DEFAULTS
    assert (settings.port, settings.data_dir, settings.mongo_url) == (8000, "./data",
                                                                               None)


def test_file_overrides_defaults(settings_file):
    settings = load_settings(["--settings", str(settings_file)], {})
    assert (settings.port, settings.data_dir, settings.db_name) == (
        8100, "/from/file", "filedb")
    assert settings.host == DEFAULTS.host


def test_environment_overrides_file(settings_file):
    env = {"JOBDECK_PORT": "8200", "JOBDECK_MONGO_URL": "mongodb://env:27017/"}
    settings = load_settings(["--settings", str(settings_file)], env)
    assert settings.port == 8200  # coerced to int
    assert settings.mongo_url == "mongodb://env:27017/"
    assert settings.data_dir == "/from/file"


def test_flags_override_environment(settings_file):
    env = {"JOBDECK_PORT": "8200", "JOBDECK_DATA_DIR": "/from/env"}
    settings = load_settings(["--settings", str(settings_file), "--port", "8300",
                              "--data-dir", "/from/flag", "--mongo-url", "mongodb://flag/"],
                             env)
    assert (settings.port, settings.data_dir, settings.mongo_url) == (
        8300, "/from/flag", "mongodb://flag/")
    assert settings.db_name == "filedb"


def test_settings_file_can_come_from_the_flag_only(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(["--settings", str(missing)], {})


@pytest.mark.parametrize("text, message", [
    ("prot: 8000\n", "unknown settings prot"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("port: eighty\n", "port must be int"),
])
def test_bad_files_are_rejected_with_the_reason(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(["--settings", str(path)], {})


def test_bad_environment_and_flag_values(settings_file):
    with pytest.raises(SettingsError, match="port must be int, not 'x'"):
        load_settings(["--settings", str(settings_file)], {"JOBDECK_PORT": "x"})
    with pytest.raises(SettingsError, match="port must be int"):
        load_settings(["--settings", str(settings_file), "--port", "1.5"], {})
    with pytest.raises(SettingsError, match="port must be from 0 to 65535"):
        load_settings(["--settings", str(settings_file), "--port", "70000"], {})


# -- the one declaration (core/settings.py) ---------------------------------------------------------

def test_readme_settings_table_matches_the_declaration():
    """README.md's table is made from Settings: run `python -m core.settings --readme`."""
    text = README.read_text()
    assert readme_with_table(text) == text, (
        "README.md's settings table differs from core/settings.py; run "
        "`python -m core.settings --readme`")
    for key in FIELDS:
        assert f"| `{key}` | `{flag_name(key)}`" in text


def test_settings_yaml_is_an_example_that_sets_nothing():
    """The shipped settings.yaml only comments: every default lives in core/settings.py."""
    assert yaml.safe_load((ROOT / "settings.yaml").read_text()) is None
    assert load_settings(["--settings", str(ROOT / "settings.yaml")], {}) == DEFAULTS


# A value other than the default for the settings "7" does not fit.
OTHER_VALUES = {"sandbox": "none", "executor": "slurm"}


def test_every_setting_has_its_flag_and_environment_variable(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    for key, spec in FIELDS.items():
        if key in ("tokens", "users", "trusted_proxies"):
            continue  # hashed at load, or addresses: tests/test_auth*.py
        value = str(not spec.default).lower() if spec.type is bool else \
            OTHER_VALUES.get(key, "7")
        from_env = load_settings(["--settings", str(empty)], {f"JOBDECK_{key.upper()}": value})
        from_flag = load_settings(["--settings", str(empty), f"--{key.replace('_', '-')}",
                                   value], {})
        assert getattr(from_env, key) == getattr(from_flag, key) != getattr(DEFAULTS, key), key


def test_bare_boolean_flags_and_no_auth():
    settings = load_settings(["--demo", "--engine", "--no-auth"], {})
    assert (settings.demo, settings.engine, settings.auth) == (True, True, False)
    assert load_settings(["--demo", "false"], {}).demo is False
    with pytest.raises(SettingsError, match="demo must be boolean, not 'maybe'"):
        load_settings(["--demo", "maybe"], {})


@pytest.mark.parametrize("flag, value, message", [
    ("--engine-cpus", "0", "engine_cpus must be greater than zero, not 0.0"),
    ("--live-stale-after", "-1", "live_stale_after must be greater than zero, not -1.0"),
    ("--max-body-kb", "0", "max_body_kb must be greater than zero, not 0"),
    ("--engine-dead-after", "0", "engine_dead_after must be greater than zero, not 0.0"),
    ("--cancel-grace", "-0.5", "cancel_grace must not be negative, not -0.5"),
    ("--executor", "k8s", "executor must be local_or_slurm, not 'k8s'"),
    ("--slurm-poll-interval", "0", "slurm_poll_interval must be greater than zero, not 0.0"),
    ("--drain-timeout", "-1", "drain_timeout must not be negative, not -1.0"),
    ("--engine-reserve-after", "-2", "engine_reserve_after must not be negative, not -2.0"),
    ("--ws-max-queue", "lots", "ws_max_queue must be int, not 'lots'"),
    ("--cancel-grace", "soon", "cancel_grace must be float, not 'soon'"),
])
def test_validation_messages(flag, value, message):
    with pytest.raises(SettingsError) as bad:
        load_settings([flag, value], {})
    assert str(bad.value) == message


def test_settings_made_in_code_are_coerced_checked_and_hashed():
    """What tests and make_app callers get from Settings(...) and .replace(...)."""
    raw = {"port": "9000", "engine": "off", "tokens": "viewer:a-long-enough-token"}
    settings = Settings(**raw)  # as a flag or JOBDECK_* variable gives them
    assert (settings.port, settings.engine) == (9000, False)
    assert settings.tokens == (f"viewer:sha256:{hash_token('a-long-enough-token')}",)
    assert settings.replace(port=0).tokens == settings.tokens  # hashing twice changes nothing
    assert "sha256" not in repr(settings)
    with pytest.raises(SettingsError, match="port must be from 0 to 65535, not -1"):
        settings.replace(port=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1
