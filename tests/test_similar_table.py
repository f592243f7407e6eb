"""Similar items precomputed when a model is saved: the same neighbours, in the same order, as
ranking the catalog per request gave, for a model with its own similarity and for one without
(co-listening cosine); served by lookup, and older saved models still answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.registry.similar import FILE, SIMILAR_K, SimilarTable
from segue.registry.trained import load_trained_at, train_models
from segue.serving.holder import ServingModel
from segue.serving.live import _co_listened, _similar_now, similar_live
from segue.store import open_store


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("similar")
    store = open_store(f"sqlite:///{root / 'segue.sqlite'}")
    load_synthetic_world(store, SynthParams(seed=6, n_users=150, n_tracks=300, n_events=6_000))
    interactions = load_interactions(store)
    side = load_side_info(store, interactions)
    train_models(interactions, ["als", "popularity"], root / "models", side=side, similar=True)
    yield store, root / "models"
    store.close()


@pytest.mark.parametrize("name", ["als", "popularity"])
def test_the_table_holds_what_ranking_per_request_gave(world, name: str) -> None:
    store, models = world
    folder = models / name
    assert (folder / FILE).is_file()
    trained = load_trained_at(folder, name)
    table = trained.similar
    n_items = len(trained.items)
    assert table is not None and table.items.shape == (n_items, SIMILAR_K)
    assert table.ranked == (name == "als")  # popularity has no similarity: co-listening
    served = ServingModel.build(store, trained, "v1")
    if name == "als":
        from segue.models.mf import _unit_rows

        unit = _unit_rows(trained.model._item_space())
    for column in range(0, n_items, 29):
        for k in (5, 10):
            ids, scores = table.row(column, k)
            now_ids, now_scores = _similar_now(served, column, k)
            assert column not in ids.tolist()
            if name == "als":  # the k nearest by cosine of the item vectors (ties in any order)
                cosine = unit[column] @ unit.T
                cosine[column] = -np.inf
                np.testing.assert_allclose(
                    cosine[ids], np.sort(cosine)[::-1][:k], rtol=1e-4, atol=1e-5
                )
                assert len(ids) == len(now_ids) == k
            else:  # the k highest co-listening cosines (ties at the cut in any order)
                every = _co_listened(served.train, column, n_items)
                cosine = dict(zip(every[0].tolist(), every[1].tolist(), strict=True))
                np.testing.assert_allclose([cosine[i] for i in ids.tolist()], scores, rtol=1e-5)
                np.testing.assert_allclose(scores, now_scores, rtol=1e-5)
    item = str(served.item_ids[3])
    listed = [i.item_id for i in similar_live(served, item, 10)]
    assert listed == [str(served.item_ids[c]) for c in table.row(3, 10)[0]]


def test_a_model_saved_without_the_table_still_answers(world, tmp_path: Path) -> None:
    import shutil

    store, models = world
    old = tmp_path / "als"
    shutil.copytree(models / "als", old)
    (old / FILE).unlink()
    trained = load_trained_at(old, "als")
    assert trained.similar is None
    served = ServingModel.build(store, trained, "v0")
    fresh = ServingModel.build(store, load_trained_at(models / "als", "als"), "v1")
    from segue.models.mf import _unit_rows

    unit = _unit_rows(trained.model._item_space())
    column = 5
    answers = [similar_live(m, str(served.item_ids[column]), 10) for m in (served, fresh)]
    cosines = [
        sorted((unit[column] @ unit[int(fresh.items.to_index([i.item_id])[0])] for i in a),
               reverse=True)
        for a in answers
    ]  # fmt: skip
    assert len(answers[0]) == 10 and np.allclose(cosines[0], cosines[1], atol=1e-5)
    assert SimilarTable.load(old) is None
