"""The small numerics against independent references (closed forms, the statistics module, numpy)."""

import math
import random
import statistics

import numpy as np
import pytest

from lorascale.sweep.stats import bootstrap, mean_std, ols, percentile, power_law, refine_optimum, seed_interval, t_quantile_975, welch_interval


def test_parabola_vertex_is_exact_on_uneven_grids():
    xs = [-3.0, -1.0, 0.5, 2.0]
    f = lambda x: 2.0 * (x - 0.2) ** 2 + 1.0  # noqa: E731
    o = refine_optimum(xs, [f(x) for x in xs])
    assert o.refined and o.x_grid == 0.5
    assert (o.x, o.value) == pytest.approx((0.2, 1.0), abs=1e-12)  # float rounding only


def test_optimum_edge_divergence_and_flat_cases():
    assert refine_optimum([0, 1, 2], [1.0, 2.0, 3.0]) == (0, 0, 1.0, False, True, False)
    o = refine_optimum([0, 1, 2, 3], [3.0, 1.0, 2.0, math.inf])  # an infinite neighbour of the best blocks nothing here
    # the parabola through (0, 3), (1, 1), (2, 2) is 1.5x² − 3.5x + 3: vertex at 7/6, value 23/24
    assert o.refined and o.x_grid == 1 and (o.x, o.value) == pytest.approx((7 / 6, 23 / 24), abs=1e-12)  # rounding only
    o = refine_optimum([0, 1, 2], [3.0, 1.0, math.inf])  # diverged right neighbour: keep the grid point
    assert (o.x, o.refined, o.at_edge) == (1, False, False)
    assert refine_optimum([0, 1], [math.inf, math.inf]) is None


def test_ols_and_power_law_match_the_closed_form():
    """ols is numpy's least squares; the reference is the textbook formula in plain floats (float
    rounding only separates them: 1e-10)."""
    rng = random.Random(0)
    xs = [float(i) for i in range(8)]
    ys = [0.7 * x - 2 + rng.gauss(0, 0.1) for x in xs]
    a, b, se = ols(xs, ys)
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    ra = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    rb = my - ra * mx
    rse = math.sqrt(sum((y - ra * x - rb) ** 2 for x, y in zip(xs, ys)) / (n - 2) / sxx)
    assert (a, b, se) == pytest.approx((ra, rb, rse), rel=1e-10)
    assert ols([1.0, 3.0], [2.0, 6.0]) == pytest.approx((2.0, 0.0, None), abs=1e-12)  # two points: no SE
    with pytest.raises(AssertionError, match="two distinct x"):
        ols([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    c, p, rms = power_law([4, 16, 64], [3 * 4**0.6, 3 * 16**0.6, 3 * 64**0.6])
    assert (c, p, rms) == pytest.approx((3.0, 0.6, 0.0), abs=1e-12)


def test_percentile_interval_and_mean_std_match_numpy():
    v = sorted(random.Random(1).random() for _ in range(101))
    for q in (0.025, 0.5, 0.975):
        pos = q * (len(v) - 1)  # linear interpolation between the order statistics around q
        lo = math.floor(pos)
        assert percentile(v, q) == pytest.approx(v[lo] + (v[lo + 1] - v[lo]) * (pos - lo), rel=1e-12)
    assert seed_interval(0.0, v[:10], 5) is None  # too few bootstrap replicates for a 95% interval
    assert seed_interval(0.0, v, 1) is None  # one seed: nothing to resample
    lo, hi = seed_interval(0.5, v, 5)
    assert hi - 0.5 == pytest.approx(0.5 - lo, rel=1e-12)  # symmetric
    assert hi - 0.5 == pytest.approx(2.776 * statistics.stdev(v) * math.sqrt(5 / 4), rel=2e-4)  # t₄ = 2.776 (tables: 3 decimals)
    m, s, n = mean_std([1.0, 2.0, 4.0])
    assert (m, s, n) == pytest.approx((7 / 3, statistics.stdev([1, 2, 4]), 0), rel=1e-12)
    assert mean_std([2.5]) == (2.5, None, 0)
    assert mean_std([1.0, math.inf]) == (math.inf, None, 1)
    # printed t tables, rounded to 3 decimals: t₁ = 12.706, t₄ = 2.776, t₂₀₀ = 1.972
    assert [t_quantile_975(df) for df in (1, 4, 200)] == pytest.approx([12.706, 2.776, 1.972], abs=5e-4)


def test_welch_interval_hand_values_and_scipy():
    # equal spreads 0.1, n = 3 each: SE = √(2·0.01/3) = 0.08165, Welch df = 4 exactly, t₄ = 2.776 (3 decimals)
    lo, hi = welch_interval(1.0, 0.1, 3, 0.8, 0.1, 3)
    assert (lo, hi) == pytest.approx((0.2 - 2.776 * 0.081650, 0.2 + 2.776 * 0.081650), abs=5e-5)
    assert welch_interval(1.0, 0.1, 1, 0.8, 0.1, 3) is None  # one value: no spread to go on
    assert welch_interval(0.4, 0.0, 3, 0.3, 0.0, 3) == pytest.approx((0.1, 0.1), abs=1e-15)  # no spread seen
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [1.553, 1.514, 1.728], [1.61, 1.50, 1.49, 1.53]  # unequal sizes and spreads
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)  # from the samples themselves
    got = welch_interval(statistics.fmean(a), statistics.stdev(a), 3, statistics.fmean(b), statistics.stdev(b), 4)
    assert got == pytest.approx((ci.low, ci.high), rel=1e-9)  # the same formula: float rounding only


def test_welch_interval_does_not_depend_on_the_scale_and_t_refuses_a_bad_df():
    # stds of 1e-160: va = 3e-321 (subnormal), va² underflows to 0; Welch's df is scale-free, so the interval is
    # the one at scale 1 times 1e-160: equal stds, 3 + 3 seeds: df = 4, t₀.₉₇₅(4) = 2.776445 (scipy)
    lo, hi = welch_interval(5.0, 1.0, 3, 0.0, 1.0, 3)
    assert (hi - lo) / 2 == pytest.approx(2.776445 * math.sqrt(2 / 3), rel=1e-6)  # 7-digit constant
    tiny = welch_interval(5e-160, 1e-160, 3, 0.0, 1e-160, 3)
    assert tiny[0] == pytest.approx(lo * 1e-160, rel=1e-3) and tiny[1] == pytest.approx(hi * 1e-160, rel=1e-3)  # subnormal va
    one_spread = welch_interval(1.0, 0.0, 3, 0.0, 1.0, 3)  # one std 0: df = n − 1 = 2 of the other, t = 4.302653
    assert (one_spread[1] - one_spread[0]) / 2 == pytest.approx(4.302653 * math.sqrt(1 / 3), rel=1e-6)
    assert welch_interval(1.0, math.inf, 3, 0.0, 1.0, 3) is None
    with pytest.raises(ValueError, match="df > 0"):
        t_quantile_975(0)


def test_bootstrap_enumerates_every_resample_of_few_seeds():
    """3 seeds with values 0, 3, 6: the 27 ordered resamples' means have mean 3 and variance
    σ²/n = 6/3 = 2 exactly (σ² = 6, the population variance): the exact bootstrap, whatever the stream."""
    value = {0: 0.0, 3: 3.0, 7: 6.0}
    mean = lambda draw: sum(value[s] for s in draw) / len(draw)  # noqa: E731
    exact = bootstrap([0, 3, 7], mean, 1000, random.Random(1))
    assert len(exact) == 27 and exact == bootstrap([0, 3, 7], mean, 27, random.Random(2))
    assert np.mean(exact) == pytest.approx(3.0, abs=1e-12) and np.var(exact) == pytest.approx(2.0, abs=1e-12)
    drawn = bootstrap([0, 3, 7], mean, 26, random.Random(1))  # fewer draws than resamples: random ones
    assert len(drawn) == 26 and drawn != bootstrap([0, 3, 7], mean, 26, random.Random(2))
    assert bootstrap([0, 3, 7], lambda d: None if d.count(0) > 1 else 1, 1000, random.Random(0)) == [1] * 20  # 27 − the 7 with seed 0 twice or more


def test_the_exact_bootstrap_interval_of_a_mean_is_students_t_interval():
    """Exact bootstrap variance σ²/n times n/(n−1) is s²/n, so the interval is mean ± t₂·s/√n (scipy)."""
    from scipy import stats

    value = {0: 0.0, 3: 3.0, 7: 6.0}
    exact = bootstrap([0, 3, 7], lambda d: sum(value[s] for s in d) / 3, 1000, random.Random(0))
    lo, hi = stats.t.interval(0.95, 2, loc=3.0, scale=stats.sem([0.0, 3.0, 6.0]))
    assert seed_interval(3.0, exact, 3) == pytest.approx((lo, hi), abs=1e-9)
    assert seed_interval(3.0, exact[:19], 3) is None  # not the full set, and too few to stand for it


def test_paired_interval_is_the_paired_t_interval_and_cancels_a_shared_seed_swing():
    from scipy import stats as sps

    from lorascale.sweep.stats import paired_interval

    # a seed effect both arms share (+0.05, −0.03, 0): the paired interval is narrow, Welch's is not
    a, b = [2.11, 2.03, 2.06], [2.10, 2.02, 2.04]
    ref = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert paired_interval(a, b) == pytest.approx((ref.low, ref.high), rel=1e-12)  # float rounding only
    # by hand: d = 0.01, 0.01, 0.02 → mean 0.01333, sd 0.005774, t_2 = 4.3027: ±0.014343
    lo, hi = paired_interval(a, b)
    assert (lo + hi) / 2 == pytest.approx(0.04 / 3, abs=1e-12) and (hi - lo) / 2 == pytest.approx(0.0143426, abs=1e-6)
    # only the finite pairs count: d = 0.5, 1.0 → mean 0.75 ± t_1 (12.706) · 0.35355 / √2 = 0.75 ± 3.1766
    assert paired_interval([1.0, None, math.inf, 2.0], [0.5, 1.0, 1.0, 1.0]) == pytest.approx((-2.4266, 3.9266), abs=1e-4)
    assert paired_interval([1.0], [0.0]) is None and paired_interval([1.0, 2.0], [0.0, 1.0]) == (1.0, 1.0)


def test_a_tie_at_the_grid_s_edge_is_refined_from_the_interior_and_still_flagged():
    """[1.5, 1.5, 1.8] at log2 η −12, −11, −10 (equal accuracies are common): the interior tied point is the
    best, and the parabola through the three points has its vertex midway between the ties, at −11.5
    (f01 = 0, f12 = 0.3, a = 0.15, x* = −11.5 − 0/0.3); taking the first tied point left it unrefined at −12.
    The edge flag stays: the loss at −12 equals the best, so the valley may go on past the grid."""
    o = refine_optimum([-12, -11, -10], [1.5, 1.5, 1.8])
    assert (o.x_grid, o.refined, o.at_edge) == (-11, True, True)
    assert o.x == -11.5 and o.value == pytest.approx(1.5 - 0.15 * 0.25, abs=1e-12)  # 1.5 + a·(0.5)(−0.5); float rounding
    whole = refine_optimum([-12, -11, -10], [1.5, 1.5, 1.5])  # flat: an interior point, no curvature to refine
    assert (whole.x_grid, whole.refined, whole.at_edge) == (-11, False, True)
    inner = refine_optimum([-12, -11, -10, -9], [1.8, 1.5, 1.5, 1.8])  # a tie inside: no edge
    assert (inner.x_grid, inner.x, inner.at_edge) == (-11, -10.5, False)


def test_a_nan_value_is_no_value():
    """NaN never compares below anything: it must not become the 'best', nor empty the ties (an IndexError)."""
    o = refine_optimum([0, 1, 2], [math.nan, 1.0, 2.0])
    assert (o.x_grid, o.at_edge) == (1, False)


def test_no_parabola_across_a_grid_value_without_a_result():
    """Results at −9, −6, −5 of the grid −9 … −5: −9 is no neighbour of −6 (−8 and −7 have no result), so the
    optimum stays at −6 with ``gap``; without a grid (or with the grid those three points are) it is refined."""
    xs, ys = [-9, -6, -5], [3.7195, 3.6098, 3.6702]
    o = refine_optimum(xs, ys, grid=[-9, -8, -7, -6, -5])
    assert (o.x, o.refined, o.gap, o.at_edge) == (-6, False, True, False)
    for grid in (None, xs):
        assert refine_optimum(xs, ys, grid=grid).refined

