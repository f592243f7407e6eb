"""Slot-value swapping: the values come from the same intent and slot type, the sentence
around them and the BIO labels stay right, and a seed draws the same swaps."""

from __future__ import annotations

import re

import numpy as np
import pytest

from segue.errors import SegueError
from segue.nlu.augment import SlotSwap
from segue.nlu.evaluate import spans
from segue.nlu.snips import Utterance
from segue.nlu.train import TrainConfig


def _u(text: str, tags: str, intent: str) -> Utterance:
    return Utterance(tuple(text.split()), tuple(tags.split()), intent)


TRAIN = [
    _u("play queen on spotify", "O B-artist O B-service", "PlayMusic"),
    _u("play etta james", "O B-artist I-artist", "PlayMusic"),
    _u("play the lonely machines now", "O B-artist I-artist I-artist O", "PlayMusic"),
    _u("add prince to my rock playlist", "O B-artist O O B-playlist O", "AddToPlaylist"),
    _u("add this to my chill out playlist", "O O O O B-playlist I-playlist O", "AddToPlaylist"),
]


def test_values_are_kept_per_intent_and_type_and_single_values_are_left_out() -> None:
    swap = SlotSwap.from_utterances(TRAIN)
    assert swap.values[("PlayMusic", "artist")] == [
        ("etta", "james"),
        ("queen",),
        ("the", "lonely", "machines"),
    ]
    assert swap.values[("AddToPlaylist", "playlist")] == [("chill", "out"), ("rock",)]
    # one value is nothing to swap with; artists of another intent are not borrowed
    assert ("PlayMusic", "service") not in swap.values
    assert ("AddToPlaylist", "artist") not in swap.values


def test_a_swap_keeps_the_context_and_relabels_the_new_value() -> None:
    swap = SlotSwap.from_utterances(TRAIN)
    rng = np.random.default_rng(0)
    original = TRAIN[0]
    seen = set()
    for _ in range(60):
        out = swap.swap(original, 1.0, rng)
        chunks = sorted(spans(out.tags))
        assert [kind for *_, kind in chunks] == ["artist", "service"]
        (a0, a1, _), (s0, s1, _) = chunks
        assert out.words[:a0] == ("play",) and out.words[a1:s0] == ("on",)
        assert out.words[s0:s1] == ("spotify",)  # a type with one value stays
        assert out.tags[a0] == "B-artist" and set(out.tags[a0 + 1 : a1]) <= {"I-artist"}
        assert out.intent == "PlayMusic"
        seen.add(out.words[a0:a1])
    assert seen == set(swap.values[("PlayMusic", "artist")])


def test_share_zero_changes_nothing_and_a_seed_repeats_its_swaps() -> None:
    swap = SlotSwap.from_utterances(TRAIN)
    rng = np.random.default_rng(1)
    assert all(swap.swap(u, 0.0, rng) == u for u in TRAIN)
    one = [swap.swap(u, 0.5, np.random.default_rng(7)) for u in TRAIN]
    two = [swap.swap(u, 0.5, np.random.default_rng(7)) for u in TRAIN]
    assert one == two


def test_training_refuses_a_swap_share_that_is_not_a_probability() -> None:
    message = "swap_slots is a probability in [0, 1]; got 1.5"
    with pytest.raises(SegueError, match=re.escape(message)):
        TrainConfig(swap_slots=1.5)
    assert TrainConfig(swap_slots=0.0).swap_slots == 0.0
