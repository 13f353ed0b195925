"""Intervals with the world as the unit of replication, checked on data whose answer is known."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lvlmu.report.intervals import FAILS, HOLDS, INCONCLUSIVE, SHARE, Interval, cluster_means, difference, interval, verdict


def nested(rng, mean=0.3, worlds=3, people=4, seeds=2, world_sd=0.1, person_sd=0.05, noise_sd=0.05, method="a"):
    """Runs of a nested design: a world effect, a person effect within the world, noise per seed."""
    rows = []
    for w in range(worlds):
        world_effect = rng.normal(0, world_sd)
        for p in range(people):
            person_effect = rng.normal(0, person_sd)
            for s in range(seeds):
                rows.append({"world": f"w{w}", "person": f"p{p}", "seed": s, "method": method,
                             "leak": mean + world_effect + person_effect + rng.normal(0, noise_sd)})
    return pd.DataFrame(rows)


def test_interval_on_three_worlds_is_students_t_on_the_world_means():
    # Each world's mean is 0.2, 0.3 and 0.4 (its people and seeds around it): the interval is t(2) on those three.
    frame = pd.DataFrame([{"world": w, "person": p, "seed": s, "leak": m + d}
                          for w, m in (("w0", 0.2), ("w1", 0.3), ("w2", 0.4)) for p, d in (("p0", -0.05), ("p1", 0.05)) for s in (0, 1)])
    result = interval(frame, "leak")
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # sd of (0.2, 0.3, 0.4) is 0.1
    assert (result.level, result.clusters) == ("world", 3)
    assert result.estimate == pytest.approx(0.3)
    assert (result.low, result.high) == (pytest.approx(0.3 - half), pytest.approx(0.3 + half))
    assert half == pytest.approx(0.2484, abs=1e-4)


def test_people_weigh_equally_within_a_world_whatever_their_number_of_seeds():
    frame = pd.DataFrame([{"world": "w0", "person": "p0", "seed": 0, "leak": 0.0},
                          {"world": "w0", "person": "p1", "seed": 0, "leak": 1.0}, {"world": "w0", "person": "p1", "seed": 1, "leak": 1.0},
                          {"world": "w0", "person": "p1", "seed": 2, "leak": 1.0}])
    level, means = cluster_means(frame, "leak")
    assert level == "person" and sorted(means) == [0.0, 1.0]
    assert interval(frame, "leak").estimate == 0.5  # not 0.75, the mean of the four runs


def test_with_one_world_the_interval_is_over_people_and_says_so():
    frame = nested(np.random.default_rng(0), worlds=1, people=8)
    result = interval(frame, "leak")
    assert (result.level, result.clusters) == ("person", 8)
    single = interval(frame[frame["person"] == "p0"], "leak")
    assert (single.level, single.clusters, single.defined) == ("person", 1, False)
    assert verdict(single, 0.5, "below") == INCONCLUSIVE


def test_coverage_is_nominal_on_nested_data_and_row_level_intervals_undercover():
    rng = np.random.default_rng(1)
    covered, naive_covered, trials = 0, 0, 600
    for _ in range(trials):
        frame = nested(rng)
        result = interval(frame, "leak")
        covered += result.low <= 0.3 <= result.high
        # every run treated as independent: what the study did before
        n = len(frame)
        half = stats.t.ppf(0.975, n - 1) * frame["leak"].std(ddof=1) / math.sqrt(n)
        naive_covered += abs(frame["leak"].mean() - 0.3) <= half
    assert 0.92 <= covered / trials <= 0.98
    assert naive_covered / trials < 0.80


def test_a_paired_difference_cancels_what_the_worlds_share():
    rng = np.random.default_rng(2)
    a = nested(rng, world_sd=0.3, noise_sd=0.0, method="a")
    b = a.assign(method="b", leak=a["leak"] - 0.1 + rng.normal(0, 0.01, len(a)))
    frame = pd.concat([a, b])
    paired = difference(frame, "leak", "a", "b")
    assert paired.low <= 0.1 <= paired.high and paired.high - paired.low < 0.05
    assert verdict(paired, 0.05, "above") == HOLDS
    unpaired = interval(a, "leak").high - interval(a, "leak").low
    assert unpaired > 5 * (paired.high - paired.low)
    # a cell one method lacks is left out, not compared with nothing
    assert difference(frame[~((frame["method"] == "b") & (frame["world"] == "w0"))], "leak", "a", "b").clusters == 2


def test_verdicts_follow_the_interval_and_the_side_of_the_bound():
    inside = Interval(0.08, 0.05, 0.09, 0.01, "world", 3)
    straddles = Interval(0.11, 0.06, 0.16, 0.02, "world", 3)
    outside = Interval(0.3, 0.2, 0.4, 0.05, "world", 3)
    assert [verdict(i, 0.10, "below") for i in (inside, straddles, outside)] == [HOLDS, INCONCLUSIVE, FAILS]
    assert [verdict(i, 0.10, "above") for i in (inside, straddles, outside)] == [FAILS, INCONCLUSIVE, HOLDS]
    with pytest.raises(ValueError, match="below"):
        verdict(inside, 0.1, "under")


def test_the_detectable_difference_shrinks_with_more_worlds():
    rng = np.random.default_rng(3)
    few, many = interval(nested(rng, worlds=3), "leak"), interval(nested(rng, worlds=12), "leak")
    assert few.detectable() > 2 * many.detectable() > 0
    # (t_0.975 + t_0.8) standard errors
    assert few.detectable() == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * few.standard_error)


def test_a_rate_without_spread_keeps_the_exact_binomial_interval_of_its_answers():
    # No leak in any of 3 worlds: the t interval is [0, 0]. On 4 answers a world (12 in all) the exact 95% interval of
    # 0 of 12 reaches 26.5%, on 32 a world (96) 3.8%: a 10% bound is undecided with the first and cleared with the second.
    few = pd.DataFrame([{"world": w, "person": "p0", "leak": 0.0, "answers": 4} for w in ("w0", "w1", "w2")])
    assert (interval(few, "leak").low, interval(few, "leak").high) == (0.0, 0.0), "the t interval alone collapses"
    widened = interval(few, "leak", answers="answers")
    assert widened.high == pytest.approx(1 - 0.025 ** (1 / 12), rel=1e-6) and widened.low == 0.0
    assert verdict(widened, 0.10, "below") == INCONCLUSIVE and widened.detectable() > 0.10
    many = few.assign(answers=32)
    assert interval(many, "leak", answers="answers").high == pytest.approx(1 - 0.025 ** (1 / 96), rel=1e-6)
    assert verdict(interval(many, "leak", answers="answers"), 0.10, "below") == HOLDS
    # With spread between worlds, the t interval is the wider one and is kept, with its standard error.
    spread = pd.DataFrame([{"world": w, "person": "p0", "leak": r, "answers": 32} for w, r in (("w0", 0.0), ("w1", 0.25), ("w2", 0.5))])
    assert interval(spread, "leak", answers="answers") == interval(spread, "leak")


def test_a_difference_of_rates_without_spread_keeps_the_pooled_difference_of_its_answers():
    """Newcombe's hybrid on exact intervals, by hand. 0 of 12 answers on each side (4 a world, 3 worlds): each side's
    exact interval is [0, u], u = 1 - 0.025^(1/12) = 26.5%, so the difference is 0 +- sqrt(0 + u^2) = [-u, u]; 12 of
    12 against 0 of 12: 100% - sqrt((1 - (1 - u))^2 + u^2) = 1 - u sqrt(2), cut to at most 100%."""
    u = 1 - 0.025 ** (1 / 12)
    rows = lambda method, leak: [{"world": w, "person": "p0", "method": method, "leak": leak, "answers": 4} for w in ("w0", "w1", "w2")]
    both_zero = pd.DataFrame(rows("a", 0.0) + rows("oracle", 0.0))
    assert (difference(both_zero, "leak", "a", "oracle").low, difference(both_zero, "leak", "a", "oracle").high) == (0.0, 0.0)
    floored = difference(both_zero, "leak", "a", "oracle", within=SHARE, answers="answers")
    assert floored.low == pytest.approx(-u, rel=1e-6) and floored.high == pytest.approx(u, rel=1e-6) and floored.estimate == 0.0
    assert verdict(floored, 0.10, "below") == INCONCLUSIVE  # 12 answers a side cannot show a difference under 10 points
    apart = difference(pd.DataFrame(rows("a", 1.0) + rows("oracle", 0.0)), "leak", "a", "oracle", within=SHARE, answers="answers")
    assert apart.low == pytest.approx(1 - u * math.sqrt(2), rel=1e-6) and apart.high == 1.0 and apart.estimate == 1.0
    # Only the paired cells count: a world the oracle lacks adds no answers (here 12 leaks that would move the pooled rate).
    extra = pd.DataFrame(rows("a", 0.0) + rows("oracle", 0.0) + [{"world": "w3", "person": "p0", "method": "a", "leak": 1.0, "answers": 12}])
    assert difference(extra, "leak", "a", "oracle", answers="answers").high == pytest.approx(u, rel=1e-6)
    # With spread between worlds, the t interval is the wider one and is kept.
    spread = pd.DataFrame(rows("a", 0.0) + rows("oracle", 0.0)).assign(answers=200)
    spread.loc[spread["method"] == "a", "leak"] = [0.0, 0.25, 0.5]
    assert difference(spread, "leak", "a", "oracle", answers="answers") == difference(spread, "leak", "a", "oracle")


def test_a_share_interval_is_cut_to_its_range_and_keeps_its_coverage_and_verdicts():
    # Three worlds at 0, 50% and 100%: t(2) gives 50% +- 124 points; a share lies in [0, 1], and so does the cut interval.
    frame = pd.DataFrame([{"world": f"w{k}", "person": "p0", "method": "a", "leak": v} for k, v in enumerate((0.0, 0.5, 1.0))])
    plain, cut = interval(frame, "leak"), interval(frame, "leak", within=SHARE)
    assert plain.low == pytest.approx(-0.742, abs=1e-3) and plain.high == pytest.approx(1.742, abs=1e-3)
    assert (cut.low, cut.high, cut.estimate, cut.standard_error) == (0.0, 1.0, plain.estimate, plain.standard_error)
    # a paired difference of shares is cut to [-1, 1]
    other = frame.assign(method="b", leak=[1.0, 0.5, 0.0])
    paired = difference(pd.concat([frame, other]), "leak", "a", "b", within=SHARE)
    assert (paired.low, paired.high) == (-1.0, 1.0)
    # Any value inside the range (the true mean among them) is covered by the cut interval exactly when it is by the
    # t interval, so coverage is unchanged; and so is the verdict against any bound inside the range.
    rng = np.random.default_rng(3)
    for _ in range(300):
        shares = nested(rng, mean=0.05, world_sd=0.1).assign(leak=lambda f: f["leak"].clip(0, 1))
        plain, cut = interval(shares, "leak"), interval(shares, "leak", within=SHARE)
        assert 0.0 <= cut.low <= cut.high <= 1.0
        for value in (0.0, 0.02, 0.05, 0.1, 0.5, 1.0):
            assert (plain.low <= value <= plain.high) == (cut.low <= value <= cut.high)
            for direction in ("below", "above"):
                assert verdict(plain, value, direction) == verdict(cut, value, direction)
    # Only a bound outside the range (a base's figure less a margin, where the base is under the margin) can move:
    # a share is always above -5%, and the cut interval says so where the t interval could not.
    three = (interval(frame, "leak"), interval(frame, "leak", within=SHARE))
    assert [verdict(i, -0.05, "above") for i in three] == [INCONCLUSIVE, HOLDS]
