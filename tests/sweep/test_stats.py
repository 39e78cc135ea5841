"""The small numerics against independent references (numpy, closed forms)."""

import math
import random

import numpy as np
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


def test_ols_and_power_law_match_numpy():
    rng = random.Random(0)
    xs = [float(i) for i in range(8)]
    ys = [0.7 * x - 2 + rng.gauss(0, 0.1) for x in xs]
    a, b, se = ols(xs, ys)
    (na, nb), cov = np.polyfit(xs, ys, 1, cov="unscaled")
    resid = np.array(ys) - (na * np.array(xs) + nb)
    assert (a, b) == pytest.approx((na, nb), rel=1e-10)
    assert se == pytest.approx(math.sqrt(cov[0, 0] * resid @ resid / (len(xs) - 2)), rel=1e-10)
    c, p, rms = power_law([4, 16, 64], [3 * 4**0.6, 3 * 16**0.6, 3 * 64**0.6])
    assert (c, p, rms) == pytest.approx((3.0, 0.6, 0.0), abs=1e-12)


def test_percentile_interval_and_mean_std_match_numpy():
    v = sorted(random.Random(1).random() for _ in range(101))
    for q in (0.025, 0.5, 0.975):
        assert percentile(v, q) == pytest.approx(np.percentile(v, 100 * q), rel=1e-12)
    assert seed_interval(0.0, v[:10], 5) is None  # too few bootstrap replicates for a 95% interval
    assert seed_interval(0.0, v, 1) is None  # one seed: nothing to resample
    lo, hi = seed_interval(0.5, v, 5)
    assert hi - 0.5 == 0.5 - lo == pytest.approx(2.776 * np.std(v, ddof=1) * math.sqrt(5 / 4), rel=1e-12)  # t₄ = 2.776
    m, s, n = mean_std([1.0, 2.0, 4.0])
    assert (m, s, n) == pytest.approx((7 / 3, np.std([1, 2, 4], ddof=1), 0), rel=1e-12)
    assert mean_std([1.0, math.inf]) == (math.inf, None, 1)
    assert t_quantile_975(1) == 12.706 and t_quantile_975(200) == pytest.approx(1.9725, abs=1e-3)  # tables: 1.972
