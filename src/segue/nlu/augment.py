"""Slot-value swapping: training utterances with their names exchanged for others of the type.

The tagger learns SNIPS train almost by heart (slot F1 99.8 %) and then misses names it has
never seen, because a memorised name is a cheaper cue than the words around it. Swapping a
span's words for another value that training gave the same slot type under the same intent
("add ‹entity_name› to my ‹playlist› playlist") keeps the sentence and its labels right while
the names stop being reliable cues, so the context has to carry the decision. Names the
training set does contain are still remembered by :mod:`segue.nlu.lexicon` at decoding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from segue.nlu.evaluate import spans
from segue.nlu.snips import Utterance


class SlotSwap:
    """Every distinct value each (intent, slot type) takes in a training set."""

    def __init__(self, values: dict[tuple[str, str], list[tuple[str, ...]]]) -> None:
        self.values = values

    @classmethod
    def from_utterances(cls, utterances: Iterable[Utterance]) -> SlotSwap:
        seen: dict[tuple[str, str], set[tuple[str, ...]]] = defaultdict(set)
        for u in utterances:
            for start, end, kind in spans(u.tags):
                seen[(u.intent, kind)].add(u.words[start:end])
        # sorted, so that a seed draws the same values whatever the set's iteration order
        return cls({key: sorted(found) for key, found in seen.items() if len(found) > 1})

    def swap(self, utterance: Utterance, share: float, rng: np.random.Generator) -> Utterance:
        """``utterance`` with each span replaced, with probability ``share``, by another value."""
        words: list[str] = []
        tags: list[str] = []
        done = 0
        for start, end, kind in sorted(spans(utterance.tags)):
            words += utterance.words[done:start]
            tags += utterance.tags[done:start]
            value = utterance.words[start:end]
            pool = self.values.get((utterance.intent, kind))
            if pool and rng.random() < share:
                value = pool[rng.integers(len(pool))]
            words += value
            tags += [f"B-{kind}", *[f"I-{kind}"] * (len(value) - 1)]
            done = end
        words += utterance.words[done:]
        tags += utterance.tags[done:]
        return Utterance(tuple(words), tuple(tags), utterance.intent)
