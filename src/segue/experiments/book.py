"""The experiments of one installation, kept in a JSON file beside the model registry.

Serving processes read the file when it changes (one ``stat`` per request) and assign each
listener with :class:`~segue.experiments.assignment.Assigner`; the CLI writes it (create,
start, stop) atomically, so a reader sees the old file or the new one. A variant's
``settings`` are what it serves with: a registry ``version`` of the served model (``v0003``:
an older or a candidate version beside production) and pipeline settings a list request
itself can set — ``max_per_artist``, ``new_item_share`` and ``surface`` — and the share of
requests whose top slots explore (``explore_share``, ``segue.serving.explore``) and the
next-best-action policy's thresholds (``nba_min_expected_value``, ``nba_min_probability``);
they override the request's own values for the listeners in that variant, which is what
makes the arms differ.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segue.errors import SegueError
from segue.experiments.assignment import Assigner, Experiment, Variant

DRAFT, RUNNING, STOPPED = "draft", "running", "stopped"
#: The file's name in the data directory.
EXPERIMENTS_FILE = "experiments.json"
#: Pipeline settings a variant may set, with the check each value must pass.
SETTINGS: dict[str, tuple[type, Any]] = {
    "max_per_artist": (int, lambda v: 1 <= v <= 100),
    "new_item_share": (float, lambda v: 0.0 <= v <= 0.5),
    "surface": (str, lambda v: v in ("home", "radio", "discovery")),
    "version": (str, lambda v: re.fullmatch(r"v\d{4,}", v) is not None),
    "explore_share": (float, lambda v: 0.0 <= v <= 0.2),
    # next best action: the rules of the policy the listener's answers follow
    "nba_min_expected_value": (float, lambda v: 0.0 <= v <= 1.0),
    "nba_min_probability": (float, lambda v: 0.0 <= v <= 1.0),
}


def parse_settings(text: str, where: str) -> dict[str, Any]:
    """``key=value,key=value`` into checked settings (one line naming what is wrong)."""
    raw: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise SegueError(
                f"{where}: {part!r} is not a setting; known: "
                + ", ".join(f"{k}=…" for k in SETTINGS)
            )
        raw[key] = value
    return check_settings(raw, where)


def check_settings(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Settings given as a mapping (the API's JSON, or parsed text), each converted to its
    type and checked against its range; one line naming what is wrong."""
    out: dict[str, Any] = {}
    for key, given in raw.items():
        if key not in SETTINGS:
            raise SegueError(
                f"{where}: {key!r} is not a setting; known: "
                + ", ".join(f"{k}=…" for k in SETTINGS)
            )
        kind, valid = SETTINGS[key]
        if isinstance(given, bool) or not isinstance(given, str | int | float):
            raise SegueError(f"{where}: {key} takes a {kind.__name__}, got {given!r}")
        try:
            if kind is int and isinstance(given, float) and not given.is_integer():
                raise ValueError(given)  # 2.7 artists per list is not 2
            value = kind(given)
        except (ValueError, OverflowError):  # "abc", or int(float("inf"))
            raise SegueError(f"{where}: {key} takes a {kind.__name__}, got {given!r}") from None
        if (isinstance(value, float) and value != value) or not valid(value):  # NaN too
            raise SegueError(f"{where}: {key}={given} is out of range")
        out[key] = value
    return out


def new_plan(
    experiment_id: str,
    variants: Sequence[tuple[str, float | None, Mapping[str, Any]]],
    *,
    layer: str = "default",
    start: float = 0.0,
    end: float = 1.0,
    days: int | None = None,
) -> Plan:
    """A draft from ``(name, share or None, settings)`` per variant, the first the control;
    shares default to equal; ``days``: the planned duration, which lets the report test
    daily looks against O'Brien–Fleming boundaries (None: no plan). The one way the CLI and
    the API define an experiment."""
    days = check_days(days, "the planned duration")
    names = [name.strip() for name, _, _ in variants]
    given = [share for _, share, _ in variants]
    if any(s is None for s in given) and not all(s is None for s in given):
        raise SegueError("give every variant a share, or none (equal shares)")
    shares = [1 / len(names)] * len(names) if given and given[0] is None else given
    settings = {
        name: check_settings(raw, f"variant {name!r}")
        for name, (_, _, raw) in zip(names, variants, strict=True)
    }
    return Plan(
        Experiment(
            experiment_id,
            tuple(Variant(n, float(s)) for n, s in zip(names, shares, strict=True)),
            layer=layer,
            start=start,
            end=end,
        ),
        settings,
        days=days,
    )


#: The longest planned duration accepted, in days (a year of daily looks).
MAX_DAYS = 366


def check_days(days: Any, where: str) -> int | None:
    """A planned duration: a whole number of days in [1, MAX_DAYS], or None (no plan)."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or days != int(days):
        raise SegueError(f"{where}: a whole number of days, got {days!r}")
    if not 1 <= int(days) <= MAX_DAYS:
        raise SegueError(f"{where}: between 1 and {MAX_DAYS} days, got {days}")
    return int(days)


@dataclass
class Plan:
    """One experiment as run: assignment, each variant's settings, its status and times, and
    its planned duration in days (``days``; None in books written before there was one, and
    for experiments run without a plan)."""

    experiment: Experiment
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = DRAFT
    started_ms: int | None = None
    stopped_ms: int | None = None
    days: int | None = None

    def to_json(self) -> dict[str, Any]:
        e = self.experiment
        return {
            "id": e.id,
            "layer": e.layer,
            "start": e.start,
            "end": e.end,
            "ramp": [list(r) for r in e.ramp],
            "salt": e.hash_salt,
            "variants": [
                {"name": v.name, "share": v.share, "settings": self.settings.get(v.name, {})}
                for v in e.variants
            ],
            "status": self.status,
            "started_ms": self.started_ms,
            "stopped_ms": self.stopped_ms,
            "days": self.days,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        experiment = Experiment(
            id=data["id"],
            variants=tuple(Variant(v["name"], float(v["share"])) for v in data["variants"]),
            layer=data.get("layer", "default"),
            start=float(data.get("start", 0.0)),
            end=float(data.get("end", 1.0)),
            ramp=tuple((int(t), float(f)) for t, f in data.get("ramp", [])),
            salt=data.get("salt", ""),
        )
        settings = {v["name"]: dict(v.get("settings", {})) for v in data["variants"]}
        days = check_days(data.get("days"), f"experiment {experiment.id!r}'s days")
        return cls(
            experiment,
            settings,
            data["status"],
            data.get("started_ms"),
            data.get("stopped_ms"),
            days,
        )


class ExperimentBook:
    """The file of experiments (``experiments.json``) and the global holdout share."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._cached: tuple[Assigner, dict[str, Plan]] = (Assigner(), {})

    # -- reading --------------------------------------------------------------------------
    def _read(self) -> tuple[list[Plan], float]:
        if not self.path.exists():
            return [], 0.0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Plan.from_json(p) for p in data.get("experiments", [])], float(
                data.get("holdout", 0.0)
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SegueError(f"{self.path}: not a readable experiments file ({exc})") from exc

    def plans(self) -> list[Plan]:
        return self._read()[0]

    def get(self, experiment_id: str) -> Plan:
        for plan in self.plans():
            if plan.experiment.id == experiment_id:
                return plan
        known = ", ".join(p.experiment.id for p in self.plans()) or "none yet"
        raise SegueError(f"no experiment {experiment_id!r} (known: {known})")

    def running(self) -> tuple[Assigner, dict[str, Plan]]:
        """The assigner over the running experiments, re-read only when the file changed."""
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            seen = (0.0, 0)
        with self._lock:
            if seen != self._seen:
                plans, holdout = self._read()
                live = [p for p in plans if p.status == RUNNING]
                assigner = Assigner([p.experiment for p in live], holdout_share=holdout)
                self._cached = (assigner, {p.experiment.id: p for p in live})
                self._seen = seen
            return self._cached

    def settings_for(self, user_id: str, now_ms: int) -> tuple[dict[str, str], dict[str, Any]]:
        """(the listener's variants by experiment, the settings those variants serve with)."""
        assigner, plans = self.running()
        if not plans:
            return {}, {}
        assigned = assigner.assign(user_id, now_ms)
        merged: dict[str, Any] = {}
        for experiment_id, variant in sorted(assigned.items()):
            merged.update(plans[experiment_id].settings.get(variant, {}))
        return assigned, merged

    # -- writing --------------------------------------------------------------------------
    def _write(self, plans: list[Plan], holdout: float) -> None:
        Assigner([p.experiment for p in plans if p.status == RUNNING], holdout_share=holdout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {"holdout": holdout, "experiments": [p.to_json() for p in plans]}
        tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def create(self, plan: Plan) -> Plan:
        plans, holdout = self._read()
        if any(p.experiment.id == plan.experiment.id for p in plans):
            raise SegueError(f"experiment {plan.experiment.id!r} exists already")
        for name in plan.settings:
            if name not in {v.name for v in plan.experiment.variants}:
                raise SegueError(f"settings for {name!r}, which is not a variant")
        self._write([*plans, plan], holdout)
        return plan

    def set_status(self, experiment_id: str, status: str, now_ms: int) -> Plan:
        plans, holdout = self._read()
        for plan in plans:
            if plan.experiment.id != experiment_id:
                continue
            allowed = {RUNNING: (DRAFT,), STOPPED: (RUNNING,)}[status]
            if plan.status not in allowed:
                raise SegueError(f"experiment {experiment_id!r} is {plan.status}; cannot {status}")
            plan.status = status
            if status == RUNNING:
                plan.started_ms = now_ms
            else:
                plan.stopped_ms = now_ms
            self._write(plans, holdout)  # refuses to run two that overlap in a layer
            return plan
        raise SegueError(f"no experiment {experiment_id!r}")

    def set_holdout(self, share: float) -> None:
        plans, _ = self._read()
        self._write(plans, share)
