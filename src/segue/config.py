"""Settings shared by every face of segue: one immutable object, read by pydantic-settings.

:func:`load_settings` layers four sources, each overriding the ones after it:

1. command-line options (passed in as ``overrides``; the CLI's global options, ``segue nba
   send``'s ``--smtp-host`` / ``--smtp-port`` / ``--push-url``),
2. ``SEGUE_*`` environment variables (empty ones count as unset),
3. a TOML file: ``SEGUE_CONFIG`` if set (it must exist), else ``segue.toml`` in the working
   directory if there is one; delivery settings live in its ``[delivery]`` table,
4. the defaults below, which need no servers: SQLite in the data directory and in-process
   online state.

A key the file does not know, or a value that does not parse, is a :class:`ConfigError` that
names the setting and where the value came from. ``Settings(...)`` called directly reads
neither the environment nor a file: it is the defaults plus its arguments.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from segue.errors import ConfigError

CONFIG_VAR = "SEGUE_CONFIG"
CONFIG_FILE = "segue.toml"


class DeliverySettings(BaseModel):
    """Where next-best-action messages go and how hard to try (``[delivery]`` in the file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_starttls: bool = False
    email_from: str = "segue <noreply@segue.invalid>"
    push_url: str = "http://localhost:8088/push"
    push_token: str = Field(default="", repr=False)
    timeout_s: float = Field(default=10.0, gt=0)
    #: seconds a claimed message stays leased to its sender; heartbeats renew it (nba.delivery)
    lease_s: float = Field(default=15.0, gt=0)
    #: messages one sender claims at a time (what a dead sender leaves to wait out its lease)
    batch: int = Field(default=100, ge=1)
    #: connections a sender sends over at once, each with its own SMTP session
    parallel: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=60.0, ge=0)


#: The environment variable of every delivery setting. The channel settings keep the names
#: they have always had; the tuning knobs carry ``DELIVERY`` so that they read unambiguously.
DELIVERY_ENV = {
    name: f"SEGUE_{name.upper()}"
    if name.startswith(("smtp_", "push_", "email_"))
    else f"SEGUE_DELIVERY_{name.upper()}"
    for name in DeliverySettings.model_fields
}


class Settings(BaseSettings):
    """Where segue keeps its state. ``database_url`` empty means SQLite inside ``data_dir``."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="SEGUE_", env_ignore_empty=True
    )

    data_dir: Path = Path("segue-data")
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "segue:"
    #: ``KEY=scope+scope,KEY2=scope``; scopes read, ingest, admin. Empty: the API is open.
    api_keys: str = ""
    #: Serving (``segue serve``): how long one Redis call may take before the process falls
    #: back to in-process state and direct persisting (s); connecting (s); how often a process
    #: that fell back checks whether Redis answers again (s).
    redis_timeout_s: float = Field(default=0.15, gt=0, le=60)
    redis_connect_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_retry_s: float = Field(default=1.0, gt=0, le=3600)
    #: Serving: PostgreSQL ``statement_timeout`` of the API processes (ms; 0: none), and how
    #: long a SQLite writer waits for the write lock (ms).
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_busy_timeout_ms: int = Field(default=30_000, ge=0)
    #: Events: how many seconds ahead of the clock an event may be dated (the rest of the
    #: input rules are fixed, in ``segue.data.model``); after how many failed attempts a
    #: message goes to the dead letters; how long a message must sit pending with a consumer
    #: before any worker takes it over (s).
    max_future_s: float = Field(default=300.0, ge=0, le=86_400)
    dead_letter_after: int = Field(default=3, ge=1, le=1000)
    #: Serving: the share of recommendation requests whose top slots explore (a uniform
    #: draw, its propensity logged); 0 keeps the bandit stage off unless an experiment's
    #: variant sets ``explore_share``. At most 0.2 (``segue.serving.explore``).
    explore_share: float = Field(default=0.0, ge=0, le=0.2)
    #: Serving: log every served list (the exposure log, through the event stream into the
    #: store); off only to measure what logging costs (``benchmarks/bench_serving.py``).
    exposure_log: bool = True
    #: Serving without Redis: who stores the served lists. ``process`` (default): a child
    #: process of the serving one (its interpreter lock is not the requests'; measured, see
    #: ``segue.serving.exposure_writer``); ``thread``: the serving process's worker thread,
    #: which is also what a store only this process can open (in-memory SQLite) gets.
    exposure_writer: Literal["process", "thread"] = "process"
    reclaim_idle_s: float = Field(default=30.0, ge=0, le=86_400)
    delivery: DeliverySettings = DeliverySettings()

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL of the store: the configured one, or SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'segue.sqlite').resolve()}"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given values replaced; ``None`` and ``""`` leave a setting alone.

        ``delivery`` takes a mapping of delivery settings, merged into the current ones.
        A value that does not parse is a :class:`ConfigError` naming the setting.
        """
        clean = _clean(values)
        merged = self.model_dump()
        if isinstance(clean.get("delivery"), Mapping):
            clean["delivery"] = {**merged["delivery"], **clean["delivery"]}
        merged.update(clean)
        try:
            return Settings(**merged)
        except ValidationError as exc:
            raise _config_error(exc, [("the command line", clean, _option_name)]) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Outside load_settings, Settings(...) is a plain value: defaults plus arguments.
        return (init_settings, *_LOADING.get())


_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
    "segue_settings_sources", default=()
)


class _Environment(EnvSettingsSource):
    """``SEGUE_*`` variables from a given mapping; delivery settings by their flat names."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items() if v != ""}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "delivery":  # not one variable: the flat names of DELIVERY_ENV
            delivery = {
                name: self.env_vars[var.lower()]
                for name, var in DELIVERY_ENV.items()
                if var.lower() in self.env_vars
            }
            return (delivery or None), field_name, False
        return super().get_field_value(field, field_name)

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if field_name == "delivery":
            return value
        return super().prepare_field_value(field_name, field, value, value_is_complex)


def make_data_dir(settings: Settings, sub: str | None = None) -> Path:
    """Create the data directory (or ``sub`` inside it) when missing, or stop with one line.

    A folder that cannot be made (``--data-dir /proc/x``, a read-only disk, a file in the
    way) is a setting to fix, not a bug: without this, the ``mkdir`` traceback ran to 40
    lines.
    """
    folder = settings.data_dir / sub if sub else settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot create {folder} ({reason}): choose a data directory segue may write, "
            "with --data-dir or SEGUE_DATA_DIR"
        ) from None
    return folder


def load_settings(
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings: ``overrides`` (the command line) > environment > TOML file > defaults.

    ``environ`` defaults to ``os.environ`` and ``cwd`` (where ``segue.toml`` is looked for)
    to the working directory. In ``overrides``, ``None`` and ``""`` mean "not given";
    ``delivery`` takes a mapping of delivery settings.
    """
    env = os.environ if environ is None else environ
    toml_path = _config_file(env, cwd or Path.cwd())
    cli = _clean(overrides or {})
    environment = _Environment(env)
    try:
        toml = TomlConfigSettingsSource(Settings, toml_file=toml_path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{toml_path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {toml_path}: {exc}") from exc
    try:
        with _sources(environment, toml):
            return Settings(**cli)
    except ValidationError as exc:
        origins = [
            ("the command line", cli, _option_name),
            ("the environment", environment(), _env_name),
            (str(toml_path), toml.toml_data, _toml_name),
        ]
        raise _config_error(exc, origins) from None


@contextmanager
def _sources(*sources: PydanticBaseSettingsSource) -> Iterator[None]:
    token = _LOADING.set(sources)
    try:
        yield
    finally:
        _LOADING.reset(token)


def _config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    named = env.get(CONFIG_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_VAR} points to {path}, which is not a file.")
        return path
    default = cwd / CONFIG_FILE
    return default if default.is_file() else None


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop "not given" values (``None``, ``""``), at the top level and in ``delivery``."""
    clean = {k: v for k, v in values.items() if v is not None and v != ""}
    if isinstance(clean.get("delivery"), Mapping):
        clean["delivery"] = _clean(clean["delivery"])
        if not clean["delivery"]:
            del clean["delivery"]
    return clean


# -- turning pydantic's errors into one clear line per problem ----------------------------
#: Never echoed back in an error message.
_SECRETS = frozenset({"api_keys", "smtp_password", "push_token"})


def _option_name(loc: tuple[str, ...]) -> str:
    return "--" + loc[-1].replace("_", "-")


def _env_name(loc: tuple[str, ...]) -> str:
    if loc[0] == "delivery" and len(loc) > 1:
        return DELIVERY_ENV.get(loc[1], f"SEGUE_{loc[1].upper()}")
    return f"SEGUE_{loc[0].upper()}"


def _toml_name(loc: tuple[str, ...]) -> str:
    return f"[delivery] {loc[1]}" if loc[0] == "delivery" and len(loc) > 1 else loc[0]


def _given(values: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    current: Any = values
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _config_error(
    exc: ValidationError, origins: list[tuple[str, Mapping[str, Any], Callable[..., str]]]
) -> ConfigError:
    """One line per problem: the setting, the source that gave the value, what is wrong."""
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        source, name = next(
            ((source, naming(loc)) for source, values, naming in origins if _given(values, loc)),
            ("the defaults", ""),
        )
        if error["type"] == "extra_forbidden":
            table = DeliverySettings if loc[:-1] == ("delivery",) else Settings
            within = " in [delivery]" if table is DeliverySettings else ""
            problems.append(
                f"{source}: unknown setting {loc[-1]!r}{within}; "
                f"known: {', '.join(sorted(table.model_fields))}"
            )
            continue
        if source == "the environment":
            where = f"environment variable {name}"
        elif source == "the command line":
            where = f"option {name} on the command line"
        else:
            where = f"{source} ({name})" if name else source
        shown = "the value" if loc[-1] in _SECRETS else repr(error["input"])
        problems.append(
            f"setting {'.'.join(loc)} from {where}: {shown} is not valid ({error['msg']})"
        )
    return ConfigError("; ".join(problems))
