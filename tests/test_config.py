"""Settings: defaults need no servers; the config file and SEGUE_* variables override."""

from pathlib import Path

import pytest

from segue.config import load_settings
from segue.errors import ConfigError


def test_defaults_are_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.database_url == ""
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("segue-data/segue.sqlite")


def test_environment_beats_config_file(tmp_path: Path) -> None:
    (tmp_path / "segue.toml").write_text('data_dir = "from-file"\nredis_url = "redis://x"\n')
    settings = load_settings(environ={"SEGUE_DATA_DIR": "from-env"}, cwd=tmp_path)
    assert settings.data_dir == Path("from-env")
    assert settings.redis_url == "redis://x"


def test_database_url_overrides_sqlite(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@h/db"
    settings = load_settings(environ={"SEGUE_DATABASE_URL": url}, cwd=tmp_path)
    assert settings.resolved_database_url == url


def test_unknown_key_in_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "segue.toml").write_text('databse_url = "x"\n')
    with pytest.raises(ConfigError, match="databse_url"):
        load_settings(environ={}, cwd=tmp_path)


def test_broken_toml_and_missing_config_file(tmp_path: Path) -> None:
    (tmp_path / "segue.toml").write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(environ={"SEGUE_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


def test_cli_overrides_ignore_empty_values(tmp_path: Path) -> None:
    settings = load_settings(environ={"SEGUE_DATA_DIR": "env"}, cwd=tmp_path)
    assert settings.with_overrides(data_dir=None, database_url="").data_dir == Path("env")
    assert settings.with_overrides(data_dir="cli").data_dir == Path("cli")
