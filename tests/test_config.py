"""Settings precedence: flag > JOBDECK_* environment > settings file > built-in default."""

import pytest

from config import DEFAULTS, SettingsError, load_settings


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
    assert (settings["port"], settings["data_dir"], settings["mongo_url"]) == (8000, "./data",
                                                                               None)


def test_file_overrides_defaults(settings_file):
    settings = load_settings(["--settings", str(settings_file)], {})
    assert (settings["port"], settings["data_dir"], settings["db_name"]) == (
        8100, "/from/file", "filedb")
    assert settings["host"] == DEFAULTS["host"]


def test_environment_overrides_file(settings_file):
    env = {"JOBDECK_PORT": "8200", "JOBDECK_MONGO_URL": "mongodb://env:27017/"}
    settings = load_settings(["--settings", str(settings_file)], env)
    assert settings["port"] == 8200  # coerced to int
    assert settings["mongo_url"] == "mongodb://env:27017/"
    assert settings["data_dir"] == "/from/file"


def test_flags_override_environment(settings_file):
    env = {"JOBDECK_PORT": "8200", "JOBDECK_DATA_DIR": "/from/env"}
    settings = load_settings(["--settings", str(settings_file), "--port", "8300",
                              "--data-dir", "/from/flag", "--mongo-url", "mongodb://flag/"],
                             env)
    assert (settings["port"], settings["data_dir"], settings["mongo_url"]) == (
        8300, "/from/flag", "mongodb://flag/")
    assert settings["db_name"] == "filedb"


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
