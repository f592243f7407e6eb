"""The parts of the language interface that need no model: words, spans, scores, data,
generated utterances, call schemas and entity linking."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from rapidfuzz.distance import Levenshtein

from segue.calibration import expected_calibration_error
from segue.data.model import Item, ItemKind
from segue.errors import SegueError
from segue.nlu.calls import validate_call
from segue.nlu.evaluate import score, spans
from segue.nlu.generate import TEMPLATES, Vocabulary, generate
from segue.nlu.linking import EntityIndex
from segue.nlu.snips import Utterance, read_split
from segue.nlu.words import misspell, words_of


def test_words_are_normalised_like_snips() -> None:
    assert words_of("Play I'd Rather Go Blind, by Etta James!") == [
        "play", "i", "d", "rather", "go", "blind", "by", "etta", "james",
    ]  # fmt: skip
    assert words_of("  ?!  ") == []


def test_a_request_of_nothing_visible_or_too_long_is_refused_with_what_to_do() -> None:
    from segue.errors import SegueError
    from segue.nlu.words import MAX_REQUEST_WORDS, request_words

    assert request_words("Play \u200bjazz!") == ["play", "jazz"]  # invisible marks dropped
    for nothing in ("\u200b\u200c\ufeff", "\x00\x07", " ... ", "\u202e\t"):
        with pytest.raises(SegueError, match="holds no words"):
            request_words(nothing)
    assert len(request_words("la " * MAX_REQUEST_WORDS)) == MAX_REQUEST_WORDS
    with pytest.raises(SegueError, match=f"{MAX_REQUEST_WORDS + 1} words long"):
        request_words("la " * (MAX_REQUEST_WORDS + 1))


def test_misspellings_are_one_or_two_edits_away() -> None:
    rng = np.random.default_rng(3)
    for edits in (1, 2):
        for _ in range(200):
            typo = misspell("bohemian rhapsody", rng, edits=edits)
            # a swap of two letters is two Levenshtein edits
            assert 1 <= Levenshtein.distance(typo, "bohemian rhapsody") <= 2 * edits


def test_spans_follow_conlleval() -> None:
    tags = ["B-artist", "I-artist", "O", "I-track", "I-track", "B-track", "I-album", "O"]
    # I- after O starts a chunk; B- of the same type splits; a type change splits
    assert spans(tags) == {(0, 2, "artist"), (3, 5, "track"), (5, 6, "track"), (6, 7, "album")}
    with pytest.raises(SegueError, match="X-artist"):
        spans(["X-artist"])


def test_scores_on_hand_made_frames() -> None:
    gold_tags = [["O", "B-track", "I-track", "O", "B-artist"], ["O", "B-playlist"]]
    pred_tags = [["O", "B-track", "O", "O", "B-artist"], ["O", "B-playlist"]]
    s = score(["PlayMusic", "AddToPlaylist"], gold_tags, ["PlayMusic", "PlayMusic"], pred_tags)
    # spans: gold 3, predicted 3, right 2 (artist, playlist); the track span is cut short
    assert s.slot_precision == pytest.approx(2 / 3)
    assert s.slot_recall == pytest.approx(2 / 3)
    assert s.slot_f1 == pytest.approx(2 / 3)
    assert s.intent_accuracy == 0.5
    assert s.frame_accuracy == 0.0  # first has a wrong span, second a wrong intent
    perfect = score(["A"], [["B-x", "I-x"]], ["A"], [["B-x", "I-x"]])
    assert perfect.slot_f1 == perfect.frame_accuracy == 1.0


def test_calibration_error() -> None:
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.25, 0.25])
    correct = np.array([1, 1, 1, 0, 0, 0])
    # bin 0.9: accuracy .75 vs .9 (weight 4/6); bin 0.25: 0 vs .25 (weight 2/6)
    # the frame confidence's binning (nlu.train.frame_ece): ten equal-width bins, outcomes first
    ece = expected_calibration_error(correct, confidence, n_bins=10, strategy="uniform")
    assert ece == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.25)


def test_read_split(tmp_path) -> None:
    folder = tmp_path / "valid"
    folder.mkdir()
    (folder / "seq.in").write_text("play queen \nadd this to chill\n")
    (folder / "seq.out").write_text("O B-artist\nO O O B-playlist\n")
    (folder / "label").write_text("PlayMusic\nAddToPlaylist\n")
    got = read_split("valid", tmp_path)
    assert got[0] == Utterance(("play", "queen"), ("O", "B-artist"), "PlayMusic")
    assert got[1].tags[-1] == "B-playlist"
    (folder / "seq.out").write_text("O B-artist\nO O B-playlist\n")
    with pytest.raises(SegueError, match=r"seq\.in line 2"):
        read_split("valid", tmp_path)
    with pytest.raises(SegueError, match="held-out"):
        read_split("test", tmp_path)


VOCAB = Vocabulary(
    tracks=("Bohemian Rhapsody", "Black Parade"),
    artists=("Queen", "Etta James"),
    albums=("A Night at the Opera",),
    genres=("rock", "hip hop"),
)


def test_generated_utterances_are_consistent_and_reproducible() -> None:
    first = generate(VOCAB, per_intent=40, seed=1)
    assert first == generate(VOCAB, per_intent=40, seed=1)
    assert first != generate(VOCAB, per_intent=40, seed=2)
    assert {u.intent for u in first} == set(TEMPLATES)
    for u in first:
        assert len(u.words) == len(u.tags)
        assert all(t == "O" or t[:2] in ("B-", "I-") for t in u.tags)
        # every I- continues a chunk of its own type
        for prev, tag in zip(("O", *u.tags), u.tags, strict=False):
            if tag.startswith("I-"):
                assert prev[2:] == tag[2:]
        assert all(w == w.lower() for w in u.words)
    # artist spans are names from the vocabulary, possibly misspelt or shortened
    artists = [
        " ".join(w for w, t in zip(u.words, u.tags, strict=True) if t.endswith("-artist"))
        for u in first
        if any(t == "B-artist" for t in u.tags)
    ]
    assert artists
    close = [
        a for a in artists if min(Levenshtein.distance(a, n) for n in ("queen", "etta james")) <= 4
    ]
    assert len(close) == len(artists)


def test_call_schemas_reject_bad_calls() -> None:
    ok = validate_call({"name": "addToPlaylist", "item": {"text": "this"}, "playlist": "gym"})
    assert ok.name == "addToPlaylist"
    with pytest.raises(ValidationError, match="playlist"):
        validate_call({"name": "addToPlaylist", "item": {"text": "this"}})
    with pytest.raises(ValidationError):
        validate_call({"name": "controlPlayback", "action": "explode"})
    with pytest.raises(ValidationError):
        validate_call({"name": "setFocusMode", "on": True, "volume": 11})
    with pytest.raises(ValidationError):
        validate_call({"name": "launchRockets"})


def _catalog() -> list[Item]:
    def item(i: str, kind: ItemKind, title: str, artist: str | None = None) -> Item:
        return Item(id=i, kind=kind, title=title, artist_id=artist, genres=("rock",))

    return [
        item("a-queen", ItemKind.ARTIST, "Queen"),
        item("a-qotsa", ItemKind.ARTIST, "Queens of the Stone Age"),
        item("a-etta", ItemKind.ARTIST, "Etta James"),
        item("t-bohemian", ItemKind.TRACK, "Bohemian Rhapsody", "a-queen"),
        item("t-bohemian-cover", ItemKind.TRACK, "Bohemian Rhapsody", "a-etta"),
        item("t-rhapsody", ItemKind.TRACK, "Rhapsody in Blue", "a-etta"),
        item("t-blind", ItemKind.TRACK, "I'd Rather Go Blind", "a-etta"),
        item("t-somebody", ItemKind.TRACK, "Somebody to Love", "a-queen"),
    ]


def test_linking_finds_misspelt_and_partial_names() -> None:
    plays = {"t-bohemian": 1000, "t-bohemian-cover": 10, "a-queen": 500, "a-qotsa": 900}
    index = EntityIndex(_catalog(), plays)
    best = index.link("bohemain rapsody", ["track"])[0]
    assert best.item_id == "t-bohemian"  # the popular one of two equal titles
    assert 0.8 < best.match < 1.0
    # the listener's history outweighs popularity between equal titles
    mine = index.link("bohemian rhapsody", ["track"], history={"t-bohemian-cover"})
    assert mine[0].item_id == "t-bohemian-cover" and mine[0].in_history
    # a right spelling beats a more popular partial match
    assert index.link("queen", ["artist"])[0].item_id == "a-queen"
    assert index.link("rather go blind", ["track"])[0].item_id == "t-blind"
    assert index.link("somebody to love", ["track"], artist_id="a-queen")[0].score > 1.0
    assert index.link_artist_work("bohemian rapsody", ["track"], "a-etta")[0].item_id == (
        "t-bohemian-cover"
    )
    assert index.link("zzzzqqq", ["track"]) == []
    assert index.link_genre("rok") == "rock"


def test_real_snips_splits() -> None:
    from segue.nlu.snips import DEFAULT_ROOT

    if not DEFAULT_ROOT.is_dir():
        pytest.skip(f"SNIPS not found at {DEFAULT_ROOT} (../shared/datasets)")
    train, valid = read_split("train"), read_split("valid")
    assert (len(train), len(valid)) == (13_084, 700)
    assert len({u.intent for u in train}) == 7
    for u in valid:
        spans(u.tags)  # every tag is O, B-X or I-X
    # the tagger and the data agree on words: SNIPS text is already in normal form
    # (a few train titles keep a curly apostrophe, which requests have split: "ain’t")
    assert all(words_of(" ".join(u.words)) == list(u.words) for u in valid)
    same = sum(words_of(" ".join(u.words)) == list(u.words) for u in train)
    assert same >= 0.995 * len(train)
