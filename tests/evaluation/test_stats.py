"""Means and Student-t intervals against hand-computed and textbook values."""

from __future__ import annotations

import math

import pytest

from ftrl_gym.evaluation.stats import (
    Estimate,
    clustered_mean_ci,
    mean,
    mean_ci,
    student_t_cdf,
    student_t_quantile,
)


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452), (1000, 1.9623)],
)
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_is_symmetric_and_inverts_the_cdf() -> None:
    assert student_t_quantile(0.025, 5) == pytest.approx(-2.5706, abs=1e-4)
    assert student_t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    assert student_t_cdf(student_t_quantile(0.9, 3), 3) == pytest.approx(0.9, abs=1e-10)
    assert student_t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)  # Cauchy: 1/2 + atan(1)/pi


def test_t_quantile_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="p must be in"):
        student_t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df must be positive"):
        student_t_quantile(0.9, 0)


def test_mean_ci_by_hand() -> None:
    # [1, 2, 3, 4]: mean 2.5, s = sqrt(5/3) = 1.290994, s/sqrt(4) = 0.645497, t(0.975, 3) = 3.182446
    estimate = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert estimate.mean == 2.5
    assert estimate.n == 4
    assert estimate.half_width == pytest.approx(3.182446 * 0.645497, abs=1e-5)
    assert (estimate.low, estimate.high) == pytest.approx((2.5 - 2.054260, 2.5 + 2.054260), abs=1e-5)


def test_mean_ci_edge_cases() -> None:
    assert mean_ci([0.7]) == Estimate(0.7, 0.0, 1)
    assert mean_ci([1.0, 1.0, 1.0]) == Estimate(1.0, 0.0, 3)
    empty = mean_ci([])
    assert math.isnan(empty.mean) and empty.n == 0


def test_clustered_ci_averages_repeats_first() -> None:
    # task means 1.0, 0.0, 0.5 -> mean 0.5, s = 0.5, s/sqrt(3) = 0.288675, t(0.975, 2) = 4.302653
    estimate = clustered_mean_ci({"a": [1.0, 1.0], "b": [0.0, 0.0], "c": [0.25, 0.75]})
    assert estimate.mean == pytest.approx(0.5)
    assert estimate.n == 3
    assert estimate.half_width == pytest.approx(4.302653 * 0.288675, abs=1e-5)


def test_clustered_ci_of_one_task_is_over_its_repeats() -> None:
    assert clustered_mean_ci({"only": [0.0, 1.0]}) == mean_ci([0.0, 1.0])
    assert mean_ci([0.0, 1.0]).half_width == pytest.approx(12.706205 * 0.5, abs=1e-5)


def test_plain_mean() -> None:
    assert mean([1, 2, 6]) == 3.0
    assert math.isnan(mean([]))
