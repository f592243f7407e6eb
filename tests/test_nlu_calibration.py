"""Temperature scaling of the NLU (segue.nlu.train.fit_temperature, scikit-learn's log loss):
it finds the temperature that generated the labels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from segue.nlu.tagged import softmax
from segue.nlu.train import fit_temperature


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_the_generating_temperature_is_recovered(temperature: float) -> None:
    rng = np.random.default_rng(int(temperature * 10))
    logits = rng.normal(0.0, 3.0, (4_000, 7)).astype(np.float32)
    logits[:, 6] = -50.0  # a label no row has: the loss still knows every class
    probs = softmax(logits.astype(np.float64), temperature)
    targets = (probs.cumsum(axis=1) < rng.random((len(probs), 1))).sum(axis=1)
    assert 6 not in targets
    assert fit_temperature(logits, targets) == pytest.approx(temperature, rel=0.05)


def test_no_rows_keep_temperature_one() -> None:
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
