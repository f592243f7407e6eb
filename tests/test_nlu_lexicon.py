"""The training lexicon: counted from tagged utterances, saved with a checkpoint, and a vote in
decoding that turns a span the model is unsure of into the type training gave it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segue.errors import SegueError
from segue.nlu.lexicon import FILE, SpanLexicon
from segue.nlu.model import Labels
from segue.nlu.snips import Utterance
from segue.nlu.tagger import Tagger


def _u(text: str, tags: str, intent: str = "PlayMusic") -> Utterance:
    return Utterance(tuple(text.split()), tuple(tags.split()), intent)


TRAIN = [
    _u("play a mis ninos", "O B-playlist I-playlist I-playlist"),
    _u("play A mis ninos now", "O B-playlist I-playlist I-playlist O"),
    _u("is a mis ninos good", "O O O O O"),
    _u("play today", "O B-timeRange"),
    _u("play today", "O O"),
    _u("play today", "O B-timeRange"),
    _u("the way you look tonight", "B-track I-track I-track I-track I-track"),
]


def test_counts_how_often_each_span_was_tagged_and_how_often_it_occurs() -> None:
    lexicon = SpanLexicon.from_utterances(TRAIN, max_words=4)
    # matched without regard to case; the untagged occurrence counts against the share
    assert lexicon.entries["a mis ninos"] == (3, {"playlist": 2})
    assert lexicon.entries["today"] == (3, {"timeRange": 2})
    # spans longer than max_words are not remembered; words never tagged are not entries
    assert "the way you look tonight" not in lexicon.entries
    assert "play" not in lexicon.entries and "mis" not in lexicon.entries


def test_bonus_marks_the_first_word_b_and_the_rest_i_by_share() -> None:
    lexicon = SpanLexicon.from_utterances(TRAIN)
    tags = ("O", "B-playlist", "I-playlist", "B-timeRange", "I-timeRange")
    bonus = lexicon.bonus(("Play", "a", "mis", "ninos", "today"), tags, weight=3.0)
    want = np.zeros((5, 5))
    want[1, 1] = want[2, 2] = want[3, 2] = 3.0 * 2 / 3
    want[4, 3] = 3.0 * 2 / 3
    np.testing.assert_allclose(bonus, want)
    # a type the tagger does not know adds nothing
    assert not lexicon.bonus(("today",), ("O", "B-track", "I-track"), weight=3.0).any()


def test_round_trip_and_bad_files(tmp_path: Path) -> None:
    lexicon = SpanLexicon.from_utterances(TRAIN)
    lexicon.save(tmp_path)
    assert SpanLexicon.load(tmp_path) == lexicon
    assert SpanLexicon.load(tmp_path / "elsewhere") is None
    (tmp_path / FILE).write_text('{"entries": {"x": 3}}', encoding="utf-8")
    with pytest.raises(SegueError, match=r"lexicon\.json is not a segue span lexicon"):
        SpanLexicon.load(tmp_path)


def test_the_lexicon_turns_an_unsure_span_into_the_trained_type() -> None:
    labels = Labels(("PlayMusic",), ("O", "B-album", "B-playlist", "I-album", "I-playlist"), None)
    tagger = Tagger(torch.nn.Identity(), None, labels, lexicon=SpanLexicon.from_utterances(TRAIN))
    words = [("play", "a", "mis", "ninos")]
    intent = np.array([[5.0]])
    # the model leans to album for the whole span
    p = [[0.9, 0.03, 0.03, 0.02, 0.02]] + [[0.1, 0.0, 0.0, 0.5, 0.4]] * 3
    p[1] = [0.1, 0.5, 0.4, 0.0, 0.0]
    tags = np.log(np.array(p) + 1e-9)
    assert tagger.decode(words, intent, [tags])[0].tags == (
        "O",
        "B-playlist",
        "I-playlist",
        "I-playlist",
    )
    tagger.lexicon_weight = 0.0
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "B-album", "I-album", "I-album")
    # a confident model is not overruled by a share of two in three
    tagger.lexicon_weight = 1.0
    p = [[0.9, 0.03, 0.03, 0.02, 0.02]] + [[0.01, 0.0, 0.0, 0.98, 0.01]] * 3
    p[1] = [0.01, 0.98, 0.01, 0.0, 0.0]
    tags = np.log(np.array(p) + 1e-9)
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "B-album", "I-album", "I-album")
