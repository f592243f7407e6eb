"""The statistics of an A/B test, on one row per listener (the unit of assignment).

Why each piece is here:

* **Welch's t-test** for per-listener means (listening minutes, sessions): arms differ in
  variance, so the pooled-variance t-test is wrong exactly when a variant changes behaviour.
* **The delta method** for ratio metrics (CTR = clicks / impressions): impressions of one
  listener are not independent, so treating each as a trial understates the variance; the
  ratio of per-listener sums, with the listener as the unit, does not.
* **Newcombe's hybrid score interval** for a difference of proportions (retention, churn):
  the Wald interval undercovers near 0 and 1, where retention and churn live.
* **CUPED** (Deng et al. 2013): the same metric before the experiment explains much of each
  listener's value; subtracting ``theta × (pre − mean pre)`` keeps the effect and removes that
  variance, so the same test needs fewer listeners.
* **Sample-ratio mismatch**: when the arms' sizes (or exposures per listener) differ from
  the design, something dropped or duplicated data and no effect estimate can be trusted.
* **Always-valid p-values** (mixture SPRT, Johari et al. 2017): looking at a fixed-horizon
  p-value every day and stopping at the first p < α inflates false positives several-fold;
  the mSPRT p-value may be watched continuously.
* **Group-sequential boundaries** (O'Brien–Fleming-like alpha spending, Lan and DeMets
  1983): when the experiment has a planned duration, the daily looks spend exactly alpha by
  its end — closer to alpha under daily peeking than the mSPRT, which spends less.
* **Holm's correction** across the metrics of one report: it controls the family-wise error
  without Bonferroni's loss of power.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from segue.errors import SegueError

#: p-value below which a sample-ratio mismatch is flagged (strict: it is checked on every
#: report, and a false alarm stops the reading of a sound experiment).
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Effect:
    """Treatment minus control: the difference, its interval and p-value; ``relative`` is
    the difference over the control's value (NaN when that is 0)."""

    control: float
    treatment: float
    difference: float
    low: float
    high: float
    p: float
    n_control: int
    n_treatment: int

    @property
    def relative(self) -> float:
        return self.difference / self.control if self.control else float("nan")


def _array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1 or len(out) < 2:
        raise SegueError(f"{name}: need at least two listeners, got {out.shape}")
    if not np.isfinite(out).all():
        raise SegueError(f"{name}: values must be finite")
    return out


def welch(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
) -> Effect:
    """Difference of means with Welch–Satterthwaite degrees of freedom."""
    a, b = _array(control, "control"), _array(treatment, "treatment")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(b.mean() - a.mean())
    se = float(np.sqrt(va + vb))
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        return Effect(float(a.mean()), float(b.mean()), diff, diff, diff, p, len(a), len(b))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * sps.t.sf(abs(diff) / se, df))
    means = float(a.mean()), float(b.mean())
    return Effect(*means, diff, diff - half, diff + half, p, len(a), len(b))


def ratio_variance(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """(ratio of sums, its variance by the delta method), the listener as the unit."""
    n = len(numerator)
    mx, my = numerator.mean(), denominator.mean()
    if my == 0:
        raise SegueError("a ratio metric needs a denominator above 0 in each arm")
    cov = np.cov(numerator, denominator, ddof=1)
    var = (cov[0, 0] / my**2 - 2 * mx * cov[0, 1] / my**3 + mx**2 * cov[1, 1] / my**4) / n
    return float(mx / my), float(var)


def delta_ratio(
    control: tuple[np.ndarray, np.ndarray],
    treatment: tuple[np.ndarray, np.ndarray],
    alpha: float = 0.05,
) -> Effect:
    """Difference of a ratio metric (e.g. CTR: per-listener clicks, per-listener impressions)."""
    (xa, ya), (xb, yb) = control, treatment
    xa, ya = _array(xa, "control numerator"), _array(ya, "control denominator")
    xb, yb = _array(xb, "treatment numerator"), _array(yb, "treatment denominator")
    ra, va = ratio_variance(xa, ya)
    rb, vb = ratio_variance(xb, yb)
    diff, se = rb - ra, float(np.sqrt(va + vb))
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = float(2 * sps.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    return Effect(ra, rb, diff, diff - z * se, diff + z * se, p, len(xa), len(xb))


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        raise SegueError("a proportion needs at least one trial")
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def newcombe(control: tuple[int, int], treatment: tuple[int, int], alpha: float = 0.05) -> Effect:
    """Difference of two proportions, ``(successes, n)`` each: Newcombe's hybrid score
    interval (his method 10) and the pooled two-proportion z-test's p-value."""
    (x1, n1), (x2, n2) = control, treatment
    for x, n in ((x1, n1), (x2, n2)):
        if not 0 <= x <= n or n <= 0:
            raise SegueError(f"a proportion needs 0 <= successes <= n and n > 0, got {x}/{n}")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, alpha)
    l2, u2 = wilson(x2, n2, alpha)
    diff = p2 - p1
    low = diff - np.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = diff + np.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = float(2 * sps.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    return Effect(p1, p2, diff, float(low), float(high), p, n1, n2)


def cuped(values: np.ndarray, pre: np.ndarray) -> tuple[np.ndarray, float]:
    """(values adjusted by the pre-period covariate, theta). ``theta`` is estimated on both
    arms together, so the adjustment is the same for both and the effect stays unbiased."""
    y, x = np.asarray(values, dtype=np.float64), np.asarray(pre, dtype=np.float64)
    if y.shape != x.shape:
        raise SegueError(f"CUPED needs one pre-period value per listener: {x.shape} vs {y.shape}")
    var = x.var(ddof=1)
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var) if var > 0 else 0.0
    return y - theta * (x - x.mean()), theta


@dataclass(frozen=True)
class RatioCheck:
    """A sample-ratio-mismatch check: what was seen, what was expected, the p-value."""

    observed: tuple[float, ...]
    expected: tuple[float, ...]
    p: float

    @property
    def mismatch(self) -> bool:
        return self.p < SRM_ALPHA


def sample_ratio(counts: Sequence[int], shares: Sequence[float]) -> RatioCheck:
    """Chi-square goodness of fit of the arms' listener counts against the design's shares."""
    observed = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(shares, dtype=np.float64)
    if observed.shape != weights.shape or len(observed) < 2:
        raise SegueError("give one count and one share per arm (at least two arms)")
    expected = weights / weights.sum() * observed.sum()
    p = float(sps.chisquare(observed, expected).pvalue)
    return RatioCheck(tuple(observed), tuple(expected), p)


def exposure_ratio(
    control: np.ndarray,
    treatment: np.ndarray,
    pre: tuple[np.ndarray, np.ndarray] | None = None,
) -> RatioCheck:
    """Whether exposures per listener differ between arms that serve alike (lost or doubled
    logging in one arm): Welch on per-listener exposure counts, the listener as the unit,
    because a listener's exposures are not independent trials. With ``pre`` (each arm's
    per-listener counts before the experiment), CUPED first: listeners differ in activity far
    more than a logging loss changes it, and the pre-period explains most of that."""
    a, b = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    if pre is not None:
        adjusted, _ = cuped(np.concatenate([a, b]), np.concatenate(pre))
        a, b = adjusted[: len(a)], adjusted[len(a) :]
    effect = welch(a, b)
    return RatioCheck((effect.control, effect.treatment), (effect.control,) * 2, effect.p)


def msprt_p(difference: np.ndarray, variance: np.ndarray, tau: float) -> np.ndarray:
    """Always-valid p-values for a sequence of looks at a difference of means.

    ``difference[k]`` and ``variance[k]`` are the estimate and its variance at look ``k``
    (e.g. each day, on everything so far); ``tau`` is the standard deviation of the normal
    mixture over effects, on the scale of the difference (about the size of effect worth
    finding). The p-value at look ``k`` is the running minimum of ``1 / Lambda``, where
    ``Lambda = sqrt(V / (V + tau²)) · exp(tau² d² / (2 V (V + tau²)))``; stopping at the first
    look with ``p < alpha`` keeps the false-positive rate at most ``alpha``. Looks run along
    the last axis (several experiments or simulated runs at once in the others).
    """
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    if tau <= 0:
        raise SegueError(f"the mixture's tau must be > 0, got {tau}")
    t2 = tau * tau
    log_lambda = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    return np.minimum.accumulate(np.minimum(1.0, np.exp(-log_lambda)), axis=-1)


def obrien_fleming_spent(fraction: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """The two-sided alpha spent by information fraction ``t`` under Lan and DeMets'
    O'Brien–Fleming-like function, each side spending ``alpha / 2`` as
    ``2 − 2 Φ(z_{α/4} / √t)`` (gsDesign's ``sfLDOF`` on a symmetric two-sided design, and
    ldbounds' default): almost nothing early, all of ``alpha`` at ``t = 1`` (and after)."""
    t = np.asarray(fraction, dtype=np.float64)
    if np.any(~(t > 0)):
        raise SegueError(f"an information fraction is > 0, got {fraction}")
    z = sps.norm.isf(alpha / 4)
    return 2 * (2 * sps.norm.sf(z / np.sqrt(np.minimum(t, 1.0))))


#: Points of the grid each look's surviving density is integrated on (Simpson's rule).
_GRID = 801


def obrien_fleming_bounds(fractions: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Two-sided z boundaries for looks at the given information fractions (e.g. day / 14),
    spending ``alpha`` by :func:`obrien_fleming_spent`: strict early, close to the
    fixed-horizon test at the end, and in all exactly ``alpha`` over the planned looks (the
    always-valid mSPRT spends less). Looks need not be equally spaced nor all planned: the
    boundary at a look depends only on the looks up to it (Lan and DeMets' point).

    Computed exactly, as gsDesign and ldbounds do: the test statistic's path is a Brownian
    motion ``S(t) = Z √t`` observed at the fractions; the density of ``S`` on the paths that
    have not crossed yet is carried from look to look by a convolution with the normal
    increment (Armitage, McPherson and Rowe's recursion, on a grid), and each boundary is the
    root of "the probability of crossing first here = the alpha this look spends".
    Five equal looks at alpha 0.05 give 4.877, 3.357, 2.680, 2.290, 2.031. Remembered per
    (fractions, alpha): a report or a simulated run asks for the same plan once per metric.
    """
    t = np.asarray(fractions, dtype=np.float64)
    if len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1:
        raise SegueError(f"information fractions increase within (0, 1], got {list(fractions)}")
    return np.array(_bounds(tuple(float(f) for f in t), float(alpha)))


@functools.lru_cache(maxsize=64)
def _bounds(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    from scipy.optimize import brentq

    t = np.asarray(fractions)
    spent = obrien_fleming_spent(t, alpha)
    increments = np.diff(np.concatenate([[0.0], spent]))
    bounds = np.empty(len(t))
    bounds[0] = float(sps.norm.isf(increments[0] / 2))
    # the surviving density of S at the last look, on grid x with Simpson weights w
    half = bounds[0] * np.sqrt(t[0])
    x = np.linspace(-half, half, _GRID)
    w = _simpson(x)
    density = sps.norm.pdf(x, scale=np.sqrt(t[0]))
    for k in range(1, len(t)):
        sd = np.sqrt(t[k] - t[k - 1])
        root_t = np.sqrt(t[k])
        mass = w * density

        def excess(bound: float, x: np.ndarray = x, mass: np.ndarray = mass, sd: float = sd,
                   root_t: float = root_t, target: float = increments[k]) -> float:  # fmt: skip
            """P(first crossing here at this bound) − the alpha this look spends."""
            c = bound * root_t
            return float(mass @ (sps.norm.sf((c - x) / sd) + sps.norm.sf((c + x) / sd))) - target

        if increments[k] <= 0 or excess(40.0) >= 0:
            bounds[k] = np.inf  # nothing to spend here
        else:
            bounds[k] = brentq(excess, 0.0, 40.0, xtol=1e-9)
        half = min(bounds[k], 40.0) * root_t
        y = np.linspace(-half, half, _GRID)
        density = sps.norm.pdf((y[:, None] - x[None, :]) / sd) @ mass / sd
        x, w = y, _simpson(y)
    return tuple(float(b) for b in bounds)


def _simpson(x: np.ndarray) -> np.ndarray:
    """Simpson's rule weights on an evenly spaced grid of an odd number of points."""
    h = x[1] - x[0]
    w = np.ones(len(x))
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3


def ips(
    rewards: np.ndarray, target: np.ndarray, logging: np.ndarray
) -> tuple[float, float, float]:
    """Off-policy estimates of a target policy's mean reward from another policy's log:
    (inverse propensity score estimate, its standard error, the self-normalised estimate).

    ``rewards[n]`` is what the logged action earned, ``logging[n]`` the probability the
    logging policy had of taking it (the propensity it logged), ``target[n]`` the probability
    the target policy would have taken it. IPS is unbiased where the logging policy gave
    every action the target takes a chance; SNIPS divides by the weights' sum instead of n,
    trading a small bias for much less variance when weights are large.
    """
    r = np.asarray(rewards, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    q = np.asarray(logging, dtype=np.float64)
    if not (r.shape == t.shape == q.shape) or len(r) < 2:
        raise SegueError("give one reward, target and logging probability per logged action")
    if np.any(q <= 0) or np.any(q > 1):
        raise SegueError("logging propensities must be in (0, 1]")
    w = t / q
    values = w * r
    snips = float(values.sum() / w.sum()) if w.sum() > 0 else float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(r))), snips


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out
