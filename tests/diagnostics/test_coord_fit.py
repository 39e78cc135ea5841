"""The coordinate check's pure fit: hand-made inputs with known slopes → exact slopes, intervals, verdicts."""

import math

import numpy as np
import pytest

from lorascale.diagnostics.coord_fit import (FLAT_CI, FLAT_SLOPE, Measurement, Verdict, eta_order, fit_axis, fit_slope,
                                             lr_exponent_correction, verdict_of)

RANKS = (4, 16, 64, 256)
EXACT = 1e-12  # power laws in, logs out: only rounding separates the fit from the truth (t quantiles to 17 digits)


def power(xs, k, c=1.0):
    return [c * x**k for x in xs]


@pytest.mark.parametrize("k, verdict", [(0.0, Verdict.FLAT), (0.05, Verdict.FLAT), (-0.1, Verdict.FLAT),
                                        (0.5, Verdict.DRIFT), (-1.0, Verdict.DRIFT)])
def test_exact_power_laws_give_their_exponent_with_a_zero_width_interval(k, verdict):
    f = fit_slope(RANKS, [power(RANKS, k, 0.3), power(RANKS, k, 7.0)])  # seeds differ in the constant only
    assert f.slope == pytest.approx(k, abs=EXACT)
    assert f.per_seed == pytest.approx((k, k), abs=EXACT)
    assert f.ci == pytest.approx((k, k), abs=EXACT)  # the seeds agree exactly: sd = 0
    assert f.segments == pytest.approx((k, k, k), abs=EXACT)
    assert f.verdict is verdict


def test_interval_is_a_student_t_interval_over_the_per_seed_slopes():
    f = fit_slope(RANKS, [power(RANKS, 0.0), power(RANKS, 0.1)])
    assert f.slope == pytest.approx(0.05, abs=EXACT)
    half = 12.706204736174698 * (0.1 / math.sqrt(2)) / math.sqrt(2)  # t_{0.975,1} · sd / √S with sd = 0.1/√2
    assert f.ci == pytest.approx((0.05 - half, 0.05 + half), abs=EXACT)
    assert f.verdict is Verdict.INCONCLUSIVE  # slope within ±0.1, but two seeds cannot pin it to ±0.2
    three = fit_slope(RANKS, [power(RANKS, 0.0), power(RANKS, 0.01), power(RANKS, 0.02)])
    half3 = 4.302652729749464 * 0.01 / math.sqrt(3)
    assert three.ci == pytest.approx((0.01 - half3, 0.01 + half3), abs=EXACT) and three.verdict is Verdict.FLAT


def test_a_bend_shows_in_the_segments_not_in_the_interval():
    bent = [1.0, 1.0, 4.0, 16.0]  # flat, then slope 1 in log4 steps
    f = fit_slope(RANKS, [bent, [2 * y for y in bent]])
    assert f.segments == pytest.approx((0.0, 1.0, 1.0), abs=EXACT)
    assert f.ci == pytest.approx((f.slope, f.slope), abs=EXACT)  # both seeds bend alike: the interval is 0 wide


def test_single_seed_interval_is_the_ols_interval_about_the_line():
    ys = [1.0, 2.3, 3.1, 9.0]
    f = fit_slope(RANKS, [ys])
    coef, cov = np.polyfit(np.log(RANKS), np.log(ys), 1, cov=True)  # numpy scales cov by SSR/(n − 2)
    half = 4.302652729749464 * math.sqrt(cov[0, 0])  # t_{0.975, df=2}, to float precision
    assert f.slope == pytest.approx(coef[0], abs=1e-10)
    assert f.ci == pytest.approx((coef[0] - half, coef[0] + half), abs=1e-10)
    assert fit_slope((4, 16), [[1.0, 2.0]]).ci is None  # a line through two points has no residuals


def test_zero_terms_and_gaps():
    assert fit_slope(RANKS, [[0.0] * 4, [0.0] * 4]).verdict is Verdict.ZERO  # Init[A]'s δ¹ at step 1
    partial = fit_slope(RANKS, [[0.0, 1.0, 2.0, 3.0]])
    assert partial.slope is None and partial.verdict is Verdict.INCONCLUSIVE
    for blown in (math.inf, math.nan):  # a term that overflowed at one size drifts: the instability the check looks for
        fit = fit_slope(RANKS, [[1.0, 1.0, 1.0, blown], [1.0, 1.0, 1.0, 1.0]])
        assert (fit.slope, fit.ci, fit.verdict) == (None, None, Verdict.DRIFT)


@pytest.mark.parametrize("slope, ci, verdict", [
    (FLAT_SLOPE, (-FLAT_CI, FLAT_CI), Verdict.FLAT),  # the thresholds themselves are inside
    (FLAT_SLOPE + 1e-9, (0.0, 0.15), Verdict.DRIFT),
    (0.0, (-0.21, 0.1), Verdict.INCONCLUSIVE),
    (0.0, None, Verdict.INCONCLUSIVE),
    (None, None, Verdict.INCONCLUSIVE),
    (-0.6, (-0.7, -0.5), Verdict.DRIFT),
])
def test_verdict_thresholds(slope, ci, verdict):
    assert verdict_of(slope, ci) is verdict


def test_order_in_eta_and_the_correction():
    assert eta_order(3.0, 12.0, 2.0) == pytest.approx(2.0, abs=EXACT)  # y ∝ η²
    assert eta_order(3.0, 3.0 * 4**0.5, 4.0) == pytest.approx(0.5, abs=EXACT)
    assert eta_order(0.0, 1.0, 2.0) is None
    # y ∝ η^p r^k is flattened by η ∝ r^c with p·c = −k
    assert lr_exponent_correction(1.0, 2.0) == pytest.approx(-0.5, abs=EXACT)
    assert lr_exponent_correction(-0.5, 1.0) == pytest.approx(0.5, abs=EXACT)
    assert lr_exponent_correction(0.3, 0.0) is None and lr_exponent_correction(None, 1.0) is None


def _world(rule_exponent: float, k: float, p: float, eta0: float = 1e-3, factor: float = 2.0) -> list[Measurement]:
    """y = η^p · r^k with η = η0·r^b: the slope seen is k + p·b, whatever rule b produced it."""
    out = []
    for r in RANKS:
        lr = eta0 * r**rule_exponent
        for seed, c in ((0, 1.0), (1, 3.0)):
            for step in (1, 2):
                out.append(Measurement("cfg", 64, r, seed, step, "all", "delta2", c * step * lr**p * r**k, lr))
                out.append(Measurement("cfg", 64, r, seed, step, "q_proj", "delta2", 99.0, lr))  # another layer type
    r = 16  # the one point where the order in η is measured
    lr = eta0 * r**rule_exponent * factor
    out += [Measurement("cfg", 64, r, 0, step, "all", "delta2", step * lr**p * r**k, lr, factor) for step in (1, 2)]
    return out


@pytest.mark.parametrize("b", [0.0, -0.5])  # a fixed η, and a rule with its own exponent
def test_fit_axis_recovers_the_exponent_the_order_and_the_rule_independent_correction(b):
    k, p = 1.0, 2.0  # e.g. μA's Init[A] δ² at t ≥ 3: η²·r·n
    fits = fit_axis(_world(b, k, p), "cfg", "rank", 64, ["delta2", "delta1"])
    assert [(f.term, f.step) for f in fits] == [("delta2", 1), ("delta2", 2)]  # no delta1 measured: no fit
    for f in fits:
        assert f.sizes == RANKS and f.at == 64 and f.axis == "rank"
        assert f.fit.slope == pytest.approx(k + p * b, abs=1e-9)
        assert f.lr_exponent == pytest.approx(b, abs=1e-12)
        assert f.eta_order == pytest.approx(p, abs=1e-9)
        assert f.correction == pytest.approx(-(k + p * b) / p, abs=1e-9)
        assert f.corrected_exponent == pytest.approx(-k / p, abs=1e-9)  # η ∝ r^-1/2 flattens η²·r, from any start
    assert fit_axis(_world(0.0, k, p), "cfg", "width", 4, ["delta2"]) == []  # one width: nothing to fit against
