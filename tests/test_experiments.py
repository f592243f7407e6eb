"""Experiments: assignment by salted hashes (stable, by share, exclusive within a layer,
independent across layers, ramps that only add listeners, a global holdout) and the
statistics of the analysis, each checked by simulation against the truth it estimates:
intervals that cover at their level, tests whose false-positive rate is their alpha, and the
failure the textbook shortcut has on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from segue.errors import SegueError
from segue.experiments.assignment import Assigner, Experiment, Variant, position
from segue.experiments.stats import (
    Effect,
    cuped,
    delta_ratio,
    exposure_ratio,
    holm,
    msprt_p,
    newcombe,
    obrien_fleming_bounds,
    obrien_fleming_spent,
    sample_ratio,
    welch,
)
from segue.jobs.experiments import sequential_decision

IDS = [f"listener-{i}" for i in range(40_000)]
AB = (Variant("control", 0.5), Variant("treatment", 0.5))


# -- assignment ------------------------------------------------------------------------------
def test_positions_are_uniform_stable_and_independent_per_salt() -> None:
    a = np.array([position("one", u) for u in IDS])
    b = np.array([position("two", u) for u in IDS])
    assert np.array_equal(a, [position("one", u) for u in IDS])  # stable
    assert sps.kstest(a, "uniform").pvalue > 0.001
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03  # another salt: another order


def test_variants_follow_their_shares_and_never_change() -> None:
    shares = (Variant("a", 0.2), Variant("b", 0.3), Variant("c", 0.5))
    assigner = Assigner([Experiment("colours", shares)])
    first = [assigner.assign(u, 0).get("colours") for u in IDS]
    counts = {v.name: first.count(v.name) for v in shares}
    for v in shares:
        assert abs(counts[v.name] / len(IDS) - v.share) < 0.01, counts
    later = [assigner.assign(u, 10**12).get("colours") for u in IDS]
    assert first == later


def test_experiments_of_a_layer_exclude_each_other_and_layers_are_independent() -> None:
    left = Experiment("left", AB, layer="home", start=0.0, end=0.5)
    right = Experiment("right", AB, layer="home", start=0.5, end=1.0)
    other = Experiment("ranker", AB, layer="ranking")
    assigner = Assigner([left, right, other])
    seen = [assigner.assign(u, 0) for u in IDS]
    assert not any("left" in s and "right" in s for s in seen)
    assert all(("left" in s) != ("right" in s) for s in seen)  # the layer is fully used
    in_left = np.array(["left" in s for s in seen])
    treated = np.array([s["ranker"] == "treatment" for s in seen])
    table = [[np.sum(in_left & treated), np.sum(in_left & ~treated)],
             [np.sum(~in_left & treated), np.sum(~in_left & ~treated)]]  # fmt: skip
    assert sps.chi2_contingency(table).pvalue > 0.001  # independent across layers
    with pytest.raises(SegueError, match="overlap in layer 'home'"):
        Assigner([left, Experiment("wide", AB, layer="home", start=0.4, end=0.9)])


def test_a_ramp_only_adds_listeners_and_the_holdout_sees_nothing() -> None:
    ramped = Experiment("slow", AB, ramp=((100, 0.1), (200, 0.5), (300, 1.0)))
    assigner = Assigner([ramped], holdout_share=0.05)
    steps = {t: {u for u in IDS if "slow" in assigner.assign(u, t)} for t in (50, 150, 250, 350)}
    assert steps[50] == set()
    assert steps[150] <= steps[250] <= steps[350]
    n = len(IDS) * 0.95
    assert abs(len(steps[150]) / n - 0.1) < 0.01 and abs(len(steps[250]) / n - 0.5) < 0.015
    held = {u for u in IDS if assigner.in_holdout(u)}
    assert abs(len(held) / len(IDS) - 0.05) < 0.005
    assert not held & steps[350] and len(steps[350]) == len(IDS) - len(held)
    # once in, a listener keeps their variant as the ramp grows
    for u in list(steps[150])[:500]:
        assert assigner.assign(u, 150)["slow"] == assigner.assign(u, 350)["slow"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": (Variant("a", 1.0),)}, "at least two variants"),
        ({"variants": (Variant("a", 0.5), Variant("b", 0.6))}, "sum to 1"),
        ({"variants": (Variant("a", 0.5), Variant("a", 0.5))}, "names a variant twice"),
        ({"variants": AB, "start": 0.5, "end": 0.5}, "start < end"),
        ({"variants": AB, "ramp": ((10, 0.5), (20, 0.2))}, "only goes up"),
    ],
)
def test_a_wrong_design_is_refused_with_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(SegueError, match=message):
        Experiment("x", **kwargs)


# -- statistics ------------------------------------------------------------------------------
RNG = np.random.default_rng(20261203)


def _covers(effect, truth: float) -> bool:  # type: ignore[no-untyped-def]
    return effect.low <= truth <= effect.high


def test_welch_covers_the_true_difference_with_unequal_variances_and_sizes() -> None:
    hits, rejections, runs = 0, 0, 1500
    for _ in range(runs):
        a = RNG.normal(10.0, 1.0, 40)
        b = RNG.normal(10.5, 4.0, 400)
        effect = welch(a, b)
        hits += _covers(effect, 0.5)
        rejections += effect.p < 0.05
        assert (effect.p < 0.05) == (not effect.low <= 0 <= effect.high)
    assert 0.93 <= hits / runs <= 0.97
    assert rejections / runs > 0.4  # and it sees the difference (power ~50 % here)


def _clustered_ctr(n: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-listener impressions and clicks, each listener with their own click rate."""
    impressions = RNG.poisson(20, n) + 1
    rates = RNG.beta(ctr * 4, (1 - ctr) * 4, n)  # strong listener heterogeneity
    return RNG.binomial(impressions, rates), impressions


def test_the_delta_method_covers_a_ratio_metric_that_the_per_impression_test_does_not() -> None:
    delta_hits = naive_hits = 0
    runs = 800
    for _ in range(runs):
        ca, ia = _clustered_ctr(2000, 0.1)
        cb, ib = _clustered_ctr(2000, 0.1)
        effect = delta_ratio((ca, ia), (cb, ib))
        delta_hits += _covers(effect, 0.0)
        naive = newcombe((int(ca.sum()), int(ia.sum())), (int(cb.sum()), int(ib.sum())))
        naive_hits += _covers(naive, 0.0)
    assert 0.93 <= delta_hits / runs <= 0.97
    assert naive_hits / runs < 0.85  # impressions as independent trials: far too narrow


def test_newcombe_covers_small_proportions_where_wald_does_not() -> None:
    runs, n, p1, p2 = 3000, 80, 0.02, 0.03
    x1, x2 = RNG.binomial(n, p1, runs), RNG.binomial(n, p2, runs)
    hits = wald = 0
    for a, b in zip(x1, x2, strict=True):
        hits += _covers(newcombe((int(a), n), (int(b), n)), p2 - p1)
        q1, q2 = a / n, b / n
        se = np.sqrt(q1 * (1 - q1) / n + q2 * (1 - q2) / n)
        wald += abs(q2 - q1 - (p2 - p1)) <= 1.96 * se
    assert hits / runs >= 0.93
    assert wald / runs < min(0.94, hits / runs - 0.03)


def test_cuped_keeps_the_effect_and_removes_the_variance_the_pre_period_explains() -> None:
    n, effect, rho = 20_000, 0.3, 0.8
    pre = RNG.normal(0, 1, n)
    post = rho * pre + np.sqrt(1 - rho**2) * RNG.normal(0, 1, n)
    arm = RNG.random(n) < 0.5
    post = post + effect * arm
    adjusted, theta = cuped(post, pre)
    assert abs(theta - rho) < 0.03
    reduction = 1 - adjusted[~arm].var() / post[~arm].var()
    assert abs(reduction - rho**2) < 0.03
    plain, better = welch(post[~arm], post[arm]), welch(adjusted[~arm], adjusted[arm])
    assert _covers(better, effect) and (better.high - better.low) < 0.7 * (plain.high - plain.low)


def test_a_sample_ratio_mismatch_is_flagged_and_a_fair_split_is_not() -> None:
    false_alarms = sum(
        sample_ratio(RNG.multinomial(10_000, [0.5, 0.5]), [0.5, 0.5]).mismatch for _ in range(2000)
    )
    assert false_alarms <= 10  # 0.1 % expected
    assert sample_ratio([5000, 4500], [0.5, 0.5]).mismatch
    assert not sample_ratio([2000, 8000], [0.2, 0.8]).mismatch
    # 5 % of one arm's exposures lost: per-listener exposure counts tell
    exposures = RNG.poisson(RNG.gamma(2.0, 10.0, 10_000))
    arm = RNG.random(10_000) < 0.5
    kept = RNG.binomial(exposures, np.where(arm, 0.95, 1.0))
    assert exposure_ratio(kept[~arm], kept[arm]).mismatch
    assert not exposure_ratio(exposures[~arm], exposures[arm]).mismatch
    # listeners' activity before the experiment explains most of it: a smaller loss shows
    activity = RNG.gamma(0.7, 20.0, 10_000)
    before, during = RNG.poisson(activity), RNG.poisson(activity)
    lost = RNG.binomial(during, np.where(arm, 0.97, 1.0))
    pre = (before[~arm], before[arm])
    assert exposure_ratio(lost[~arm], lost[arm], pre).p < exposure_ratio(lost[~arm], lost[arm]).p


def test_always_valid_p_values_can_be_watched_daily_and_naive_peeking_cannot() -> None:
    runs, days, per_day = 1000, 14, 150
    n = per_day * np.arange(1, days + 1)
    # per run and day, the running sums of each arm's values (A/A: both N(0, 1))
    sum_a = RNG.normal(0, np.sqrt(per_day), (runs, days)).cumsum(axis=1)
    sum_b = RNG.normal(0, np.sqrt(per_day), (runs, days)).cumsum(axis=1)
    diffs, variances = (sum_b - sum_a) / n, np.broadcast_to(2.0 / n, (runs, days))
    p_daily = 2 * sps.norm.sf(np.abs(diffs) / np.sqrt(variances))
    naive = np.mean(p_daily.min(axis=1) < 0.05)
    valid = np.mean(msprt_p(diffs, variances, tau=0.1)[:, -1] < 0.05)
    assert naive > 0.12  # stopping at the first daily p < 0.05
    assert valid <= 0.06
    # and it finds a real effect, its p-value never rising
    found = msprt_p(np.full(days, 0.15), 2.0 / n, tau=0.1)
    assert found[-1] < 0.01 and np.all(np.diff(found) <= 0)


def test_obrien_fleming_bounds_match_the_published_lan_demets_values() -> None:
    # gsDesign(k = 5, test.type = 2, sfu = sfLDOF) and ldbounds: alpha 0.05 two-sided
    np.testing.assert_allclose(
        obrien_fleming_bounds(np.arange(1, 6) / 5), [4.877, 3.357, 2.680, 2.290, 2.031], atol=2e-3
    )
    np.testing.assert_allclose(obrien_fleming_bounds([0.5, 1.0]), [2.963, 1.969], atol=2e-3)
    # each side spends 2 - 2 Phi(z_{alpha/4} / sqrt(t)): all of alpha by the plan's end
    np.testing.assert_allclose(
        obrien_fleming_spent([0.5, 1.0, 1.5]), [0.003051, 0.05, 0.05], rtol=1e-3
    )
    daily = obrien_fleming_bounds(np.arange(1, 15) / 14)
    assert np.all(np.diff(daily) < 0) and 2.05 < daily[-1] < 2.15 and daily[0] > 8
    # a look's boundary depends on the looks up to it only: what day 7 shows stays true
    np.testing.assert_allclose(obrien_fleming_bounds(np.arange(1, 8) / 14), daily[:7])
    # on 40,000 fresh A/A z-paths looked at daily, the boundaries reject alpha of them
    steps = RNG.normal(0, 1, (40_000, 14)) * np.sqrt(1 / 14)
    z = steps.cumsum(axis=1) / np.sqrt(np.arange(1, 15) / 14)
    assert 0.046 <= np.mean(np.any(np.abs(z) >= daily, axis=1)) <= 0.054
    with pytest.raises(SegueError, match="increase"):
        obrien_fleming_bounds([0.5, 0.5])


def _daily_effects(diffs: np.ndarray, n: np.ndarray) -> list[Effect]:
    """One run's daily looks at a difference of means of N(., 1) values, n per arm so far."""
    se = np.sqrt(2.0 / n)
    p = 2 * sps.norm.sf(np.abs(diffs) / se)
    return [
        Effect(
            0.0,
            float(d),
            float(d),
            float(d - 1.96 * s),
            float(d + 1.96 * s),
            float(pk),
            int(m),
            int(m),
        )
        for d, s, pk, m in zip(diffs, se, p, n, strict=True)
    ]


def test_the_reports_obrien_fleming_decision_keeps_daily_peeking_at_alpha() -> None:
    runs, days, per_day = 3000, 14, 100
    n = per_day * np.arange(1, days + 1)
    rng = np.random.default_rng(20261203)
    sum_a = rng.normal(0, np.sqrt(per_day), (runs, days)).cumsum(axis=1)
    sum_b = rng.normal(0, np.sqrt(per_day), (runs, days)).cumsum(axis=1)
    plan = list(range(1, days + 1))
    crossed, naive = 0, 0
    for diffs in (sum_b - sum_a) / n:
        looks = _daily_effects(diffs, n)
        decision = sequential_decision(looks, plan, days)
        assert decision is not None and decision.day == days
        crossed += decision.crossed
        naive += any(e.p < 0.05 for e in looks)
    assert 0.035 <= crossed / runs <= 0.065  # about alpha, every day looked at
    assert naive / runs > 0.12  # stopping at the first daily p < 0.05
    # a real effect of 0.3 sd crosses before the planned end, and stays crossed
    real = sequential_decision(_daily_effects(np.full(days, 0.3), n), plan, days)
    assert real is not None and real.crossed_day is not None and 2 <= real.crossed_day <= 6
    assert real.spent == pytest.approx(0.05)
    # half-way through, alpha spent so far is the spending function's; later days are left out
    half = sequential_decision(_daily_effects(np.zeros(days), n)[:7], plan[:7], days)
    assert half is not None and (half.day, half.crossed) == (7, False)
    assert half.spent == pytest.approx(float(obrien_fleming_spent(0.5)))
    past = sequential_decision(_daily_effects(np.zeros(3), n[:3]), [13, 14, 15], days)
    assert past is not None and past.day == 14
    assert sequential_decision(_daily_effects(np.zeros(1), n[:1]), [15], days) is None


def test_holm_adjusts_in_the_order_given() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])


def test_ips_weighs_the_logged_rewards_by_how_the_target_would_have_acted() -> None:
    from segue.experiments.stats import ips

    # two arms logged uniformly; the target always takes arm 0, whose reward is 1
    estimate, se, self_normalised = ips(
        rewards=np.array([1.0, 0.0, 1.0, 1.0]),
        target=np.array([1.0, 0.0, 1.0, 0.0]),
        logging=np.array([0.5, 0.5, 0.5, 0.5]),
    )
    assert estimate == 1.0 and self_normalised == 1.0 and se > 0
    # unbiased by simulation: logging with unequal propensities, a target that differs
    rewards_of = np.array([0.2, 0.5, 0.8])
    logging_p = np.array([0.6, 0.3, 0.1])
    target_p = np.array([0.0, 0.2, 0.8])
    truth = float(target_p @ rewards_of)
    n = 200_000
    action = RNG.choice(3, size=n, p=logging_p)
    reward = (RNG.random(n) < rewards_of[action]).astype(float)
    estimate, se, self_normalised = ips(reward, target_p[action], logging_p[action])
    assert abs(estimate - truth) < 3 * se and abs(self_normalised - truth) < 0.01
    with pytest.raises(SegueError, match="propensities"):
        ips(np.ones(2), np.ones(2), np.array([0.5, 0.0]))
