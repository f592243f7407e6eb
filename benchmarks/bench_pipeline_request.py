"""Where one served pipeline request spends its time: retrieval per generator, features,
the ranker and the rest of ``recommend``, one listener at a time as `segue serve` asks.

Loads a saved pipeline (``bench_serving.py build --model pipeline`` leaves one under
/tmp/segue-bench-serving/data/models/pipeline) and times ``recommend(k=10)`` for random
listeners, each stage by wrapping the pipeline's own methods. Prints mean and p50/p99 ms.

    .venv/bin/python benchmarks/bench_pipeline_request.py
    .venv/bin/python benchmarks/bench_pipeline_request.py --model-dir DIR --listeners 300
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from segue.models.staged import pipeline as pipeline_module
    from segue.models.staged import retrieval as retrieval_module
    from segue.models.staged.ann import VectorIndex
    from segue.registry.trained import load_trained_at

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, default=Path("/tmp/segue-bench-serving/data/models/pipeline")
    )
    parser.add_argument("--listeners", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # as `segue serve` runs each worker (segue.api.server): one BLAS / OpenMP thread
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    started = time.perf_counter()
    model = load_trained_at(args.model_dir, "pipeline").model
    print(f"loaded in {time.perf_counter() - started:.1f} s; generators {model.gens.active}")
    spent: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            spent[name].append(1000 * (time.perf_counter() - t))
            return out

        return wrapper

    for name, generator in model.gens.models.items():
        generator.score = timed(f"retrieve: {name}.score", generator.score)
    model.gens.retrieve = timed("retrieve (all)", model.gens.retrieve)
    VectorIndex.search = timed("retrieve: vector index search", VectorIndex.search)
    retrieval_module.top_k = timed("retrieve: top_k (dense)", retrieval_module.top_k)
    if hasattr(retrieval_module, "_unseen_stats"):  # older code had none
        stats = retrieval_module._unseen_stats
        retrieval_module._unseen_stats = timed("retrieve: row stats", stats)
    model._scores = timed("scores (ranker + dense list)", model._scores)
    pipeline_module.pair_features = timed("features", pipeline_module.pair_features)
    model.ranker.predict = timed("ranker", model.ranker.predict)
    n_users = model._fitted().shape[0]
    users = np.random.default_rng(args.seed).integers(0, n_users, args.listeners + 20)
    for u in users[:20]:  # warm-up: caches, faiss, LightGBM
        model.recommend(np.array([u]), k=10)
    spent.clear()
    for u in users[20:]:
        t = time.perf_counter()
        model.recommend(np.array([u]), k=10)
        spent["recommend (whole)"].append(1000 * (time.perf_counter() - t))
    print(f"{'stage':32s} {'mean':>7s} {'p50':>7s} {'p99':>7s}  ms over {args.listeners}")
    for name, values in sorted(spent.items(), key=lambda kv: -np.mean(kv[1])):
        v = np.array(values)
        print(f"{name:32s} {v.mean():7.2f} {np.percentile(v, 50):7.2f} {np.percentile(v, 99):7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
