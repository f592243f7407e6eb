"""Commands that find catalog items by name: ``segue search`` and ``segue similar``.

People know names, not ids: these are how to get from one to the other (and on to a station
or an onboarding pick, which take names too).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import state


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(similar)


def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="A name as you would type it; typos are fine.")],
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only this kind (track, artist, album, podcast_episode, ...); repeat."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many items.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
) -> None:
    """Catalog items whose names match TEXT: id, kind, title, artist (or show) and score."""
    from segue.jobs.catalog import CatalogNames, parse_kinds

    kinds = parse_kinds(kind or ())  # a typo fails before the catalog is read
    names = CatalogNames.from_store(state(ctx).store())
    hits = names.search(text, kinds or None, limit)
    if as_json:
        from segue.api.schemas import SearchHit

        console.print_json(data=[SearchHit.model_validate(h).model_dump() for h in hits])
        return
    if not hits:
        console.print(
            f"nothing in the catalog is named like {escape(repr(text))}"
            + (" (the store has no items: import a catalog first)" if not names.kinds else "")
        )
        return
    table = Table("#", "id", "kind", "title", "artist / show", "score", title=f"search: {text}")
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), h.item_id, h.kind, h.title, h.by or "—", f"{h.score:.2f}")
    console.print(table)


def similar(
    ctx: typer.Context,
    item: Annotated[str, typer.Argument(help='An item id or name ("Title — Artist").')],
    model: Annotated[
        str, typer.Option(help="Which trained model answers (run `segue train` first).")
    ] = "itemknn",
    k: Annotated[int, typer.Option(min=1, max=200, help="How many items.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
) -> None:
    """Items the trained model places nearest ITEM, each with why."""
    from segue.cli.product_commands import _trained
    from segue.jobs.catalog import similar_items

    answer = similar_items(state(ctx).store(), _trained(ctx, model), item, k)
    if as_json:
        from segue.api.schemas import SimilarResponse

        console.print_json(SimilarResponse.model_validate(answer).model_dump_json())
        return
    if not answer.items:
        console.print(
            f"{escape(answer.item.label)}: the {answer.model} model has no similar items for it "
            "(nobody else played it in training); try another model with --model"
        )
        return
    table = Table(
        "#", "id", "title", "artist / show", "score", "why",
        title=f"like {answer.item.label} ({answer.item.item_id}) · {answer.model}",
    )  # fmt: skip
    for rank, s in enumerate(answer.items, 1):
        table.add_row(
            str(rank), s.item_id, s.title, s.by or "—", f"{s.score:.3f}", "; ".join(s.reasons)
        )
    console.print(table)
