"""Choosing the training recipe by k-fold cross-validation on SNIPS train + valid.

One valid split of 700 utterances is a noisy judge: at a frame accuracy near 90 % its binomial
standard error is about 1.1 points, more than most recipe changes move. Here the SNIPS train and
valid splits are pooled and cut into ``k`` parts (:func:`kfold`: stratified by intent, copies
of the same words kept in one part so that no held-out request was seen word for word in
training). Each fold (:func:`run_fold`, one process each, so folds run side by side on one
core apiece) trains on the other parts plus the generated utterances the corpus adds (they come
from the catalog's names, never from SNIPS, so they hold nothing of the held-out part) with a
fixed recipe and no checkpoint selection: the fold's figure is the held-out score of the last
weights, after the recipe's epochs. The held-out part is scored at every evaluation point as
well, so :func:`summarize` can say at which epoch count the *mean over folds* peaks. That
point belongs to a longer run whose learning rate had not yet decayed to zero, so it suggests
an epoch count; a cross-validation at that count confirms it. The lexicon, slot swapping and
the label inventory are built from the fold's training part alone.

The fold is calibrated the way the shipped model is (``segue nlu train --all-data``): on the
generated valid part, which it did not train on; the held-out part then says what those
temperatures are worth on SNIPS requests (its frame calibration error before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segue.errors import SegueError
from segue.nlu.snips import Utterance

if TYPE_CHECKING:
    from segue.nlu.tagger import Tagger
    from segue.nlu.train import TrainConfig

#: What a fold result file says it is.
KIND = "segue-nlu-cv-fold"
METRICS = ("intent_accuracy", "slot_f1", "frame_accuracy")


def kfold(utterances: Sequence[Utterance], k: int, seed: int = 0) -> list[list[int]]:
    """``k`` disjoint parts (sorted indices into ``utterances``) that together hold every
    utterance once; the same ``seed`` gives the same parts.

    Utterances with the same words form one group that goes to one part whole. Within each
    intent, groups are dealt largest first (ties in an order drawn from ``seed``) to the part
    holding the fewest of that intent (then the fewest overall), so each intent's counts per
    part differ by at most one whenever its single utterances can level what its copies leave
    uneven (they do on SNIPS, whose largest group has a handful of copies among ~2,000
    utterances per intent), and part sizes differ by at most one or two.
    """
    if k < 2:
        raise SegueError(f"k-fold cross-validation needs k >= 2 parts; got {k}")
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, u in enumerate(utterances):
        groups.setdefault(tuple(w.lower() for w in u.words), []).append(i)
    if len(groups) < k:
        raise SegueError(
            f"{len(utterances)} utterances ({len(groups)} distinct) cannot fill {k} parts"
        )
    by_intent: dict[str, list[list[int]]] = {}
    for members in groups.values():
        by_intent.setdefault(utterances[members[0]].intent, []).append(members)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(k)]
    for intent in sorted(by_intent):
        shuffled = [by_intent[intent][j] for j in rng.permutation(len(by_intent[intent]))]
        shuffled.sort(key=len, reverse=True)  # stable: the drawn order breaks ties
        counts = [0] * k
        for members in shuffled:
            best = min(range(k), key=lambda p: (counts[p], len(parts[p]), p))
            parts[best].extend(members)
            counts[best] += len(members)
    return [sorted(part) for part in parts]


def fingerprint(utterances: Sequence[Utterance]) -> str:
    """A short hash of the utterances in order: fold files of other data do not mix."""
    digest = hashlib.sha1()
    for u in utterances:
        digest.update(f"{' '.join(u.words)}\t{' '.join(u.tags)}\t{u.intent}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class FoldRun:
    """What one fold produced: the JSON record (see :func:`run_fold`) and the trained tagger."""

    record: dict[str, Any]
    tagger: Tagger


def run_fold(
    pool: Sequence[Utterance],
    generated: Sequence[Utterance],
    calibration_set: Sequence[Utterance],
    model_dir: Path,
    config: TrainConfig,
    *,
    folds: int,
    fold: int,
    split_seed: int = 0,
    progress: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> FoldRun:
    """Train on every part of ``kfold(pool, folds, split_seed)`` but part ``fold``, plus
    ``generated``, with ``config`` and no selection; score the held-out part along the way.

    The record holds the split (``held_out`` and ``trained_on``: indices into ``pool``), the
    recipe, the curve (step, epoch, intent accuracy, slot F1, frame accuracy ... at each
    evaluation point), ``final`` (the curve's last point: the weights kept, after
    ``config.epochs``) and ``calibrated`` (held-out scores and frame calibration error with
    the temperatures fitted on ``calibration_set``). ``extra`` is added as it is.
    """
    from segue.nlu.evaluate import score
    from segue.nlu.model import Calibration, Labels
    from segue.nlu.tagged import frame_confidence
    from segue.nlu.train import frame_ece, train

    if not 0 <= fold < folds:
        raise SegueError(f"fold {fold} is not one of 0..{folds - 1}")
    if config.evals_per_epoch < 1:
        raise SegueError("a fold records its held-out curve: evals_per_epoch must be >= 1")
    parts = kfold(pool, folds, split_seed)
    held = parts[fold]
    held_set = set(held)
    trained_on = [i for i in range(len(pool)) if i not in held_set]
    train_set = [*(pool[i] for i in trained_on), *generated]
    held_out = [pool[i] for i in held]
    # nothing of the held-out part enters training, not even its label inventory
    labels = Labels.from_utterances([*train_set, *calibration_set])
    config = replace(config, select=False)
    result = train(
        train_set,
        held_out,
        model_dir,
        config,
        calibration_set=calibration_set,
        labels=labels,
        progress=progress,
    )
    tagger = result.tagger
    curve = result.history
    if not curve or curve[-1]["step"] != tagger.info["kept_step"]:
        raise SegueError("the fold's curve does not end at the weights it kept")
    fitted = tagger.calibration
    intent_logits, tag_logits = tagger.logits([u.words for u in held_out])
    gold_intents = [u.intent for u in held_out]
    gold_tags = [u.tags for u in held_out]
    decoded = {}
    for name, calibration in (("raw", Calibration()), ("fitted", fitted)):
        tagger.calibration = calibration
        decoded[name] = tagger.decode([u.words for u in held_out], intent_logits, tag_logits)
    tagger.calibration = fitted
    tagged = decoded["fitted"]
    scores = score(gold_intents, gold_tags, [t.intent for t in tagged], [t.tags for t in tagged])
    correct = np.array(
        [t.intent == u.intent and t.tags == u.tags for t, u in zip(tagged, held_out, strict=True)]
    )
    ece = {
        f"frame_ece_{when}": frame_ece(
            correct, np.array([frame_confidence(t) for t in decoded[name]])
        )
        for when, name in (("before", "raw"), ("after", "fitted"))
    }
    final = curve[-1]
    record = {
        "kind": KIND,
        "fold": fold,
        "folds": folds,
        "split_seed": split_seed,
        "data": {"utterances": len(pool), "fingerprint": fingerprint(pool)},
        "config": asdict(config),
        "generated": len(generated),
        "calibration_size": len(calibration_set),
        "train_size": tagger.info["train_size"],
        "held_out": held,
        "trained_on": trained_on,
        "kept_step": tagger.info["kept_step"],
        "curve": curve,
        "final": {k: final[k] for k in ("step", "epoch", *METRICS)} | {"n": int(final["n"])},
        "calibrated": {
            "intent_temperature": fitted.intent_temperature,
            "slot_temperature": fitted.slot_temperature,
            **{k: getattr(scores, k) for k in METRICS},
            **ece,
            "calibration_report": fitted.report,
        },
        "seconds": tagger.info["seconds"],
        "cpu_seconds": tagger.info["cpu_seconds"],
        **(extra or {}),
    }
    return FoldRun(record, tagger)


def save_result(record: dict[str, Any], path: Path) -> None:
    """Write a fold's record as JSON (whole or not at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_results(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Fold records from files, or from every ``*.json`` in a folder; each remembers its file
    (``_file``). A file that is not a fold record is refused by name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise SegueError(f"cross-validation result {path} not found")
    if not files:
        raise SegueError("no fold result files (*.json) found")
    records = []
    for path in files:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SegueError(f"{path}: not readable as JSON ({exc})") from exc
        if not isinstance(record, dict) or record.get("kind") != KIND:
            raise SegueError(f"{path}: not a fold result of `segue nlu cv`")
        record["_file"] = str(path)
        records.append(record)
    return records


@dataclass
class Summary:
    """Per-fold figures and their mean and standard deviation (n - 1) over folds."""

    folds: int
    epochs: float
    split_seed: int
    per_fold: list[dict[str, Any]]
    #: at the recipe's epoch count: each of METRICS, plus calibrated frame accuracy and ECE
    mean: dict[str, float]
    sd: dict[str, float | None]
    #: per evaluation point present in every fold: epoch, mean and sd of each of METRICS
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: the curve's point with the best mean frame accuracy (the fewer epochs on a tie)
    best: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> list[int]:
        have = {row["fold"] for row in self.per_fold}
        return [f for f in range(self.folds) if f not in have]


#: Recipe settings that may differ between fold files (they do not change what is learnt,
#: beyond the rounding of the kernels that run it).
_FREE_SETTINGS = ("threads", "device")


def summarize(records: Sequence[dict[str, Any]]) -> Summary:
    """Mean and standard deviation over folds at the final epoch, and the mean curve.

    Every record must come from the same split (folds, split seed, data) and the same recipe;
    a fold given twice is refused.
    """
    if not records:
        raise SegueError("no fold results to summarize")
    first = records[0]

    def same(record: dict[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in record["config"].items() if k not in _FREE_SETTINGS}
        return {
            "folds": record["folds"],
            "split_seed": record["split_seed"],
            "data": record["data"],
            "generated": record.get("generated"),
            "config": config,
        }

    seen: dict[int, str] = {}
    for record in records:
        where = record.get("_file", f"fold {record['fold']}")
        theirs, ours = same(record), same(first)
        for key, value in theirs.items():
            if value != ours[key]:
                raise SegueError(
                    f"{where}: its {key} differs from {first.get('_file', 'the first file')}'s "
                    "(fold files of one cross-validation share split and recipe)"
                )
        if record["fold"] in seen:
            raise SegueError(f"{where}: fold {record['fold']} is also in {seen[record['fold']]}")
        seen[record["fold"]] = where
    ordered = sorted(records, key=lambda r: r["fold"])
    per_fold = []
    for r in ordered:
        row = {"fold": r["fold"], **r["final"]}
        row["calibrated_frame_accuracy"] = r["calibrated"]["frame_accuracy"]
        row["frame_ece_after"] = r["calibrated"]["frame_ece_after"]
        per_fold.append(row)
    columns = (*METRICS, "calibrated_frame_accuracy", "frame_ece_after")
    mean = {c: statistics.fmean(row[c] for row in per_fold) for c in columns}
    sd = {c: _sd([row[c] for row in per_fold]) for c in columns}
    curve = _mean_curve(ordered)
    best = max(curve, key=lambda p: (p["frame_accuracy"], -p["epoch"])) if curve else {}
    return Summary(
        folds=first["folds"],
        epochs=first["config"]["epochs"],
        split_seed=first["split_seed"],
        per_fold=per_fold,
        mean=mean,
        sd=sd,
        curve=curve,
        best=best,
    )


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _mean_curve(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Curve points matched across folds by their nominal epoch (the epoch rounded to the
    evaluation grid: folds differ by an utterance or two, so by a step per epoch at most);
    where a fold has two points on one grid value, the later counts."""
    per_epoch = records[0]["config"]["evals_per_epoch"]
    by_fold: list[dict[float, dict[str, Any]]] = []
    for record in records:
        points: dict[float, dict[str, Any]] = {}
        for point in record["curve"]:
            points[round(point["epoch"] * per_epoch) / per_epoch] = point
        by_fold.append(points)
    common = sorted(set.intersection(*(set(points) for points in by_fold)))
    out = []
    for epoch in common:
        row: dict[str, Any] = {"epoch": epoch, "folds": len(by_fold)}
        for metric in METRICS:
            values = [points[epoch][metric] for points in by_fold]
            row[metric] = statistics.fmean(values)
            row[f"{metric}_sd"] = _sd(values)
        out.append(row)
    return out
