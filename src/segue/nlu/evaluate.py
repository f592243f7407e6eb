"""Scores of a tagger the way the literature reports SNIPS: intent accuracy, CoNLL slot F1
(exact spans, as ``conlleval`` counts them) and whole-frame accuracy (intent and every tag
right). The calibration error of the confidence is :mod:`segue.calibration`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from segue.errors import SegueError


def spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Chunks as (start, end exclusive, type), following conlleval: a chunk starts at B-X, or
    at I-X after O or after a different type; it ends before O, B-, or a change of type."""
    out: set[tuple[int, int, str]] = set()
    start: int | None = None
    kind = ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if tag != "O" and prefix not in ("B", "I"):
            raise SegueError(f"tag {tag!r} at word {i} is not O, B-X or I-X")
        begins = tag != "O" and (prefix == "B" or start is None or label != kind)
        if start is not None and (tag == "O" or begins):
            out.add((start, i, kind))
            start = None
        if begins:
            start, kind = i, label
    return out


@dataclass(frozen=True)
class Scores:
    """Intent accuracy, slot precision/recall/F1 and frame accuracy, as fractions."""

    n: int
    intent_accuracy: float
    slot_precision: float
    slot_recall: float
    slot_f1: float
    frame_accuracy: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def score(
    gold_intents: Sequence[str],
    gold_tags: Sequence[Sequence[str]],
    pred_intents: Sequence[str],
    pred_tags: Sequence[Sequence[str]],
) -> Scores:
    """Corpus-level scores; slot F1 is micro-averaged over all spans like conlleval."""
    n = len(gold_intents)
    if not (len(gold_tags) == len(pred_intents) == len(pred_tags) == n) or n == 0:
        raise SegueError(
            f"scoring needs equally many, and some, gold and predicted frames; got {n}, "
            f"{len(gold_tags)}, {len(pred_intents)}, {len(pred_tags)}"
        )
    correct_spans = gold_total = pred_total = 0
    intents_right = frames_right = 0
    for gi, gt, pi, pt in zip(gold_intents, gold_tags, pred_intents, pred_tags, strict=True):
        if len(gt) != len(pt):
            raise SegueError(f"gold has {len(gt)} tags but the prediction {len(pt)}")
        g, p = spans(gt), spans(pt)
        correct_spans += len(g & p)
        gold_total += len(g)
        pred_total += len(p)
        intents_right += gi == pi
        frames_right += gi == pi and g == p
    precision = correct_spans / pred_total if pred_total else 0.0
    recall = correct_spans / gold_total if gold_total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(n, intents_right / n, precision, recall, f1, frames_right / n)
