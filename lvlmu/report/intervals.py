"""Intervals for the study's figures, and verdicts decided by them.

The unit of replication is the world: runs on one world share its base model, its oracle and its people, so they are
not independent draws. A method's figure is a mean of nested means: over worlds, of each world's mean over its people
(one unit per world for the forget split, each forgotten person in the single-image setting), of each person's mean
over seeds. Its interval is a Student t interval on the means of the top level that has at least two clusters, with
(clusters - 1) degrees of freedom: the two-stage (summary-statistics) form of the nested random-effects model, exact
for a balanced design with normal errors, and what the mixed model's interval on the grand mean reduces to there.
Treating every run as independent instead makes intervals too narrow (tests/test_intervals.py measures both).

With one world, the top level is the people, and the interval leaves out what another world would change; `Interval`
names its level so that the page can say so.

A figure that is a share of answers can have no spread between units at all (every world's rate 0, say, on a few
answers each), and the t interval is then [0, 0] however few the answers. Where the runs say how many answers each
rate counts (`answers`: distinct photographs, so that the same photograph asked several ways counts once), the
interval is widened to contain the exact (Clopper-Pearson) binomial interval of all the answers pooled, and the
standard error to the one that interval implies: 0 leaks in 12 answers gives [0, 26%], in 96 answers [0, 3.8%]. The
pooled interval alone would ignore the clustering; the wider of the two keeps both.

A figure with a known range (a share of answers, an AUC: `within=SHARE`) has its interval intersected with that
range. The true mean lies in it, so the intersection covers it exactly as often as the t interval does; with three
worlds, a t interval on shares can otherwise reach below 0 or above 100%, which no reader should have to discount.

A difference between two methods is taken within each cell first (the same world and person), then averaged up the
same levels: what the cells share (a world's base model, a person's photographs) cancels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SHARE = (0.0, 1.0)  # the range of a rate, a share of answers or an AUC
LEVELS = ("world", "person")  # the frame's columns, outermost first; the rows within a cell (seeds) are averaged
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval, computed on the means of `clusters` units of `level`."""

    estimate: float
    low: float
    high: float
    standard_error: float
    level: str
    clusters: int
    confidence: float = 0.95

    @property
    def defined(self) -> bool:
        return self.clusters >= 2 and not math.isnan(self.standard_error)

    def detectable(self, power: float = 0.8) -> float:
        """The smallest true difference from a bound that this design detects with probability `power` (two-sided
        test at 1 - confidence): (t_(1-alpha/2) + t_power) x standard error, with the interval's degrees of freedom."""
        from scipy import stats

        if not self.defined:
            return math.nan
        df = self.clusters - 1
        return float((stats.t.ppf(0.5 + self.confidence / 2, df) + stats.t.ppf(power, df)) * self.standard_error)

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def cluster_means(frame: pd.DataFrame, value: str, levels: tuple[str, ...] = LEVELS) -> tuple[str, pd.Series]:
    """The level the interval is computed on (the outermost with two clusters or more; the innermost when none has),
    and the mean of `value` for each of its clusters: rows averaged within a cell, then cells within their cluster,
    one level at a time (a world's people weigh equally)."""
    levels = tuple(level for level in levels if level in frame.columns)
    if not levels:
        raise ValueError(f"the frame has none of the levels {LEVELS}; its columns are {list(frame.columns)}")
    cells = frame.dropna(subset=[value]).groupby(list(levels), sort=False)[value].mean()
    means = {len(levels) - 1: cells}
    for depth in range(len(levels) - 2, -1, -1):
        means[depth] = means[depth + 1].groupby(level=list(range(depth + 1)), sort=False).mean()
    depth = next((d for d in range(len(levels)) if means[d].size >= 2), len(levels) - 1)
    return levels[depth], means[depth]


def interval(frame: pd.DataFrame, value: str, levels: tuple[str, ...] = LEVELS, confidence: float = 0.95,
             answers: str | None = None, within: tuple[float, float] | None = None) -> Interval:
    """The mean of `value` over the top level's clusters, with its `confidence` interval (see the module's text).
    `answers` names a column holding how many answers each row's rate counts: the interval then contains the exact
    binomial interval of the pooled answers. `within`: the range `value` can take (SHARE for a rate); the interval
    is cut to it."""
    from scipy import stats

    if frame.empty or value not in frame.columns or frame[value].dropna().empty:
        return Interval(math.nan, math.nan, math.nan, math.nan, "", 0, confidence)
    level, means = cluster_means(frame, value, levels)
    n, estimate = int(means.size), float(means.mean())
    if n < 2:
        return Interval(estimate, math.nan, math.nan, math.nan, level, n, confidence)
    se = float(means.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * se)
    low, high = estimate - half, estimate + half
    if answers is not None and answers in frame.columns:
        counted = frame.dropna(subset=[value, answers])
        total = int(counted[answers].sum())
        if total > 0:
            pooled = stats.binomtest(int(round(float((counted[value] * counted[answers]).sum()))), total)
            exact = pooled.proportion_ci(confidence_level=confidence, method="exact")
            low, high = min(low, exact.low), max(high, exact.high)
            # the error that interval implies, on its wider side (at a rate of 0 it has only one)
            se = max(se, max(exact.high - estimate, estimate - exact.low) / stats.norm.ppf(0.5 + confidence / 2))
    if within is not None:
        low, high = max(low, within[0]), min(high, within[1])
    return Interval(estimate, low, high, se, level, n, confidence)


def difference_range(within: tuple[float, float]) -> tuple[float, float]:
    """The range a difference of two values in `within` can take."""
    return within[0] - within[1], within[1] - within[0]


SHARE_DIFFERENCE = difference_range(SHARE)  # one share less another


def difference(frame: pd.DataFrame, value: str, first: str, second: str, by: str = "method", levels: tuple[str, ...] = LEVELS,
               confidence: float = 0.95, within: tuple[float, float] | None = None) -> Interval:
    """`first` minus `second` (values of column `by`), paired within each cell (the same world and person), with the
    interval of its mean; cells that only one of them has are left out. `within`: the range of `value` (SHARE for a
    rate); the difference's interval is cut to the range a difference can take (-1 to 1 for a rate)."""
    levels = tuple(level for level in levels if level in frame.columns)
    cells = frame.dropna(subset=[value]).groupby([*levels, by], sort=False)[value].mean().unstack(by)
    if first not in cells.columns or second not in cells.columns:
        return interval(pd.DataFrame(), value, levels, confidence)
    paired = (cells[first] - cells[second]).dropna().rename(value).reset_index()
    return interval(paired, value, levels, confidence, within=None if within is None else difference_range(within))


def verdict(estimate: Interval, bound: float, direction: str) -> str:
    """HOLDS when the whole interval lies on the claimed side of `bound` ("below": under it, "above": over it), FAILS
    when it lies wholly on the other side, INCONCLUSIVE otherwise (or when no interval could be computed)."""
    if direction not in ("below", "above"):
        raise ValueError(f"direction {direction!r}; choose 'below' or 'above'")
    if not estimate.defined:
        return INCONCLUSIVE
    low, high = (estimate.low, estimate.high) if direction == "above" else (-estimate.high, -estimate.low)
    target = bound if direction == "above" else -bound
    return HOLDS if low > target else FAILS if high < target else INCONCLUSIVE
