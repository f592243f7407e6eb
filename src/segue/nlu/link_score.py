"""How likely a linked name is the item the listener meant: a calibrated probability.

The linker's own score (text match + a little popularity) orders candidates but is no
probability: a 0.82 match may be a typo of the right title or a different title that shares
a word ("ed sheeran" against "Red Shore"). :func:`link_confidence` turns the name-match
features of the best candidate into the probability that it is the right item, by a
logistic model fitted on generated requests over the synthetic catalog
(:func:`fit_link_model`): names of every kind, spelt right, misspelt by one or two edits,
shortened by a word, or cased oddly (positives when the best candidate carries the name
meant), and names the catalog lacks (two title words from different items, made-up words,
optionally Last.fm artists) whose every link is wrong. A seeded 70/30 split keeps a
validation part apart: the fit sees only the first, the threshold and the figures in
docs/benchmarks.md come from the second.

:data:`LINK_THRESHOLD` is the lowest probability (on a 0.05 grid) at which the validation
part kept 98 % of accepted links right (not 99 %: misspellings equally close to two
titles, "paraide", stay wrong); below it the parser asks ("I couldn't find X; did you mean
A or B?") and no queue is built. The coefficients below are what
``benchmarks/bench_requests.py --calibrate`` prints; ``tests/test_nlu_requests.py`` checks
the stored ones on names generated with a seed the fit never saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from segue.data.model import Item, ItemKind
from segue.nlu.linking import Candidate, EntityIndex, normalise
from segue.nlu.words import misspell

#: feature names, in the order of :data:`COEFFICIENTS`
FEATURES = ("match", "exact", "margin", "log_chars", "words")
#: logistic coefficients (intercept first), fitted by :func:`fit_link_model` on the default
#: synthetic world (seed 7), generated seed 0; see the module docstring
COEFFICIENTS = (-20.8595, 24.0153, 3.2994, 2.8514, -0.703, 0.9702)
#: links of at least this probability are acted on; below, the parser asks
LINK_THRESHOLD = 0.75
#: between the threshold and this, the call comes with a confirmation question
CONFIRM_BELOW = 0.9


def features(query: str, found: Sequence[Candidate]) -> list[float]:
    """The best candidate's match, whether it is exact, its margin over the best candidate
    of another name, and the query's length (log characters, words). Popularity is left
    out: it orders equal names, it says nothing about whether the name is the one meant."""
    best = found[0]
    other = next((c.match for c in found[1:] if normalise(c.title) != normalise(best.title)), 0.0)
    text = normalise(query)
    return [
        best.match,
        float(best.match >= 0.999),
        best.match - other,
        math.log1p(len(text)),
        float(len(text.split())),
    ]


def link_confidence(
    query: str, found: Sequence[Candidate], coefficients: Sequence[float] = COEFFICIENTS
) -> float:
    """The probability that ``found[0]`` is what ``query`` meant (0 when nothing was found)."""
    if not found:
        return 0.0
    z = coefficients[0] + sum(
        w * x for w, x in zip(coefficients[1:], features(query, found), strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class LinkSample:
    """One generated name: what was typed, the normalised title meant (None: not in the
    catalog), the kinds it was linked against."""

    query: str
    meant: str | None
    kinds: tuple[str, ...]


def link_samples(
    items: Sequence[Item],
    n: int,
    seed: int,
    *,
    absent: Iterable[str] = (),
) -> list[LinkSample]:
    """``n`` names over ``items``: about two thirds of the catalog's (of every kind with a
    title, altered as people type them), one third not in it (``absent`` names first, then
    recombined title words and made-up words)."""
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list[Item]] = {}
    for item in items:
        if normalise(item.title):
            by_kind.setdefault(item.kind.value, []).append(item)
    kinds = sorted(by_kind)
    known = {normalise(i.title) for i in items}
    words = sorted({w for name in known for w in name.split() if len(w) > 2})
    out: list[LinkSample] = []
    absent_names = [a for a in absent if normalise(a) and normalise(a) not in known]
    n_absent = n // 3
    for i in range(n - n_absent):
        kind = kinds[i % len(kinds)]
        item = by_kind[kind][int(rng.integers(len(by_kind[kind])))]
        title = item.title
        roll = rng.random()
        parts = title.split()
        if roll < 0.3:
            query = title
        elif roll < 0.75:
            query = misspell(title, rng, edits=int(rng.integers(1, 3)))
        elif roll < 0.9 and len(parts) > 2:
            query = " ".join(parts[1:] if rng.random() < 0.5 else parts[:-1])
        else:
            query = title.upper() if rng.random() < 0.5 else title.lower()
        if normalise(query) in known and normalise(query) != normalise(title):
            continue  # shortened into another item's whole name: that item is meant
        out.append(LinkSample(query, normalise(title), (kind,) if rng.random() < 0.5 else ()))
    for i in range(n_absent):
        if i < len(absent_names) and rng.random() < 0.5:
            query = absent_names[int(rng.integers(len(absent_names)))]
        elif rng.random() < 0.6:
            query = " ".join(words[int(rng.integers(len(words)))] for _ in range(2))
        else:
            query = "".join(
                "bcdfghklmnprstvz"[int(rng.integers(16))] + "aeiou"[int(rng.integers(5))]
                for _ in range(int(rng.integers(2, 5)))
            )
        if normalise(query) in known:
            continue
        out.append(LinkSample(query, None, ()))
    return out


def sample_rows(
    index: EntityIndex, samples: Sequence[LinkSample], kinds: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (1: the best candidate carries the name meant) of the samples
    that found any candidate; a sample without one needs no probability."""
    x, y = [], []
    for s in samples:
        found = index.link(s.query, list(s.kinds or kinds))
        if not found:
            continue
        x.append(features(s.query, found))
        y.append(float(s.meant is not None and normalise(found[0].title) == s.meant))
    return np.array(x), np.array(y)


@dataclass(frozen=True)
class LinkFit:
    """A fitted link model and its figures on the held-apart validation part."""

    coefficients: tuple[float, ...]
    threshold: float
    valid_n: int
    valid_precision: float  # of the links accepted at the threshold, the share right
    valid_recall: float  # of the right best candidates, the share accepted
    valid_ece: float
    wrong_accepted: int


def fit_link_model(
    items: Sequence[Item],
    *,
    n: int = 3000,
    seed: int = 0,
    absent: Iterable[str] = (),
    precision: float = 0.98,
) -> LinkFit:
    """Fit the logistic link model on 70 % of :func:`link_samples`, choose the threshold on
    the other 30 %: the lowest on a 0.05 grid whose accepted links are ``precision`` right."""
    from sklearn.linear_model import LogisticRegression

    from segue.calibration import expected_calibration_error

    kinds = sorted({i.kind.value for i in items})
    index = EntityIndex(items, kinds=[ItemKind(k) for k in kinds])
    samples = link_samples(items, n, seed, absent=absent)
    order = np.random.default_rng([seed, 1]).permutation(len(samples))
    cut = int(0.7 * len(samples))
    train = [samples[i] for i in order[:cut]]
    valid = [samples[i] for i in order[cut:]]
    x, y = sample_rows(index, train, kinds)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(x, y)
    coefficients = (float(model.intercept_[0]), *(float(c) for c in model.coef_[0]))
    coefficients = tuple(round(c, 4) for c in coefficients)
    vx, vy = sample_rows(index, valid, kinds)
    p = np.array([_logistic(coefficients, row) for row in vx])
    threshold = 0.95
    for t in np.arange(0.05, 1.0, 0.05):
        accepted = p >= t
        if accepted.any() and vy[accepted].mean() >= precision:
            threshold = round(float(t), 2)
            break
    accepted = p >= threshold
    return LinkFit(
        coefficients=coefficients,
        threshold=threshold,
        valid_n=len(vy),
        valid_precision=float(vy[accepted].mean()) if accepted.any() else 1.0,
        valid_recall=float(accepted[vy == 1].mean()) if (vy == 1).any() else 0.0,
        valid_ece=float(expected_calibration_error(vy, p, n_bins=10, strategy="uniform")),
        wrong_accepted=int((accepted & (vy == 0)).sum()),
    )


def _logistic(coefficients: Sequence[float], row: Sequence[float]) -> float:
    z = coefficients[0] + float(np.dot(coefficients[1:], row))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
