"""``segue users export|delete``: a listener's data on request (see :mod:`segue.jobs.privacy`).

The online state these commands reach is Redis when ``SEGUE_REDIS_URL`` is set. Without it the
online state lives inside the serving process, out of a command's reach: ``delete`` then says
so, and ``DELETE /v1/users/{id}`` on the running service erases that part too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from segue.cli.console import console
from segue.cli.context import State, state
from segue.online.state import OnlineState

users_app = typer.Typer(
    help="A listener's data on request: export it, or erase it.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def _online(st: State) -> OnlineState | None:
    if not st.settings.redis_url:
        return None
    from segue.online.factory import open_state

    return open_state(st.settings.redis_url, st.settings.redis_prefix)


@users_app.command("export")
def export(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The listener's id.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here (default: standard output).")
    ] = None,
) -> None:
    """Everything held about a listener, as one JSON document."""
    from segue.jobs.privacy import export_chunks

    st = state(ctx)
    online = _online(st)
    try:
        chunks = export_chunks(st.store(), online, user_id)
        if out is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        with part.open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(part, out)
    finally:
        if online is not None:
            online.close()
    console.print(f"exported listener {user_id!r} to {out}")


@users_app.command("delete")
def delete(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The listener's id.")],
) -> None:
    """Erase a listener: store rows, online state, stream messages; a hash of the id is logged."""
    from segue.jobs.privacy import delete_user

    st = state(ctx)
    online = _online(st)
    try:
        report = delete_user(st.store(), online, user_id)
    finally:
        if online is not None:
            online.close()
    parts = ", ".join(f"{n:,} {table}" for table, n in report.removed.items() if n)
    if report.previously_erased and not report.rows:
        console.print(f"listener {user_id!r} was already erased; nothing was left in the store")
    else:
        console.print(f"erased listener {user_id!r} from the store: {parts or 'no rows'}")
    if online is None:
        console.print(
            "online state: in-process (no SEGUE_REDIS_URL), held by the serving process; "
            "it forgets the listener on DELETE /v1/users/{id} or a restart"
        )
    else:
        console.print(f"online state: {report.online:,} keys and stream messages removed")
