"""Paired comparisons over seeds: is a method's lead over a baseline more than seed noise?

Two methods run with the same seed share the data split, the shot sample and the initial context, so
their difference on that seed removes most of what the seed changes.  The question a methods table must
answer is whether the *mean paired difference* is away from zero; a mean ± std per method cannot say
it, because both stds hold the shared seed noise.

The interval is the paired t interval: mean difference ± t(1 - a/2, n - 1) · sd / sqrt(n), with n the
number of seeds both methods finished.  It assumes the per-seed differences are roughly normal; with
5 seeds that is an assumption, not a fact, so the wins/ties/losses count is reported beside it.  The
Student t quantile is computed here (regularised incomplete beta function and bisection) so that the
sweep reports need no SciPy.

Pure functions on plain numbers: no sweep types, no I/O.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Mapping

__all__ = ["PairedDifference", "paired_difference", "student_t_quantile", "student_t_cdf", "finite",
           "TIE_TOLERANCE"]

# Two accuracies closer than this count as a tie (a hundredth of a point: below what a test split of a few
# thousand images can resolve, above float noise).
TIE_TOLERANCE = 1e-4


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    tail = 0.5 * _regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PairedDifference:
    """Method minus baseline over the seeds both finished.

    Attributes:
        n: seeds in the pair.
        mean: mean difference (``None`` with no pair).
        low, high: the paired t interval at ``confidence`` (``None`` with fewer than 2 pairs).
        wins, ties, losses: seeds where the method is above, level with (within :data:`TIE_TOLERANCE`)
            or below the baseline.
        confidence: the interval's level (0.95).
    """

    n: int
    mean: float | None
    low: float | None
    high: float | None
    wins: int
    ties: int
    losses: int
    confidence: float = 0.95

    @property
    def distinguishable(self) -> bool | None:
        """Whether the interval excludes 0 (``None`` when there is no interval)."""
        if self.low is None or self.high is None:
            return None
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "distinguishable": self.distinguishable}


def finite(value: Any) -> bool:
    """A real, finite number (``None``, booleans and NaN are not)."""
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def paired_difference(method: Mapping[Any, float | None], baseline: Mapping[Any, float | None], *,
                      confidence: float = 0.95) -> PairedDifference:
    """Paired difference of ``method`` over ``baseline``, both ``{seed: value}``.

    Only seeds with a finite value on both sides pair up (a seed that one side lacks says nothing
    about the difference).  With one pair the interval is ``None``; with zero spread it is the point.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    seeds = [s for s in method if s in baseline and finite(method[s]) and finite(baseline[s])]
    diffs = [float(method[s]) - float(baseline[s]) for s in seeds]  # type: ignore[arg-type]
    wins = sum(d > TIE_TOLERANCE for d in diffs)
    losses = sum(d < -TIE_TOLERANCE for d in diffs)
    ties = len(diffs) - wins - losses
    if not diffs:
        return PairedDifference(0, None, None, None, 0, 0, 0, confidence)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(1, mean, None, None, wins, ties, losses, confidence)
    half = student_t_quantile(0.5 + confidence / 2.0, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(len(diffs), mean, mean - half, mean + half, wins, ties, losses, confidence)

