"""`segue train --weight-by rating`: rated events weigh their rating in what the model learns
from, as they do in `segue evaluate --weight-by rating`; by count, every rating weighs one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from segue.cli.main import app
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.errors import SegueError
from segue.registry.trained import load_trained
from segue.store import open_store

T = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def test_train_weighs_ratings_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        store.upsert_items([Item(id=f"m{i}", kind=ItemKind.TRACK, title=f"m{i}")
                            for i in range(30)])  # fmt: skip
        store.upsert_users([User(id=f"u{i}", signup_at=T) for i in range(40)])
        events = []
        for u in range(40):
            for i in rng.choice(30, 8, replace=False).tolist():
                events.append(Event(event_id=f"e{u}-{i}", user_id=f"u{u}", item_id=f"m{i}",
                                    type=EventType.PLAY, rating=float(rng.integers(1, 6)),
                                    timestamp=T))  # fmt: skip
        store.add_events(events)
    rating = {(e.user_id, e.item_id): e.rating for e in events}
    fitted = {}
    for weight in ("count", "rating"):
        done = CliRunner().invoke(
            app, ["train", "--models", "als", "--weight-by", weight],
            env={"SEGUE_DATA_DIR": str(data)},
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        trained = load_trained(data / "models", "als")
        matrix = trained.model._fitted().tocoo()
        users, items = trained.users.ids, trained.items.ids
        fitted[weight] = {
            (str(users[r]), str(items[c])): v
            for r, c, v in zip(matrix.row, matrix.col, matrix.data, strict=True)
        }
    # what the model learnt from follows the ratings when weighed by them (BM25 on top: item
    # and row-length factors), and not at all when every rating weighs one
    from scipy.stats import spearmanr

    keys = list(rating)
    rho = {
        w: spearmanr([rating[k] for k in keys], [fitted[w][k] for k in keys]).statistic
        for w in fitted
    }
    assert rho["rating"] > 0.5 and abs(rho["count"]) < 0.15, rho
    wrong = CliRunner().invoke(app, ["train", "--weight-by", "stars"],
                               env={"SEGUE_DATA_DIR": str(data)})  # fmt: skip
    assert isinstance(wrong.exception, SegueError) and "count or rating" in str(wrong.exception)
