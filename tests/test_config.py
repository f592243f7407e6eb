"""Settings: one frozen object; command line > SEGUE_* environment > segue.toml > defaults.

Every source is real: environments are plain mappings (or the process environment set for a
CLI run), config files are written to a temporary directory, the CLI runs through Typer.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import typer.main
from pydantic import ValidationError
from typer.testing import CliRunner

from segue.cli.main import app
from segue.config import DELIVERY_ENV, DeliverySettings, Settings, load_settings
from segue.errors import ConfigError
from segue.store import open_store
from segue.store.outbox import OutboxMessage

#: Unset for every CLI run, so that the tests do not depend on the caller's environment.
_CLEAN_ENV: dict[str, str | None] = {
    var: None
    for var in (
        "SEGUE_CONFIG",
        "SEGUE_DATA_DIR",
        "SEGUE_DATABASE_URL",
        "SEGUE_REDIS_URL",
        "SEGUE_REDIS_PREFIX",
        "SEGUE_API_KEYS",
        *DELIVERY_ENV.values(),
    )
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and the plain value ---------------------------------------------------------
def test_defaults_are_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings == Settings()
    assert settings.database_url == ""
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("segue-data/segue.sqlite")
    assert settings.delivery == DeliverySettings()
    assert (settings.delivery.smtp_host, settings.delivery.smtp_port) == ("localhost", 25)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ValidationError, match="frozen"):
        settings.data_dir = Path("elsewhere")  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.delivery.smtp_port = 2525  # type: ignore[misc]
    hash(settings)  # frozen all the way down: usable as a key


def test_constructing_settings_reads_neither_environment_nor_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "segue.toml", 'redis_url = "redis://from-file"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGUE_DATA_DIR", "from-env")
    assert Settings(database_url="x") == Settings(database_url="x", data_dir=Path("segue-data"))
    assert Settings().redis_url == ""
    loaded = load_settings()  # the process environment and ./segue.toml
    assert loaded.data_dir == Path("from-env")
    assert loaded.redis_url == "redis://from-file"


def test_database_url_overrides_sqlite(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@h/db"
    settings = load_settings(environ={"SEGUE_DATABASE_URL": url}, cwd=tmp_path)
    assert settings.resolved_database_url == url


# -- precedence ---------------------------------------------------------------------------
def test_command_line_beats_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    _write(
        tmp_path / "segue.toml",
        'data_dir = "file"\nredis_url = "redis://file"\nredis_prefix = "file:"\n'
        'api_keys = "k=read"\n',
    )
    environ = {"SEGUE_DATA_DIR": "env", "SEGUE_REDIS_URL": "redis://env"}
    settings = load_settings(environ=environ, cwd=tmp_path, overrides={"data_dir": "cli"})
    assert settings.data_dir == Path("cli")  # all three give it: the command line wins
    assert settings.redis_url == "redis://env"  # environment and file: the environment wins
    assert settings.redis_prefix == "file:"  # only the file
    assert settings.api_keys == "k=read"
    assert settings.database_url == ""  # nobody: the default

    without_cli = load_settings(environ=environ, cwd=tmp_path)
    assert without_cli.data_dir == Path("env")
    without_env = load_settings(environ={}, cwd=tmp_path)
    assert (without_env.data_dir, without_env.redis_url) == (Path("file"), "redis://file")


def test_empty_values_count_as_not_given(tmp_path: Path) -> None:
    _write(tmp_path / "segue.toml", 'data_dir = "file"\n')
    settings = load_settings(
        environ={"SEGUE_DATA_DIR": ""}, cwd=tmp_path, overrides={"data_dir": None}
    )
    assert settings.data_dir == Path("file")
    assert load_settings(environ={}, cwd=tmp_path, overrides={"redis_url": ""}).redis_url == ""


def test_segue_config_names_the_file_and_the_working_directory_one_is_ignored(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "segue.toml", 'redis_prefix = "cwd:"\n')
    other = _write(tmp_path / "other.toml", 'redis_prefix = "other:"\n')
    settings = load_settings(environ={"SEGUE_CONFIG": str(other)}, cwd=tmp_path)
    assert settings.redis_prefix == "other:"


def test_segue_config_pointing_nowhere_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"SEGUE_CONFIG points to .*nope\.toml.*not a file"):
        load_settings(environ={"SEGUE_CONFIG": str(missing)}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="not a file"):  # a directory is no config file
        load_settings(environ={"SEGUE_CONFIG": str(tmp_path)}, cwd=tmp_path)


# -- mistakes: clear messages, no pydantic tracebacks -------------------------------------
def test_unknown_key_in_config_file_names_file_and_key(tmp_path: Path) -> None:
    config = _write(tmp_path / "segue.toml", 'databse_url = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert str(config) in message
    assert "unknown setting 'databse_url'" in message
    assert "database_url" in message  # the known names, to spot the typo


def test_unknown_key_in_delivery_table_names_file_table_and_key(tmp_path: Path) -> None:
    config = _write(tmp_path / "segue.toml", '[delivery]\nsmtp_hots = "mail"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{config}: unknown setting 'smtp_hots' in [delivery]")
    assert "smtp_host" in message


def test_bad_value_from_environment_names_variable_and_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"SEGUE_SMTP_PORT": "twenty-five"}, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(
        "setting delivery.smtp_port from environment variable SEGUE_SMTP_PORT: "
        "'twenty-five' is not valid"
    )
    assert "integer" in message
    assert "validation error" not in message.lower()  # pydantic's own wording stays out
    assert "errors.pydantic.dev" not in message


def test_bad_value_from_file_names_file_and_key(tmp_path: Path) -> None:
    config = _write(tmp_path / "segue.toml", '[delivery]\nsmtp_port = "x"\nbatch = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert f"setting delivery.smtp_port from {config} ([delivery] smtp_port): 'x'" in message
    assert f"setting delivery.batch from {config} ([delivery] batch): 0 is not valid" in message


def test_bad_value_names_the_source_it_came_from_not_a_lower_one(tmp_path: Path) -> None:
    _write(tmp_path / "segue.toml", "[delivery]\nsmtp_port = 2525\n")
    with pytest.raises(ConfigError, match="environment variable SEGUE_SMTP_PORT: 'x'"):
        load_settings(environ={"SEGUE_SMTP_PORT": "x"}, cwd=tmp_path)
    # the file's bad value is hidden by a good one from the environment: no error
    _write(tmp_path / "segue.toml", '[delivery]\nsmtp_port = "x"\n')
    settings = load_settings(environ={"SEGUE_SMTP_PORT": "587"}, cwd=tmp_path)
    assert settings.delivery.smtp_port == 587


def test_secrets_are_not_echoed_in_errors(tmp_path: Path) -> None:
    _write(tmp_path / "segue.toml", '[delivery]\nsmtp_password = ["hunter2"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    assert "delivery.smtp_password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_broken_toml(tmp_path: Path) -> None:
    config = _write(tmp_path / "segue.toml", "data_dir = \n")
    with pytest.raises(ConfigError, match=f"{config} is not valid TOML"):
        load_settings(environ={}, cwd=tmp_path)


def test_with_overrides_replaces_given_values_and_validates(tmp_path: Path) -> None:
    settings = load_settings(environ={"SEGUE_DATA_DIR": "env"}, cwd=tmp_path)
    assert settings.with_overrides(data_dir=None, database_url="").data_dir == Path("env")
    assert settings.with_overrides(data_dir="cli").data_dir == Path("cli")
    changed = settings.with_overrides(delivery={"smtp_port": 2525, "push_url": None})
    assert changed.delivery.smtp_port == 2525
    assert changed.delivery.push_url == settings.delivery.push_url
    assert settings.delivery.smtp_port == 25  # the original is untouched
    with pytest.raises(ConfigError, match="option --smtp-port on the command line: 0"):
        settings.with_overrides(delivery={"smtp_port": 0})


# -- the delivery settings ----------------------------------------------------------------
def test_delivery_settings_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "SEGUE_SMTP_HOST": "mail.example",
        "SEGUE_SMTP_PORT": "587",
        "SEGUE_SMTP_USER": "segue",
        "SEGUE_SMTP_PASSWORD": "secret",
        "SEGUE_SMTP_STARTTLS": "true",
        "SEGUE_EMAIL_FROM": "Segue <hi@example.org>",
        "SEGUE_PUSH_URL": "https://push.example/send",
        "SEGUE_PUSH_TOKEN": "tok",
        "SEGUE_DELIVERY_BATCH": "25",
        "SEGUE_DELIVERY_MAX_ATTEMPTS": "3",
    }
    d = load_settings(environ=environ, cwd=tmp_path).delivery
    assert (d.smtp_host, d.smtp_port, d.smtp_user, d.smtp_password) == (
        "mail.example",
        587,
        "segue",
        "secret",
    )
    assert d.smtp_starttls is True
    assert d.email_from == "Segue <hi@example.org>"
    assert (d.push_url, d.push_token) == ("https://push.example/send", "tok")
    assert (d.batch, d.max_attempts, d.timeout_s) == (25, 3, 10.0)
    assert "secret" not in repr(d) and "tok" not in repr(d)


def test_delivery_settings_from_the_file_merge_with_the_environment(tmp_path: Path) -> None:
    _write(
        tmp_path / "segue.toml",
        'data_dir = "d"\n\n[delivery]\nsmtp_host = "file-mail"\nsmtp_port = 2525\n'
        'smtp_starttls = true\npush_url = "http://file/push"\nlease_s = 30\n',
    )
    from_file = load_settings(environ={}, cwd=tmp_path).delivery
    assert (from_file.smtp_host, from_file.smtp_port, from_file.smtp_starttls) == (
        "file-mail",
        2525,
        True,
    )
    assert (from_file.push_url, from_file.lease_s) == ("http://file/push", 30.0)

    both = load_settings(
        environ={"SEGUE_SMTP_PORT": "587", "SEGUE_SMTP_STARTTLS": "0"},
        cwd=tmp_path,
        overrides={"delivery": {"push_url": "http://cli/push"}},
    ).delivery
    assert (both.smtp_host, both.smtp_port, both.smtp_starttls) == ("file-mail", 587, False)
    assert both.push_url == "http://cli/push"
    assert both.lease_s == 30.0


# -- the command line ---------------------------------------------------------------------
def test_global_option_reaches_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "segue.toml", 'data_dir = "from-file"\n')
    env = {**_CLEAN_ENV, "SEGUE_DATA_DIR": str(tmp_path / "from-env")}
    runner = CliRunner()
    for given in ("from-cli", "from-env"):  # `stats` reads a data dir, it does not make one
        (tmp_path / given).mkdir()

    result = runner.invoke(app, ["--data-dir", str(tmp_path / "from-cli"), "stats"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-cli" / "segue.sqlite").is_file()
    assert not (tmp_path / "from-env" / "segue.sqlite").exists()
    assert not (tmp_path / "from-file").exists()

    result = runner.invoke(app, ["stats"], env=env)  # without the option: the environment
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "segue.sqlite").is_file()
    assert not (tmp_path / "from-file").exists()


def test_database_url_option_beats_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "segue.toml", f'database_url = "sqlite:///{tmp_path / "file.sqlite"}"\n')
    env = {**_CLEAN_ENV, "SEGUE_DATABASE_URL": f"sqlite:///{tmp_path / 'env.sqlite'}"}
    cli_url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    result = CliRunner().invoke(app, ["--database-url", cli_url, "stats"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.sqlite").is_file()
    assert not (tmp_path / "env.sqlite").exists() and not (tmp_path / "file.sqlite").exists()


def test_every_global_option_lands_in_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real option parsing and the real callback; the state a command would read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGUE_REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("SEGUE_REDIS_PREFIX", "env:")
    group = typer.main.get_command(app)
    args = ["--data-dir", "d", "--database-url", "sqlite:///x.sqlite", "--redis-url"]
    args += ["redis://cli:6379/1", "--redis-prefix", "cli:", "stats"]
    ctx = group.make_context("segue", args)
    with ctx:
        ctx.invoke(group.callback, **ctx.params)
    settings = ctx.obj.settings
    assert settings.data_dir == Path("d")
    assert settings.database_url == "sqlite:///x.sqlite"
    assert (settings.redis_url, settings.redis_prefix) == ("redis://cli:6379/1", "cli:")
    # and no option: the environment
    ctx = group.make_context("segue", ["stats"])
    with ctx:
        ctx.invoke(group.callback, **ctx.params)
    assert (ctx.obj.settings.redis_url, ctx.obj.settings.redis_prefix) == (
        "redis://env:6379/0",
        "env:",
    )


def test_config_mistake_is_one_line_from_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "segue.toml", 'databse_url = "x"\n')
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "d"), "stats"], env=_CLEAN_ENV)
    assert isinstance(result.exception, ConfigError)
    assert "unknown setting 'databse_url'" in str(result.exception)


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_nba_send_takes_its_settings_from_file_environment_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data dir from the file; the push gateway from the option, not the environment's."""
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = open_store(f"sqlite:///{data_dir / 'segue.sqlite'}")
    payload = {"to": "usr-1", "title": "t", "body": "b", "deep_link": "segue://x"}
    store.outbox_add(
        [
            OutboxMessage(f"m-{n}", "c", "usr-1", "push", "play_track", "trk-1", payload, 0, 0)
            for n in range(3)
        ]
    )
    store.close()
    _write(tmp_path / "segue.toml", f'data_dir = "{data_dir}"\n\n[delivery]\nbatch = 2\n')
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    _Gateway.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**_CLEAN_ENV, "SEGUE_PUSH_URL": "http://127.0.0.1:9/dead"}
        live = f"http://127.0.0.1:{server.server_address[1]}/push"
        result = CliRunner().invoke(app, ["nba", "send", "--push-url", live], env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "sent 3" in result.output
    assert sorted(m["message_id"] for m in _Gateway.received) == ["m-0", "m-1", "m-2"]

    bad = CliRunner().invoke(app, ["nba", "send", "--smtp-port", "0"], env=_CLEAN_ENV)
    assert isinstance(bad.exception, ConfigError)
    assert "setting delivery.smtp_port from option --smtp-port on the command line" in str(
        bad.exception
    )
