"""CoNLL span scores (segue.nlu.evaluate) against seqeval's conlleval-compatible default mode,
on random BIO sequences, malformed ones included (I-X after O, after B-Y, at the start)."""

from __future__ import annotations

import numpy as np
import pytest

from segue.nlu.evaluate import score, spans

seqeval = pytest.importorskip("seqeval")
from seqeval.metrics import f1_score, precision_score, recall_score  # noqa: E402
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402

# SNIPS-like types, one with a hyphen (the type is everything after the first one)
TAGS = ["O", "B-artist", "I-artist", "B-object_type", "I-object_type", "B-x-y", "I-x-y"]


def _sequences(rng: np.random.Generator, n: int) -> list[list[str]]:
    return [[TAGS[i] for i in rng.integers(0, len(TAGS), rng.integers(1, 9))] for _ in range(n)]


def test_spans_are_seqevals_entities() -> None:
    rng = np.random.default_rng(0)
    malformed = 0
    for tags in _sequences(rng, 5_000):
        theirs = {(start, end + 1, kind) for kind, start, end in get_entities(tags)}
        assert spans(tags) == theirs, tags
        malformed += any(
            t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:]) for i, t in enumerate(tags)
        )
    assert malformed > 1_000  # the random draws do exercise I- tags that start a chunk


def test_corpus_scores_are_seqevals() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        gold = _sequences(rng, int(rng.integers(1, 12)))
        predicted = []
        for g in gold:  # a prediction near the gold: some tags redrawn
            redraw = rng.random(len(g)) < rng.random()
            drawn = rng.integers(0, len(TAGS), len(g))
            predicted.append(
                [TAGS[d] if r else t for t, r, d in zip(g, redraw, drawn, strict=True)]
            )
        intents = ["PlayMusic"] * len(gold)
        ours = score(intents, gold, intents, predicted)
        kwargs = {"mode": None, "zero_division": 0}
        assert ours.slot_precision == pytest.approx(precision_score(gold, predicted, **kwargs))
        assert ours.slot_recall == pytest.approx(recall_score(gold, predicted, **kwargs))
        assert ours.slot_f1 == pytest.approx(f1_score(gold, predicted, **kwargs))
