"""The main job end to end on embedded defaults: synth → store → train → evaluate → samples."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segue.data.model import Event, EventType
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.evaluate import ModelResult, evaluate_models
from segue.jobs.ingest import SynthReport, load_synthetic_world
from segue.jobs.products import wrapped_html, wrapped_png
from segue.jobs.recommend import Suggestion, recommend_for_user
from segue.models.names import DEFAULT_MODELS
from segue.online.state import InProcessState
from segue.progress import Progress, no_progress
from segue.registry.trained import TrainedModel, train_models
from segue.serving.holder import ServingModel
from segue.serving.live import LiveItem, LiveRequest, ModelTitles, recommend_live
from segue.store import Store


@dataclass(frozen=True)
class DemoResult:
    world: SynthReport
    results: list[ModelResult]
    samples: dict[str, dict[str, list[Suggestion]]]  # user id -> model -> suggestions
    wrapped: dict[str, Path] = field(default_factory=dict)  # "png"/"html" -> file
    live: LiveDemo | None = None
    #: what to try next on this world: (arguments after ``segue``, what it shows)
    next_steps: list[tuple[list[str], str]] = field(default_factory=list)


def run_demo(
    store: Store,
    params: SynthParams,
    model_dir: Path,
    *,
    models: list[str] | None = None,
    k: int = 10,
    sample_users: int = 3,
    progress: Progress = no_progress,
) -> DemoResult:
    """Build and import a world, evaluate every model on one split, train on all, sample."""
    names = models or list(DEFAULT_MODELS)
    world = load_synthetic_world(store, params, progress=progress)
    data = load_interactions(store)
    side = load_side_info(store, data)
    results = evaluate_models(data, names, k=k, seed=params.seed, progress=progress, side=side)
    trained = train_models(data, names, model_dir, progress=progress, side=side)
    active = np.flatnonzero(data.user_counts() >= 5)
    rng = np.random.default_rng(params.seed)
    picked = rng.choice(active, size=min(sample_users, len(active)), replace=False)
    # sample lists from the best model and from item-kNN, whose reasons name a played item
    best = max(results, key=lambda r: r.metrics["ndcg"]).model
    shown = [name for name in dict.fromkeys([best, "itemknn"]) if name in trained]
    samples = {}
    for user_index in sorted(int(u) for u in picked):
        user_id = str(data.users.to_ids(np.array([user_index]))[0])
        samples[user_id] = {
            name: recommend_for_user(store, trained[name], user_id, k=5) for name in shown
        }
    # the Wrapped of the world's most active listener (a full year of listening makes the card
    # worth sharing; a sampled listener may have played a couple of dozen songs)
    wrapped: dict[str, Path] = {}
    listener = None
    if samples:
        listener = str(data.users.ids[int(np.argmax(data.user_counts()))])
        out, year = model_dir.parent / "wrapped", params.start_date.year
        wrapped = {"png": out / f"{listener}-{year}.png", "html": out / f"{listener}-{year}.html"}
        wrapped_png(store, listener, year, wrapped["png"])
        wrapped_html(store, listener, year, wrapped["html"])
    live = (
        live_demo(store, trained["als"], next(iter(samples)), k)
        if samples and ("als" in trained)
        else None
    )
    listener_id = listener if wrapped else None
    steps = next_steps(store, samples, best, params.start_date.year, listener_id)
    return DemoResult(world, results, samples, wrapped, live, steps)


def next_steps(
    store: Store,
    samples: dict[str, dict[str, list[Suggestion]]],
    best: str,
    year: int,
    listener: str | None,
) -> list[tuple[list[str], str]]:
    """Commands worth running next, filled in with this world's own listener, artist and
    track, so each one can be pasted as it is (a demo that ends without them leaves a new
    user guessing ids)."""
    steps: list[tuple[list[str], str]] = []
    if not samples:
        return steps
    user = next(iter(samples))
    steps.append(
        (
            ["recommend", user, "--model", best, "--max-per-artist", "2"],
            "one listener's list from the best model, an artist at most twice",
        )
    )
    track = artist = None
    for suggestion in samples[user].get(best, []):
        item = store.get_item(suggestion.item_id)
        parent = store.get_item(item.artist_id) if item and item.artist_id else None
        if item is not None and parent is not None:
            track, artist = f"{item.title} — {parent.title}", parent.title
            break
    if artist is not None:
        steps.append(
            (["station", user, "--seed", f"artist:{artist}"], "a station from an artist, by name")
        )
        steps.append((["search", artist], "find any item by name (typos are fine)"))
        steps.append(
            (
                ["similar", str(track), "--model", best],
                "what the model places next to a track, and why",
            )
        )
    if listener is not None:
        steps.append((["wrapped", listener, "--year", str(year)], "a listener's year in numbers"))
    steps.append(
        (
            ["evaluate", "--seeds", "0,1,2,3,4", "--report", "reports/eval"],
            "every model over five splits: mean ± std, a Markdown report with plots",
        )
    )
    steps.append(
        (["serve", "--model", best], "the HTTP API (OpenAPI at http://localhost:8000/docs)")
    )
    return steps


@dataclass(frozen=True)
class LiveDemo:
    """The real-time loop in miniature: one listener's list before and after two skips."""

    user_id: str
    skipped: str  # the title of the skipped track
    artist: str
    before: list[LiveItem]
    after: list[LiveItem]


def live_demo(store: Store, trained: TrainedModel, user_id: str, k: int = 10) -> LiveDemo:
    """Skip the top track twice, as a listener would, and ask again: what the API does when
    events arrive (applied to the live state at once), without starting a server."""
    model = ServingModel.build(store, trained, "demo")
    state = InProcessState()
    user = store.get_user(user_id)
    before = recommend_live(model, state, user, LiveRequest(user_id, k)).items
    top = before[0]
    now = dt.datetime.now(dt.UTC)
    skips = [
        Event(
            event_id=f"demo-skip-{user_id}-{n}",
            user_id=user_id,
            item_id=top.item_id,
            type=EventType.SKIP,
            timestamp=now + dt.timedelta(seconds=n),
        )
        for n in range(2)
    ]
    state.apply(skips, artist_of=model.artist_of, genres_of=model.genres_of)
    after = recommend_live(model, state, user, LiveRequest(user_id, k)).items
    artist = model.artist_of.get(top.item_id, "")
    return LiveDemo(user_id, top.title, ModelTitles(model).bare(artist), before, after)
