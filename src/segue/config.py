"""Settings shared by every face of segue.

Read from ``SEGUE_*`` environment variables, then from an optional TOML config file
(``SEGUE_CONFIG`` or ``segue.toml`` in the working directory); environment wins. Defaults need
no servers: SQLite in the data directory and in-process online state.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from segue.errors import ConfigError

_KEYS = {
    "data_dir": "SEGUE_DATA_DIR",
    "database_url": "SEGUE_DATABASE_URL",
    "redis_url": "SEGUE_REDIS_URL",
    "redis_prefix": "SEGUE_REDIS_PREFIX",
    "api_keys": "SEGUE_API_KEYS",
}


@dataclass(frozen=True)
class Settings:
    """Where segue keeps its state. ``database_url`` empty means SQLite inside ``data_dir``."""

    data_dir: Path = field(default_factory=lambda: Path("segue-data"))
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "segue:"
    #: ``KEY=scope+scope,KEY2=scope``; scopes read, ingest, admin. Empty: the API is open.
    api_keys: str = ""

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL of the store: the configured one, or SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'segue.sqlite').resolve()}"

    def with_overrides(self, **values: object) -> Settings:
        """A copy with the given non-empty values replaced (CLI options override the env)."""
        clean = {k: v for k, v in values.items() if v not in (None, "")}
        if "data_dir" in clean:
            clean["data_dir"] = Path(str(clean["data_dir"]))
        return replace(self, **clean)  # type: ignore[arg-type]


def load_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Settings from the config file (if any) overlaid with ``SEGUE_*`` variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    config_path = env.get("SEGUE_CONFIG")
    candidate = Path(config_path) if config_path else (cwd or Path.cwd()) / "segue.toml"
    if config_path and not candidate.is_file():
        raise ConfigError(f"SEGUE_CONFIG points to {candidate}, which is not a file.")
    if candidate.is_file():
        try:
            parsed = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{candidate} is not valid TOML: {exc}") from exc
        unknown = set(parsed) - set(_KEYS)
        if unknown:
            raise ConfigError(
                f"{candidate}: unknown setting(s) {sorted(unknown)}; known: {sorted(_KEYS)}"
            )
        values.update({k: str(v) for k, v in parsed.items()})
    for key, var in _KEYS.items():
        if env.get(var):
            values[key] = env[var]
    settings = Settings()
    return settings.with_overrides(**values)
