"""The small numerics against independent references (closed forms, the statistics module, numpy)."""

import math
import random
import statistics

import pytest

from lorascale.sweep.stats import mean_std, ols, percentile, power_law, refine_optimum, seed_interval, t_quantile_975


def test_parabola_vertex_is_exact_on_uneven_grids():
    xs = [-3.0, -1.0, 0.5, 2.0]
    f = lambda x: 2.0 * (x - 0.2) ** 2 + 1.0  # noqa: E731
    o = refine_optimum(xs, [f(x) for x in xs])
    assert o.refined and o.x_grid == 0.5
    assert (o.x, o.value) == pytest.approx((0.2, 1.0), abs=1e-12)  # float rounding only


def test_optimum_edge_divergence_and_flat_cases():
    assert refine_optimum([0, 1, 2], [1.0, 2.0, 3.0]) == (0, 0, 1.0, False, True)
    o = refine_optimum([0, 1, 2, 3], [3.0, 1.0, 2.0, math.inf])  # an infinite neighbour of the best blocks nothing here
    assert o.refined and 0 < o.x < 2
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
    assert hi - 0.5 == pytest.approx(2.776 * statistics.stdev(v) * math.sqrt(5 / 4), rel=1e-12)  # t₄ = 2.776
    m, s, n = mean_std([1.0, 2.0, 4.0])
    assert (m, s, n) == pytest.approx((7 / 3, statistics.stdev([1, 2, 4]), 0), rel=1e-12)
    assert mean_std([2.5]) == (2.5, None, 0)
    assert mean_std([1.0, math.inf]) == (math.inf, None, 1)
    assert t_quantile_975(1) == 12.706 and t_quantile_975(200) == pytest.approx(1.9725, abs=1e-3)  # tables: 1.972
