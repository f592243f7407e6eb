"""Rating predictors against a world whose truth is known (low rank + Gaussian noise).

The noise floor is the RMSE of the true model itself, so a correct SVD gets close to it and
a broken one (a sign error in an update, factors never learnt, biases missing) cannot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segue.data.synth.ratings import low_rank_ratings, write_folds
from segue.eval.metrics import rmse
from segue.eval.ratings import evaluate_rating_models, kfold, read_fold_dir
from segue.models.ratings import SVD, BiasBaseline, Blend, GlobalMean, ItemKNNBaseline, SVDpp


def _split(data, share: float = 0.2, seed: int = 1):
    test = np.random.default_rng(seed).random(len(data.ratings)) < share
    train = (data.users[~test], data.items[~test], data.ratings[~test])
    held = (data.users[test], data.items[test], data.ratings[test])
    return train, held


def _rmse(model, data, train, held) -> float:
    fitted = model.fit(*train, data.n_users, data.n_items)
    return rmse(fitted.predict(held[0], held[1]), held[2])


def test_svd_reaches_the_noise_floor_and_beats_the_biases() -> None:
    data = low_rank_ratings(300, 200, 20_000, rank=3, noise=0.3, seed=0)
    train, held = _split(data)
    bias = _rmse(BiasBaseline(), data, train, held)
    svd = _rmse(SVD(factors=3, epochs=100, lr=0.01), data, train, held)
    mean = _rmse(GlobalMean(), data, train, held)
    assert svd < 1.2 * data.noise  # measured 0.333 against a floor of 0.300
    assert svd < 0.5 * bias  # the biases cannot see the x_u·v_i part (measured 0.773)
    assert bias < mean


def test_svdpp_reads_taste_from_which_items_were_rated() -> None:
    # heavy-tailed activity and items chosen by taste: many users' values say little, their
    # choices say more
    data = low_rank_ratings(600, 800, 30_000, rank=5, noise=0.5, selection=2.0, seed=3)
    train, held = _split(data)
    svd = _rmse(SVD(), data, train, held)
    svdpp = _rmse(SVDpp(), data, train, held)
    assert svdpp < svd - 0.01  # measured 0.803 against 0.823
    knn = _rmse(ItemKNNBaseline(), data, train, held)
    bias = _rmse(BiasBaseline(), data, train, held)
    assert knn < bias - 0.01
    blend = _rmse(Blend(), data, train, held)
    assert blend < min(svd, svdpp, knn)


def test_fits_are_reproducible_and_unseen_rows_predict_from_biases() -> None:
    data = low_rank_ratings(100, 80, 3000, seed=5)
    train, _ = _split(data)
    users = np.array([0, 1, data.n_users])  # the last user has no rating at all
    items = np.array([0, 1, 2])
    a = SVD(seed=4).fit(*train, data.n_users + 1, data.n_items)
    b = SVD(seed=4).fit(*train, data.n_users + 1, data.n_items)
    np.testing.assert_array_equal(a.predict(users, items), b.predict(users, items))
    # an unseen user is the mean plus the item's bias: no random factor leaks in
    assert a.predict(users[2:], items[2:])[0] == pytest.approx(a.mu + a.b_item[2])
    c = SVDpp(seed=4).fit(*train, data.n_users + 1, data.n_items)
    assert c.predict(users[2:], items[2:])[0] == pytest.approx(c.mu + c.b_item[2])


def test_kfold_partitions_the_rated_events() -> None:
    from segue.data.log import InteractionLog

    n = 103
    rating = np.where(np.arange(n) % 10 == 0, np.nan, 1.0 + np.arange(n) % 5)
    log = InteractionLog(
        user_ids=[f"u{i}" for i in range(7)],
        item_ids=[f"i{i}" for i in range(11)],
        user=np.arange(n) % 7,
        item=np.arange(n) % 11,
        type=np.zeros(n),
        ts_ms=np.arange(n),
        ms_played=np.full(n, -1),
        count=np.ones(n),
        focus=np.zeros(n, dtype=bool),
        rating=rating,
    )
    folds = kfold(log, 5, seed=2)
    rated = int(np.isfinite(rating).sum())
    sizes = [len(f.test[2]) for f in folds]
    assert sum(sizes) == rated and max(sizes) - min(sizes) <= 1
    for f in folds:
        assert len(f.train[2]) + len(f.test[2]) == rated


def test_given_folds_round_trip_and_the_mean_model_by_hand(tmp_path: Path) -> None:
    data = low_rank_ratings(50, 40, 600, stars=True, seed=9)
    write_folds(data, tmp_path, folds=3)
    folds = read_fold_dir(tmp_path)
    assert [f.name for f in folds] == ["u1", "u2", "u3"]
    assert sum(len(f.test[2]) for f in folds) == len(data.ratings)
    result = evaluate_rating_models(folds, ["mean", "bias"])
    expected = []
    for f in folds:
        mu = f.train[2].mean()
        expected.append(np.sqrt(np.mean((f.test[2] - mu) ** 2)))
    assert result.summary("mean").rmse == pytest.approx(np.mean(expected))
    assert result.summary("mean").rmse_std == pytest.approx(np.std(expected))
    assert result.summary("bias").rmse < result.summary("mean").rmse


def test_cli_evaluates_rating_models_on_given_folds(tmp_path: Path) -> None:
    data = low_rank_ratings(200, 150, 6000, stars=True, seed=1)
    folds = tmp_path / "folds"
    write_folds(data, folds, folds=2)
    result = subprocess.run(
        [sys.executable, "-m", "segue.cli.main", "--data-dir", str(tmp_path), "evaluate",
         "--protocol", "ratings", "--models", "bias,svd", "--folds", str(folds)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) >= {"bias", "svd", "mean of models"}
    svd, bias = (float(rows[m][0].split("±")[0]) for m in ("svd", "bias"))
    assert svd < bias
    assert float(rows["mean of models"][0]) == pytest.approx((svd + bias) / 2, abs=1e-3)


def test_knn_reads_a_neighbour_by_hand() -> None:
    # every user rates items 0, 1, 2; half give 5, 5, 3 and half 1, 1, 3: items 0 and 1 move
    # together, so user 0's held-out 5 on item 0 is read from their 5 on item 1
    users = np.repeat(np.arange(40), 3)
    items = np.tile([0, 1, 2], 40)
    up = np.repeat(np.arange(40) % 2 == 0, 3)
    ratings = np.where(items == 2, 3.0, np.where(up, 5.0, 1.0))
    keep = ~((users == 0) & (items == 0))
    model = ItemKNNBaseline(k=1, shrinkage=0.0, baseline=BiasBaseline(0.0, 0.0, 1))
    fitted = model.fit(users[keep], items[keep], ratings[keep], 40, 3)
    assert fitted.sim[0, 1] == pytest.approx(1.0, abs=0.01)  # b_0 and b_1 differ a little
    assert fitted.sim[0, 2] <= 0  # opposed residuals are never neighbours
    baseline = fitted.baseline.predict(np.array([0]), np.array([0]))[0]
    assert baseline < 4.5  # the biases alone cannot tell
    assert fitted.predict(np.array([0]), np.array([0]))[0] == pytest.approx(5.0, abs=0.15)
