"""Tuned settings kept with the data directory (``<data_dir>/tuned.json``).

``segue tune`` writes one entry per model: the chosen settings, their validation score, the
defaults' score, when, and a fingerprint of the data they were chosen on. ``segue train``,
``segue evaluate`` and the daily flow build a model from its entry when there is one and from
the defaults when there is none, so the Last.fm-tuned defaults only stand where nothing was
tuned for this data. The file lives beside the data, not in the code, because good settings
belong to a dataset: the same code serves Last.fm and a ratings log with different ones.

A fingerprint that no longer matches the data is not an error — the store grows every day and
settings chosen last week still beat the defaults — but :func:`stale` says so, and the
commands print it, so that an operator knows when to tune again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segue.dataset import Interactions
from segue.errors import SegueError
from segue.models.names import model_spec

TUNED_FILE = "tuned.json"


def tuned_path(data_dir: Path) -> Path:
    return Path(data_dir) / TUNED_FILE


def data_fingerprint(data: Interactions) -> str:
    """A short hash of who interacted with what (ids and pairs, not the weights)."""
    matrix = data.matrix().tocsr()
    digest = hashlib.sha256()
    digest.update(f"{data.n_users}x{data.n_items}:{matrix.nnz}".encode())
    digest.update(np.ascontiguousarray(matrix.indptr, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(matrix.indices, dtype=np.int64).tobytes())
    for ids in (data.users, data.items):
        digest.update("\x1f".join(map(str, ids.ids[:1000])).encode())
    return digest.hexdigest()[:16]


def load_tuned(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every model's entry (``{}`` when nothing was tuned); a broken file is one line."""
    path = tuned_path(data_dir)
    if not path.is_file():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        models = body["models"]
        if not isinstance(models, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("params"), dict) for e in models.values()
        ):
            raise ValueError("entries need a params object")
    except (ValueError, KeyError, TypeError) as exc:
        raise SegueError(
            f"{path} is not a tuned-settings file ({exc}); delete it or run `segue tune` again"
        ) from None
    return models


def tuned_params(data_dir: Path) -> dict[str, dict[str, Any]]:
    """``{model: settings}`` for every tuned model, what the builders take (hybrid included)."""
    return with_hybrid({name: entry["params"] for name, entry in load_tuned(data_dir).items()})


def with_hybrid(params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``params`` plus the hybrid's: its tuned components, so it combines the tuned models.

    The hybrid is not searched itself (it learns its weights on held-out data when it fits),
    but a hybrid of default components would undo the tuning of the models it is made of.
    """
    out = {name: dict(values) for name, values in params.items()}
    if "hybrid" not in out:
        components = model_spec("hybrid").factory().params()["components"]
        inner = {c: out[c] for c in components if c in out}
        if inner:
            out["hybrid"] = {"component_params": inner}
    return out


def save_tuned(data_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    """Merge ``entries`` into the file (other models' entries kept), atomically."""
    models = load_tuned(data_dir)
    models.update({name: dict(entry) for name, entry in entries.items()})
    path = tuned_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"version": 1, "models": models}, indent=2) + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def tuned_entry(
    params: Mapping[str, Any],
    *,
    score: float,
    default_score: float,
    metric: str,
    trials: int,
    fingerprint: str,
    budget_s: float,
    seed: int,
) -> dict[str, Any]:
    """One model's entry as the file keeps it."""
    return {
        "params": dict(params),
        "validation_score": round(float(score), 6),
        "default_score": round(float(default_score), 6),
        "metric": metric,
        "trials": int(trials),
        "budget_s": float(budget_s),
        "seed": int(seed),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_fingerprint": fingerprint,
    }


def stale(entries: Mapping[str, Mapping[str, Any]], data: Interactions) -> list[str]:
    """Models whose settings were chosen on other data than ``data``."""
    current = data_fingerprint(data)
    return [n for n, e in entries.items() if e.get("data_fingerprint") != current]
