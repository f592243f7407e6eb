"""Issue 23's request suite: the share of requests answered with the right call or the right
question, queues built for names under the link threshold, and tracebacks.

    nice .venv/bin/python benchmarks/bench_requests.py [--model DIR] [--generated 600]

Runs :func:`segue.jobs.ask.answer_query` (what ``POST /v1/query`` and ``segue ask`` run) over
the default synthetic world's catalog (seed 7, every kind, in a SQLite store of its items)
for the generated cases (names the catalog lacks drawn from Last.fm's artists when
``../shared/datasets/lastfm-2k`` is there) and ``tests/data/requests_hand.jsonl``.

The model: ``--model DIR`` (a ``nlu/joint`` checkpoint), else the shipped path
``segue-data/nlu/joint`` when a model was trained there, else a small model trained here
(two MiniLM layers, one epoch on requests generated from the catalog; about a minute) — the
figures then say so. ``--calibrate`` refits the link model (:mod:`segue.nlu.link_score`) and
prints its coefficients, threshold and validation figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LASTFM = ROOT.parent / "shared" / "datasets" / "lastfm-2k" / "artists.dat"
HAND = ROOT / "tests" / "data" / "requests_hand.jsonl"


def small_model(out: Path, items: list) -> Path:
    """Two MiniLM layers, one epoch on requests generated from the catalog's names."""
    from segue.models.text import model_path
    from segue.nlu.generate import Vocabulary, generate
    from segue.nlu.train import TrainConfig, train

    vocab = Vocabulary.from_items(items)
    config = TrainConfig(epochs=1, batch_size=32, layers=2, threads=1, warmup=0.1)
    train(generate(vocab, 60, 0), generate(vocab, 10, 1), model_path(), config, out=out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an nlu/joint checkpoint folder")
    parser.add_argument("--generated", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--show-wrong", type=int, default=15)
    args = parser.parse_args()

    from segue.data.model import ItemKind
    from segue.jobs.ask import answer_query
    from segue.models.text import model_path
    from segue.nlu.corpus import synthetic_items
    from segue.nlu.generate import lastfm_artist_names
    from segue.nlu.link_score import LINK_THRESHOLD, fit_link_model
    from segue.nlu.linking import EntityIndex
    from segue.nlu.parser import Parser
    from segue.nlu.request_suite import generate_cases, judge, read_cases
    from segue.nlu.tagger import Tagger, serving_precision
    from segue.store import open_store

    items = synthetic_items()
    absent = lastfm_artist_names(LASTFM) if LASTFM.is_file() else []
    if args.calibrate:
        fit = fit_link_model(items, n=3000, seed=0)
        print(f"link model on the synthetic catalog: {fit}")
        if absent:
            print(f"  with Last.fm artists as absent names: {fit_link_model(items, absent=absent)}")
    folder = args.model
    what = None
    if folder is None and (ROOT / "segue-data" / "nlu" / "joint").is_dir():
        folder, what = ROOT / "segue-data" / "nlu" / "joint", "the shipped model (segue-data)"
    tmp = Path(tempfile.mkdtemp(prefix="segue-requests-"))
    if folder is None:
        started = time.perf_counter()
        folder = small_model(tmp / "joint", items)
        spent = time.perf_counter() - started
        what = f"a small model trained here ({spent:.0f} s): no trained model found"
    what = what or str(folder)
    tagger = Tagger.load(folder, model_path(), precision=serving_precision(), threads=1)
    with open_store(f"sqlite:///{tmp / 'segue.sqlite'}") as store:
        store.upsert_items(items)
        index = EntityIndex(items, {}, kinds=tuple(ItemKind))
        parse = Parser(tagger, index)
        cases = [
            *generate_cases(items, args.generated, args.seed, absent),
            *(read_cases(HAND) if HAND.is_file() else []),
        ]
        verdicts = []
        started = time.perf_counter()
        for case in cases:
            answer, error = None, None
            try:
                answer = answer_query(store, parse, case.text)
            except Exception as exc:
                error = exc
            verdicts.append(judge(case, answer, error, LINK_THRESHOLD))
        seconds = time.perf_counter() - started
    n = len(cases)
    right = sum(v.right for v in verdicts)
    print(f"model: {what}")
    print(
        f"{n} requests ({n - len(read_cases(HAND)) if HAND.is_file() else n} generated, "
        f"{len(read_cases(HAND)) if HAND.is_file() else 0} hand-written) in {seconds:.1f} s"
    )
    print(f"right call or right question: {right}/{n} = {right / n:.2%}")
    print(f"queues built below the threshold: {sum(v.queue_below_threshold for v in verdicts)}")
    print(f"tracebacks: {sum(v.traceback is not None for v in verdicts)}")
    groups: Counter[str] = Counter()
    rights: Counter[str] = Counter()
    for case, v in zip(cases, verdicts, strict=True):
        key = case.group or case.expect
        groups[key] += 1
        rights[key] += v.right
    for key in sorted(groups):
        print(f"  {key:12s} {rights[key]:4d}/{groups[key]:<4d} {rights[key] / groups[key]:.1%}")
    wrong = [(c, v) for c, v in zip(cases, verdicts, strict=True) if not v.right]
    for case, v in wrong[: args.show_wrong]:
        print(
            f"  wrong: {case.text!r} expected {case.expect} {case.title or ''} got {v.outcome}"
            f"{' ' + v.traceback if v.traceback else ''}"
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
