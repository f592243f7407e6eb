"""What the tagger says about one request, and how sure the frame is: no torch needed.

Kept apart from :mod:`segue.nlu.tagger` (which runs the model with torch) so that the parser,
the API's answer models and everything that only reads a tagging import without the ``nlu``
extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tagged:
    """One tagged request: the intent with its calibrated probability, and per-word tags."""

    words: tuple[str, ...]
    intent: str
    intent_confidence: float
    tags: tuple[str, ...]
    tag_confidence: tuple[float, ...]
    #: calibrated probabilities of every intent, in ``Labels.intents`` order
    intent_probs: tuple[float, ...]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def frame_confidence(tagged: Tagged) -> float:
    """How sure the whole frame is: the intent's probability times the least sure slot word."""
    slot = [c for c, t in zip(tagged.tag_confidence, tagged.tags, strict=True) if t != "O"]
    return tagged.intent_confidence * (min(slot) if slot else 1.0)
