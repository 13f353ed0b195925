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
interval is widened to contain the exact (Clopper-Pearson) binomial interval of all the answers pooled, and where it
widens, the standard error to the one that interval implies: 0 leaks in 12 answers gives [0, 26%], in 96 answers
[0, 3.8%]. The pooled interval alone would ignore the clustering; the wider of the two keeps both.

A figure with a known range (a share of answers, an AUC: `within=SHARE`) has its interval intersected with that
range. The true mean lies in it, so the intersection covers it exactly as often as the t interval does; with three
worlds, a t interval on shares can otherwise reach below 0 or above 100%, which no reader should have to discount.

A difference between two methods is taken within each cell first (the same world and person), then averaged up the
same levels: what the cells share (a world's base model, a person's photographs) cancels. Where the rows count their
answers, the difference's interval is widened in the same way, to contain the difference of the two sides' pooled
answers with Newcombe's hybrid interval built on their exact intervals (it ignores the pairing, which only narrows a
difference whose two sides go together): a method and the oracle that both leak 0 in every world do not differ by
exactly [0, 0], nor do 12 leaks in 12 answers and 0 in 12 differ by exactly 100%.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
    result = Interval(estimate, low, high, se, level, n, confidence)
    if answers is not None and answers in frame.columns:
        pooled = pooled_answers(frame, value, answers)
        if pooled[1] > 0:
            result = widened(result, exact_interval(*pooled, confidence))
    return cut(result, within)


def pooled_answers(rows: pd.DataFrame, value: str, answers: str) -> tuple[int, int]:
    """(hits, answers) over `rows`, where each row's rate `value` counts `answers` answers."""
    counted = rows.dropna(subset=[value, answers])
    return int(round(float((counted[value] * counted[answers]).sum()))), int(counted[answers].sum())


def exact_interval(hits: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate of `hits` in `total` answers."""
    from scipy import stats

    exact = stats.binomtest(hits, total).proportion_ci(confidence_level=confidence, method="exact")
    return float(exact.low), float(exact.high)


def pooled_difference_interval(first: tuple[int, int], second: tuple[int, int], confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid interval of the difference of two rates, each given as (hits, answers), on their exact
    intervals: the difference less the root sum of squares of the two sides' distances to their far limits."""
    (k1, n1), (k2, n2) = first, second
    (low1, high1), (low2, high2) = exact_interval(k1, n1, confidence), exact_interval(k2, n2, confidence)
    p1, p2 = k1 / n1, k2 / n2
    return p1 - p2 - math.hypot(p1 - low1, high2 - p2), p1 - p2 + math.hypot(high1 - p1, p2 - low2)


def widened(estimate: Interval, limits: tuple[float, float]) -> Interval:
    """`estimate` widened to contain `limits`, its standard error to the one they imply on their wider side (at a
    rate of 0 they have only one); as it is where it already contains them."""
    from scipy import stats

    if not estimate.defined or estimate.low <= limits[0] <= limits[1] <= estimate.high:
        return estimate
    low, high = min(estimate.low, limits[0]), max(estimate.high, limits[1])
    implied = max(limits[1] - estimate.estimate, estimate.estimate - limits[0]) / stats.norm.ppf(0.5 + estimate.confidence / 2)
    return replace(estimate, low=low, high=high, standard_error=max(estimate.standard_error, implied))


def cut(estimate: Interval, within: tuple[float, float] | None) -> Interval:
    """`estimate` with its interval intersected with `within` (None: as it is)."""
    if within is None or not estimate.defined:
        return estimate
    return replace(estimate, low=max(estimate.low, within[0]), high=min(estimate.high, within[1]))


def difference_range(within: tuple[float, float]) -> tuple[float, float]:
    """The range a difference of two values in `within` can take."""
    return within[0] - within[1], within[1] - within[0]


SHARE_DIFFERENCE = difference_range(SHARE)  # one share less another


def difference(frame: pd.DataFrame, value: str, first: str, second: str, by: str = "method", levels: tuple[str, ...] = LEVELS,
               confidence: float = 0.95, within: tuple[float, float] | None = None, answers: str | None = None) -> Interval:
    """`first` minus `second` (values of column `by`), paired within each cell (the same world and person), with the
    interval of its mean; cells that only one of them has are left out. `within`: the range of `value` (SHARE for a
    rate); the difference's interval is cut to the range a difference can take (-1 to 1 for a rate). `answers` names
    a column holding how many answers each row's rate counts: the interval then contains the pooled difference's
    (see the module's text)."""
    levels = tuple(level for level in levels if level in frame.columns)
    rows = frame.dropna(subset=[value])
    cells = rows.groupby([*levels, by], sort=False)[value].mean().unstack(by)
    if first not in cells.columns or second not in cells.columns:
        return interval(pd.DataFrame(), value, levels, confidence)
    paired = (cells[first] - cells[second]).dropna().rename(value)
    result = interval(paired.reset_index(), value, levels, confidence)
    if answers is not None and answers in frame.columns and not paired.empty:
        inside = rows[rows.set_index(list(levels)).index.isin(paired.index)]  # the rows of the paired cells
        sides = [pooled_answers(inside[inside[by] == side], value, answers) for side in (first, second)]
        if min(total for _, total in sides) > 0:
            result = widened(result, pooled_difference_interval(*sides, confidence))
    return cut(result, None if within is None else difference_range(within))


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
