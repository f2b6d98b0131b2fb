"""Means and Student-t 95% confidence intervals for benchmark results — pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A sample mean with its confidence interval.

    Attributes:
        mean: The sample mean (NaN for no samples).
        half_width: Half the interval's width (0 for fewer than two samples: no spread is known).
        n: The number of independent samples the interval is over.
    """

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        """The interval's lower end."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """The interval's upper end."""
        return self.mean + self.half_width


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution (bisection on the CDF, 1e-12 absolute).

    Args:
        p: Probability in (0, 1).
        df: Degrees of freedom, > 0.

    Returns:
        t such that P(T <= t) = p; e.g. ``student_t_quantile(0.975, 1)`` = 12.706.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2.0
    while high - low > 1e-12:
        mid = (low + high) / 2.0
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2.0


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean and Student-t confidence interval of independent samples.

    Args:
        values: The samples.
        confidence: The interval's coverage.

    Returns:
        ``Estimate(mean, t * s / sqrt(n), n)`` with s the sample standard deviation (n - 1 divisor).
        One sample gives half-width 0; no samples give a NaN mean.
    """
    n = len(values)
    if n == 0:
        return Estimate(math.nan, 0.0, 0)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, 0.0, 1)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    t = student_t_quantile(0.5 + confidence / 2.0, n - 1)
    return Estimate(mean, t * math.sqrt(variance / n), n)


def clustered_mean_ci(groups: Mapping[object, Sequence[float]], confidence: float = 0.95) -> Estimate:
    """Mean and confidence interval when samples come in groups of repeats (one group per task).

    Repeats of one task are not independent draws, so each task's repeats are averaged first and the
    interval is over the task means. With a single task the interval is over its repeats.

    Args:
        groups: Task key → that task's sample values (one per repeat).
        confidence: The interval's coverage.

    Returns:
        The estimate; ``n`` is the number of tasks (or of repeats, for a single task).
    """
    nonempty = [list(v) for v in groups.values() if len(v) > 0]
    if len(nonempty) == 1:
        return mean_ci(nonempty[0], confidence)
    return mean_ci([math.fsum(v) / len(v) for v in nonempty], confidence)


def mean(values: Iterable[float]) -> float:
    """Plain mean; NaN for no values."""
    items = list(values)
    return math.fsum(items) / len(items) if items else math.nan
