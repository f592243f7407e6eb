"""The ``segue`` command. Commands parse options, call a job, and print; nothing more.

User mistakes surface as :class:`segue.errors.SegueError` and are printed as one red line
with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from segue.cli import (
    catalog_commands,
    data_commands,
    experiment_commands,
    lifecycle_commands,
    metrics_commands,
    model_commands,
    nba_commands,
    nlu_commands,
    product_commands,
    serve_commands,
    simulate_commands,
    sing_commands,
    stream_commands,
    user_commands,
)
from segue.cli.console import err_console
from segue.cli.context import State
from segue.config import load_settings
from segue.data.model import set_max_future_s
from segue.errors import SegueError
from segue.extras import install_hint, missing_extra

app = typer.Typer(
    name="segue",
    help="segue: a self-hostable music recommendation platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_commands.import_app, name="import")
data_commands.register(app)
model_commands.register(app)
nlu_commands.register(app)
stream_commands.register(app)
product_commands.register(app)
catalog_commands.register(app)
serve_commands.register(app)
lifecycle_commands.register(app)
nba_commands.register(app)
user_commands.register(app)
simulate_commands.register(app)
metrics_commands.register(app)
experiment_commands.register(app)
sing_commands.register(app)


@app.callback()
def _settings(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where segue keeps its files (env SEGUE_DATA_DIR, default ./segue-data)"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="Store URL, e.g. postgresql://localhost/segue (env SEGUE_DATABASE_URL)"),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(help="Redis for the stream and online state (env SEGUE_REDIS_URL)"),
    ] = None,
    redis_prefix: Annotated[
        str | None,
        typer.Option(help="Prefix of segue's Redis keys (env SEGUE_REDIS_PREFIX, default segue:)"),
    ] = None,
) -> None:
    """Settings come from SEGUE_* variables or segue.toml; these options override both.

    API keys have no option (a command line is visible to every user of the machine): set
    SEGUE_API_KEYS or api_keys in segue.toml.
    """
    overrides = {
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }
    ctx.obj = State(load_settings(overrides=overrides))
    set_max_future_s(ctx.obj.settings.max_future_s)  # the input rules' one setting


def main() -> None:
    """Entry point: run the app, turning user errors into one clear line.

    Usage errors (unknown option, missing argument) are reported by Typer itself with exit
    status 2, the same status a :class:`SegueError` gets.
    """
    try:
        app()
    except SegueError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        hint = install_hint(extra, _command_path(sys.argv))
        err_console.print(f"[bold red]error:[/] {escape(hint)}", soft_wrap=True)
        sys.exit(2)


def _command_path(argv: list[str]) -> str:
    """``segue nlu train`` for ``segue --data-dir x nlu train --snips y``: the words of argv
    that name a command or group, in order (options and their values are skipped)."""
    words = ["segue"]
    current = typer.main.get_command(app)
    for token in argv[1:]:
        commands = getattr(current, "commands", None)
        if commands is None:
            break
        if token in commands:
            words.append(token)
            current = commands[token]
    return " ".join(words)


if __name__ == "__main__":
    main()
