"""Natural-language requests: accuracy on SNIPS valid, robustness to misspelt names, latency.

Reads a checkpoint trained by ``segue nlu train`` (default: ``$SEGUE_DATA_DIR/nlu/joint``) and
prints the figures recorded in docs/benchmarks.md ("Natural-language requests"). Not a test.

    .venv/bin/python benchmarks/bench_nlu.py                      # everything
    .venv/bin/python benchmarks/bench_nlu.py --folder DIR --parts accuracy latency

Parts:
- accuracy: intent accuracy, CoNLL slot F1 and frame accuracy on SNIPS valid (fp32 and the
  int8 serving model), and on the generated valid utterances; calibration error.
- linking: top-1 entity linking on names with one or two random character edits, against the
  synthetic world's catalog (artists; tracks with and without the artist) and Last.fm's 17,632
  artists; plus end-to-end requests ("play <track> by <artist>", both misspelt) through the
  tagger. A name shared by several items counts as right when the top item has that name.
- latency: one request at a time (batch 1, one thread), parse + linking: int8 traced (what
  ``segue ask`` and the API load), int8 eager, fp32 eager.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from segue.config import load_settings
from segue.data.model import ItemKind
from segue.data.synth import SynthParams, generate_world
from segue.jobs.ask import nlu_folder
from segue.models.text import model_path
from segue.nlu.corpus import build_corpus
from segue.nlu.generate import lastfm_artist_names
from segue.nlu.linking import EntityIndex, normalise
from segue.nlu.parser import Parser
from segue.nlu.snips import read_split
from segue.nlu.tagger import LEXICON_WEIGHT, Tagger, serving_precision
from segue.nlu.words import misspell

ROOT = Path(__file__).resolve().parents[1]
LASTFM_ARTISTS = ROOT.parent / "shared" / "datasets" / "lastfm-2k" / "artists.dat"


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def accuracy(folder: Path, world_items: list) -> dict:
    out: dict = {}
    valid = read_split("valid")
    corpus = build_corpus(world_items, lastfm_artists=LASTFM_ARTISTS)
    for name in ("bf16", "int8", "fp32"):
        tagger = Tagger.load(folder, model_path(), precision=name, threads=1)
        out[f"snips_valid_{name}"] = tagger.evaluate(valid).as_dict()
        out[f"generated_valid_{name}"] = tagger.evaluate(corpus.valid_generated).as_dict()
        if name == "fp32":  # what the lexicon and the constrained decoding add
            tagger.lexicon_weight = 0.0
            out["snips_valid_fp32_without_lexicon"] = tagger.evaluate(valid).as_dict()
            tagger.constrained = False
            out["snips_valid_fp32_argmax_without_lexicon"] = tagger.evaluate(valid).as_dict()
            tagger.constrained, tagger.lexicon_weight = True, LEXICON_WEIGHT
    out["calibration"] = tagger.calibration.report | {
        "intent_temperature": tagger.calibration.intent_temperature,
        "slot_temperature": tagger.calibration.slot_temperature,
    }
    out["training"] = {
        k: tagger.info.get(k) for k in ("seconds", "cpu_seconds", "train_size", "config")
    }
    return out


def _top1(index: EntityIndex, names: list[str], kind: str, rng, artist_of=None) -> dict:
    right = {1: 0, 2: 0}
    n = {1: 0, 2: 0}
    for i, name in enumerate(names):
        edits = 1 + i % 2
        typo = misspell(name, rng, edits=edits)
        artist = artist_of(name) if artist_of else None
        found = index.link(typo, [kind], artist_id=artist)
        n[edits] += 1
        right[edits] += bool(found) and normalise(found[0].title) == normalise(name)
    return {
        "n": sum(n.values()),
        "top1": sum(right.values()) / sum(n.values()),
        "top1_1edit": right[1] / n[1],
        "top1_2edits": right[2] / n[2],
    }


def linking(world, folder: Path | None, n: int = 1000) -> dict:
    items = world.items
    log = world.events()
    plays = np.bincount(log.item, weights=log.count, minlength=len(log.item_ids))
    popularity = {str(log.item_ids[i]): float(plays[i]) for i in np.flatnonzero(plays)}
    index = EntityIndex(items, popularity)
    rng = np.random.default_rng(0)
    artists = [i for i in items if i.kind == ItemKind.ARTIST]
    tracks = [i for i in items if i.kind == ItemKind.TRACK]
    pick_a = [artists[j] for j in rng.choice(len(artists), n, replace=False)]
    pick_t = [tracks[j] for j in rng.choice(len(tracks), n, replace=False)]
    out = {"artists_synthetic": _top1(index, [a.title for a in pick_a], "artist", rng)}
    out["tracks_synthetic_no_artist"] = _top1(index, [t.title for t in pick_t], "track", rng)
    by_title = {t.title: t.artist_id for t in pick_t}
    out["tracks_synthetic_with_artist"] = _top1(
        index, [t.title for t in pick_t], "track", rng, artist_of=by_title.get
    )
    if LASTFM_ARTISTS.is_file():
        from segue.data.model import Item

        names = lastfm_artist_names(LASTFM_ARTISTS)
        lastfm = [
            Item(id=f"lfm{i}", kind=ItemKind.ARTIST, title=name)
            for i, name in enumerate(names)
            if normalise(name)
        ]
        lindex = EntityIndex(lastfm)
        chosen = [lastfm[j].title for j in rng.choice(len(lastfm), n, replace=False)]
        out["artists_lastfm"] = _top1(lindex, chosen, "artist", rng)
    if folder is not None:
        out["end_to_end_play_track_by_artist"] = _end_to_end(folder, index, pick_t, rng, n // 2)
    return out


def _end_to_end(folder: Path, index: EntityIndex, tracks, rng, n: int) -> dict:
    """'play <misspelt track> by <misspelt artist>' parsed and linked: is the track right?"""
    tagger = Tagger.load(folder, model_path(), precision=serving_precision(), trace=True, threads=1)
    parser = Parser(tagger, index)
    right = parsed_ok = 0
    for i, track in enumerate(tracks[:n]):
        artist = index.items[index.position[track.artist_id]].title
        text = f"play {misspell(track.title, rng, 1 + i % 2)} by {misspell(artist, rng, 1)}"
        result = parser.parse(text)
        call = result.call
        ok_call = call is not None and call.name == "playMusic" and call.track is not None
        parsed_ok += ok_call
        if ok_call and call.track.title and normalise(call.track.title) == normalise(track.title):
            right += 1
    return {"n": n, "call_with_track": parsed_ok / n, "track_top1": right / n}


REQUESTS = [
    "play bohemain rapsody by queen",
    "add this song to my workout playlist",
    "skip this track",
    "turn on focus mode",
    "play some jazz from the nineties",
    "recommend something like radiohead for this morning",
    "start a station based on the beatles",
    "i don't like this song",
    "what's the weather like in paris tomorrow",
    "play my favourites",
]


def latency(folder: Path, world, repeats: int = 30) -> dict:
    index = EntityIndex(world.items)
    out = {}
    for name, precision, trace in (
        ("bf16+trace", "bf16", True),
        ("int8+trace", "int8", True),
        ("fp32+trace", "fp32", True),
        ("fp32", "fp32", False),
    ):
        tagger = Tagger.load(folder, model_path(), precision=precision, trace=trace, threads=1)
        parser = Parser(tagger, index)
        for text in REQUESTS[:3]:
            parser.parse(text)  # warm up
        times = []
        for _ in range(repeats):
            for text in REQUESTS:
                started = time.perf_counter()
                parser.parse(text)
                times.append((time.perf_counter() - started) * 1000)
        arr = np.array(times)
        out[name] = {
            "n": len(arr),
            "p50_ms": float(np.percentile(arr, 50)),
            "p90_ms": float(np.percentile(arr, 90)),
            "p99_ms": float(np.percentile(arr, 99)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=None, help="checkpoint folder")
    ap.add_argument("--parts", nargs="+", default=["accuracy", "linking", "latency"])
    ap.add_argument("--n", type=int, default=1000, help="names per linking set")
    args = ap.parse_args()
    folder = args.folder or nlu_folder(load_settings())
    world = generate_world(SynthParams())
    results: dict = {"before": _load()}
    if "accuracy" in args.parts:
        results["accuracy"] = accuracy(folder, world.items)
    if "linking" in args.parts:
        results["linking"] = linking(world, folder, args.n)
    if "latency" in args.parts:
        results["latency_before"] = _load()
        results["latency"] = latency(folder, world)
    results["after"] = _load()
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
