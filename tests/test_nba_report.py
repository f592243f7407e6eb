"""The campaign report's lift interval: Newcomb's hybrid score interval for the difference of
two independent proportions, checked against its formula from two Wilson intervals."""

from __future__ import annotations

import math

import pytest

from segue.nba.report import CampaignReport, GroupOutcome

Z95 = 1.959963984540054


def _wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _newcomb(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcomb (1998), method 10: the difference's limits from each rate's Wilson limits."""
    (l1, u1), (l2, u2) = _wilson(k1, n1), _wilson(k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def _report(treated: tuple[int, int], holdout: tuple[int, int]) -> CampaignReport:
    (k1, n1), (k2, n2) = treated, holdout
    return CampaignReport(
        campaign="spring",
        messages=10,
        sent=10,
        by_status={"sent": 10},
        impressions=10,
        opens=5,
        clicks=2,
        conversions=1,
        treated=GroupOutcome(users=n1 + 50, inactive=n1, reactivated=k1),
        holdout=GroupOutcome(users=n2 + 5, inactive=n2, reactivated=k2),
        window_days=14,
    )


@pytest.mark.parametrize(
    ("treated", "holdout"),
    [((30, 200), (12, 180)), ((5, 1000), (1, 50)), ((0, 20), (0, 20)), ((20, 20), (0, 20))],
)
def test_lift_is_newcombs_interval(treated, holdout) -> None:
    diff, low, high = _report(treated, holdout).lift()
    assert diff == pytest.approx(treated[0] / treated[1] - holdout[0] / holdout[1])
    assert (low, high) == pytest.approx(_newcomb(*treated, *holdout))
    assert -1.0 <= low <= diff <= high <= 1.0


def test_lift_is_honest_where_wald_collapses() -> None:
    # no reactivation on either side: the Wald interval is [0, 0]; Newcomb's is not
    _, low, high = _report((0, 20), (0, 20)).lift()
    assert low < -0.1 and high > 0.1
    # every treated user back, none held out: the interval stays below 1 on the left
    _, low, high = _report((20, 20), (0, 20)).lift()
    assert 0.5 < low < 1.0 and high == pytest.approx(1.0)


def test_lift_level_and_missing_groups() -> None:
    report = _report((30, 200), (12, 180))
    _, low95, high95 = report.lift()
    _, low80, high80 = report.lift(alpha=0.2)
    assert low95 < low80 and high80 < high95
    empty = _report((0, 0), (3, 30))
    assert all(math.isnan(v) for v in empty.lift())


def test_markdown_names_the_interval() -> None:
    report = _report((30, 200), (12, 180))
    diff, low, high = report.lift()
    line = f"Lift (treated − holdout): {diff:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}] (Newcomb)."
    assert line in report.markdown()
