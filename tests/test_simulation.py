"""The closed-loop listener simulator: listeners react the way its docstring says (position
bias, fatigue, coming back when satisfied), the loop is reproducible and its coins common
across arms, a recommender that knows tastes earns more than popularity, and an experiment
run on it is analysed against the simulator's truth — through `segue simulate` too."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as sps

from segue.data.synth import SynthParams, generate_world
from segue.data.synth.world import World
from segue.errors import SegueError
from segue.experiments.assignment import position
from segue.experiments.stats import obrien_fleming_bounds
from segue.jobs.simulate import PER_LISTENER, simulate_experiment
from segue.models.names import model_spec
from segue.simulation.listeners import Listeners, ReactionParams
from segue.simulation.loop import run_loop, tracks_of

PARAMS = SynthParams(
    seed=4,
    n_users=600,
    n_tracks=1_000,
    n_events=60_000,
    start_date=dt.date(2024, 1, 1),
    end_date=dt.date(2024, 3, 1),
)


@cache
def _world() -> World:
    return generate_world(PARAMS)


def _favourites(world: World, users: np.ndarray, k: int) -> np.ndarray:
    """Each listener's k best tracks by the world's truth."""
    tracks = tracks_of(world)
    z = world.truth.standardized_affinity(users[:, None], tracks[None, :])
    return tracks[np.argsort(-z, axis=1)[:, :k]]


def test_the_top_of_a_list_is_played_more_than_its_bottom() -> None:
    world, params = _world(), ReactionParams()
    listeners = Listeners(world, params, days=3, seed=1)
    users = np.arange(len(world.user_ids))
    best = _favourites(world, users, params.k)
    same = np.repeat(best[:, :1], params.k, axis=1)  # the same track in every position
    outcome = listeners.react(0, users, same)
    by_position = outcome.played.mean(axis=0)
    assert by_position[0] > 1.5 * by_position[-1]


def test_showing_the_same_tracks_again_tires_listeners() -> None:
    world, params = _world(), ReactionParams()
    listeners = Listeners(world, params, days=6, seed=2)
    users = np.arange(len(world.user_ids))
    lists = _favourites(world, users, params.k)
    rates = [listeners.react(day, users, lists).played.mean() for day in range(6)]
    assert rates[-1] < 0.7 * rates[0]
    fresh = Listeners(world, params, days=6, seed=2)  # same coins, never shown before
    assert fresh.react(5, users, lists).played.mean() > rates[-1]


def test_satisfied_listeners_come_back_more_often() -> None:
    world, params = _world(), ReactionParams()
    listeners = Listeners(world, params, days=2, seed=3)
    users = np.arange(len(world.user_ids))
    half = users < len(users) // 2
    listeners.satisfaction[half] = 0.6
    listeners.satisfaction[~half] = 0.0
    visitors = listeners.visitors(1)
    assert np.isin(users[half], visitors).mean() > np.isin(users[~half], visitors).mean() + 0.2


def test_the_loop_is_reproducible_and_taste_beats_popularity() -> None:
    world = _world()
    history = world.events()
    everyone = np.zeros(len(world.user_ids), dtype=np.int64)
    a = run_loop(world, history, ["popularity"], everyone, 4, seed=5)
    again = run_loop(world, history, ["popularity"], everyone, 4, seed=5)
    assert np.array_equal(a.conversions, again.conversions)
    assert np.array_equal(a.active_days, again.active_days)
    b = run_loop(world, history, ["als"], everyone, 4, seed=5)
    # common coins: on day 1 (same starting satisfaction) the same listeners visit either way
    day_one = [run_loop(world, history, [m], everyone, 1, seed=5) for m in ("popularity", "als")]
    assert np.array_equal(day_one[0].exposures, day_one[1].exposures)
    assert b.conversions.sum() > 2 * a.conversions.sum()
    assert b.minutes.sum() > a.minutes.sum()
    with pytest.raises(SegueError, match="arm index"):
        run_loop(world, history, ["als"], everyone + 1, 1)
    with pytest.raises(SegueError, match="unknown model"):
        run_loop(world, history, ["nope"], everyone, 1)


def test_identical_arms_are_one_model_serving_one_policy() -> None:
    """A real A/A: one model object, fitted once a day on everyone's plays, serves both arms,
    so the run is the everyone-in-one-arm run whatever the split; two models fit twice."""
    world = _world()
    history = world.events()
    fitted: list[str] = []

    def fit(name: str, counts: sp.csr_matrix) -> object:
        fitted.append(name)
        spec = model_spec(name)
        return spec.factory().fit(spec.weighting.apply(counts.tocsr()))

    ids = [str(u) for u in world.user_ids]
    split = np.array([position("aa", u) < 0.5 for u in ids], dtype=np.int64)
    aa = run_loop(world, history, ["popularity", "popularity"], split, 3, seed=8, fit=fit)
    assert fitted == ["popularity"] * 3
    alone = run_loop(world, history, ["popularity"], np.zeros_like(split), 3, seed=8)
    for field in ("minutes", "conversions", "plays", "active_days", "last_visit", "exposures",
                  "daily_minutes", "daily_conversions", "daily_visits"):  # fmt: skip
        assert np.array_equal(getattr(aa, field), getattr(alone, field)), field
    fitted.clear()
    ab = run_loop(world, history, ["popularity", "als"], split, 2, seed=8, fit=fit)
    assert fitted == ["popularity", "als"] * 2
    assert not np.array_equal(ab.conversions, alone.conversions)
    # the daily records add up to the run's totals
    assert np.array_equal(aa.daily_conversions.sum(axis=0), aa.conversions)
    assert np.array_equal(aa.daily_visits.sum(axis=0), aa.active_days)


def test_an_aa_experiment_has_zero_truth_and_daily_looks_that_accumulate() -> None:
    report = simulate_experiment(PARAMS, "popularity", "popularity", days=3, seed=7)
    assert all(m.truth == 0.0 for m in report.metrics)  # same policy, same coins
    by_name = {m.name: m for m in report.metrics}
    assert set(report.looks) == {name for name, _ in PER_LISTENER}
    for name, looks in report.looks.items():
        assert len(looks) == 3 and looks[-1] == by_name[name].effect
        assert by_name[name].always_valid_p >= by_name[name].effect.p
        # the run's days are the plan: the last look is its end, all of alpha spent
        seq = by_name[name].sequential
        assert seq is not None and (seq.day, seq.planned_days) == (3, 3)
        assert seq.spent == pytest.approx(0.05) and [d for d, _, _ in seq.path] == [1, 2, 3]
        assert seq.path[-1][2] == pytest.approx(float(obrien_fleming_bounds([1 / 3, 2 / 3, 1])[-1]))
        assert seq.z == pytest.approx(np.sign(looks[-1].difference) * sps.norm.isf(looks[-1].p / 2))
    assert by_name["conversions per list shown"].sequential is None  # not looked at daily
    days = report.looks["active days per listener"]
    # cumulative: one look per day, so at most d active days per listener by day d; growing
    assert 0 < days[0].control <= 1 and days[0].control < days[1].control < days[2].control
    assert "| always-valid p | O'Brien–Fleming |" in report.markdown()
    assert "peeking daily with a plan" in report.markdown()


def test_an_experiment_on_the_simulator_finds_the_true_effect() -> None:
    report = simulate_experiment(PARAMS, "popularity", "als", days=4, seed=6)
    by_name = {m.name: m for m in report.metrics}
    conversions = by_name["conversions per listener (plays >= 30 s)"]
    assert conversions.truth > 0 and conversions.effect.difference > 0
    assert conversions.adjusted_p < 0.01 and conversions.covered
    # the daily looks end at the one-shot estimate, and a strong effect survives peeking
    assert report.looks[conversions.name][-1] == conversions.effect
    assert conversions.effect.p <= conversions.always_valid_p < 0.01
    assert conversions.sequential is not None and conversions.sequential.crossed
    assert by_name["listening minutes per listener"].covered
    assert report.split is not None and not report.split.mismatch
    text = report.markdown()
    assert "| conversions per list shown |" in text and "as designed" in text
    with pytest.raises(SegueError, match="share"):
        simulate_experiment(PARAMS, "popularity", "als", days=1, share=1.0)


def test_segue_simulate_prints_the_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    report = tmp_path / "sim.md"
    run = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "simulate",
         "--days", "2", "--users", "200", "--tracks", "300", "--events", "10000",
         "--report", str(report)],
        capture_output=True, text=True, env={**env, "COLUMNS": "200"}, cwd=tmp_path,
        timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "# Simulated experiment: als vs popularity" in run.stdout
    assert report.read_text(encoding="utf-8").count("\n| ") >= 6  # header + five metrics
    bad = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "simulate",
         "--treatment", "nope", "--days", "1", "--users", "50", "--tracks", "50",
         "--events", "500"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "unknown model 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_an_off_policy_estimate_finds_the_simulated_ctr() -> None:
    from segue.simulation.counterfactual import off_policy_check

    world = _world()
    for rank in (0, 5):
        check = off_policy_check(world, world.events(), target_rank=rank, seed=1)
        assert 0 < check.matched < 0.9  # the logging policy explores
        assert abs(check.ips - check.truth) < 3 * check.ips_se, check
        assert check.truth > 0
