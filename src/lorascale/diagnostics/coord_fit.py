"""The coordinate check's numbers: log–log slopes, their confidence intervals, verdicts and the
learning-rate correction. Pure Python; imports nothing that needs torch.

A term y (δ¹, δ², δ³, the feature update, ‖ΔA‖, ‖ΔB‖ — entry RMS) measured at sizes x (ranks or
widths) under S seeds is summarised by the exponent k of y ∝ x^k:

* **per-seed slopes.** Each seed is one independent replication (its own adapter init and batch),
  fitted on its own: k_s = least-squares slope of log y against log x.
* **the interval is a Student-t interval over the per-seed slopes**: k̄ ± t_{0.975, S−1}·sd(k_s)/√S.
  Why not a bootstrap: over S = 2 or 3 seeds there are only 3 or 10 distinct resamples, so a
  bootstrap interval is degenerate (it can collapse to a point). Why not one pooled regression:
  the points of one seed share its init and batch, so they are not independent and the pooled
  degrees of freedom would be overstated. The t-interval is exact for normal per-seed slopes and
  honestly wide for few seeds (t = 12.7 at S = 2, 4.3 at S = 3). With a single seed the interval
  falls back to the OLS t-interval of the points about the line (df = K − 2), which measures only
  lack of fit.
* **curvature is not in the interval**: it is shared by every seed. :attr:`SlopeFit.segments` gives
  the slope between neighbouring sizes of the seed-mean curve, so a bend (a regime change such as
  η·n crossing 1, see docs/diagnostics.md) is visible next to the fit.

Verdict (:func:`verdict_of`): **flat** when |k| ≤ 0.1 and the interval lies inside ±0.2; **drift**
when |k| > 0.1, or when a value is not finite (the term overflowed at some size, with no slope to give);
**inconclusive** when |k| ≤ 0.1 but the interval is wider (or missing); **zero**
when the term is exactly 0 everywhere (Init[A]'s δ¹ and δ³ at step 1: B = 0 makes ∇_A = 0).

Correction (:func:`lr_exponent_correction`): if y ∝ η^p·x^k near the measured point, multiplying η
by x^c changes the slope to k + p·c, so c = −k/p flattens the term. p = ∂log y/∂log η is the term's
order in η, measured by re-running one point at f·η (:func:`eta_order`).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import NamedTuple, Sequence

from ..sweep.stats import ols, t_quantile_975
from .decomposition import loglog_slope

__all__ = [
    "Verdict", "SlopeFit", "FLAT_SLOPE", "FLAT_CI", "fit_slope", "verdict_of", "eta_order", "lr_exponent_correction",
    "Measurement", "TermFit", "fit_axis",
]

FLAT_SLOPE = 0.1  # |slope| within this: the term does not move with the size
FLAT_CI = 0.2  # ... and the 95% interval inside ±this: the seeds agree that it does not


class Verdict(StrEnum):
    FLAT = "flat"
    DRIFT = "drift"
    INCONCLUSIVE = "inconclusive"
    ZERO = "zero"


class SlopeFit(NamedTuple):
    slope: float | None  # mean of the per-seed slopes; None when some but not all values are ≤ 0, or one is not finite
    ci: tuple[float, float] | None  # 95% interval (module docs); None with one seed and two sizes
    per_seed: tuple[float, ...]
    segments: tuple[float, ...]  # slopes between neighbouring sizes of the seed-mean log y
    verdict: Verdict


class Measurement(NamedTuple):
    """One term of one layer type at one step of one run."""

    config: str
    width: int
    rank: int
    seed: int
    step: int
    kind: str  # layer type, or "all"
    term: str  # delta1, delta2, delta3, z_b, z_a, update_a, update_b
    value: float  # entry RMS
    lr: float
    eta_scale: float = 1.0  # ≠ 1 only in the run at f·η that measures the terms' order in η


class TermFit(NamedTuple):
    config: str
    axis: str  # "rank" or "width": the size the term is fitted against
    at: int  # the other size, held fixed
    term: str
    step: int
    sizes: tuple[int, ...]
    fit: SlopeFit
    lr_exponent: float  # slope of log η against log size in these runs: the rule's exponent (0 for a fixed η)
    eta_order: float | None  # p = ∂log y/∂log η at the one point where it was measured
    correction: float | None  # c = −k/p: η ∝ size^(lr_exponent + c) would make the term flat

    @property
    def corrected_exponent(self) -> float | None:
        return None if self.correction is None else self.lr_exponent + self.correction


def fit_axis(measurements: Sequence[Measurement], config: str, axis: str, at: int, terms: Sequence[str],
             kind: str = "all") -> list[TermFit]:
    """Every term at every step of ``config`` against ``axis`` ("rank" at width ``at``, or "width" at
    rank ``at``), for layer type ``kind``. Seeds missing a size are left out of that fit."""
    assert axis in ("rank", "width"), f"axis is rank or width, not {axis!r}"
    other = "width" if axis == "rank" else "rank"
    mine = [m for m in measurements if m.config == config and m.kind == kind]
    base = [m for m in mine if getattr(m, other) == at and m.eta_scale == 1.0]
    sizes = sorted({getattr(m, axis) for m in base})
    if len(sizes) < 2:
        return []
    values = {(getattr(m, axis), m.seed, m.step, m.term): m.value for m in base}
    lrs = {getattr(m, axis): m.lr for m in base}
    lr_exp = loglog_slope(sizes, [lrs[x] for x in sizes])
    orders = _eta_orders(mine)
    seeds = sorted({m.seed for m in base})
    out = []
    for term in terms:
        for step in sorted({m.step for m in base}):
            rows = [[values.get((x, seed, step, term)) for x in sizes] for seed in seeds]
            rows = [r for r in rows if None not in r]
            if not rows:
                continue
            fit = fit_slope(sizes, rows)
            p = orders.get((term, step))
            out.append(TermFit(config, axis, at, term, step, tuple(sizes), fit, lr_exp, p, lr_exponent_correction(fit.slope, p)))
    return out


def _eta_orders(measurements: Sequence[Measurement]) -> dict[tuple[str, int], float | None]:
    """(term, step) → p from each run at f·η and the run at η with the same width, rank and seed."""
    base = {(m.width, m.rank, m.seed, m.step, m.term): m.value for m in measurements if m.eta_scale == 1.0}
    out = {}
    for m in measurements:
        ref = base.get((m.width, m.rank, m.seed, m.step, m.term))
        if m.eta_scale != 1.0 and ref is not None:
            out[(m.term, m.step)] = eta_order(ref, m.value, m.eta_scale)
    return out


def fit_slope(xs: Sequence[float], ys_by_seed: Sequence[Sequence[float]]) -> SlopeFit:
    """The exponent of y ∝ x^k from one row of y per seed (aligned with ``xs``), with its interval and verdict."""
    xs = [float(x) for x in xs]
    assert len(xs) >= 2 and len(set(xs)) == len(xs), f"need ≥ 2 distinct sizes, got {xs}"
    rows = [[float(y) for y in row] for row in ys_by_seed]
    assert rows and all(len(r) == len(xs) for r in rows), "one value per size in every seed's row"
    values = [y for r in rows for y in r]
    if all(y == 0.0 for y in values):
        return SlopeFit(None, None, (), (), Verdict.ZERO)
    if not all(math.isfinite(y) for y in values):  # the term blew up at some size: the instability looked for
        return SlopeFit(None, None, (), (), Verdict.DRIFT)
    if not all(y > 0.0 for y in values):
        return SlopeFit(None, None, (), (), Verdict.INCONCLUSIVE)
    per_seed = tuple(loglog_slope(xs, r) for r in rows)
    slope = math.fsum(per_seed) / len(per_seed)
    ci = _seed_interval(per_seed) if len(per_seed) >= 2 else _single_seed_interval(xs, rows[0])
    lx = [math.log(x) for x in xs]
    ly = [math.fsum(math.log(r[i]) for r in rows) / len(rows) for i in range(len(xs))]
    order = sorted(range(len(xs)), key=lambda i: lx[i])
    segments = tuple((ly[j] - ly[i]) / (lx[j] - lx[i]) for i, j in zip(order, order[1:]))
    return SlopeFit(slope, ci, per_seed, segments, verdict_of(slope, ci))


def verdict_of(slope: float | None, ci: tuple[float, float] | None) -> Verdict:
    """flat / drift / inconclusive by the thresholds :data:`FLAT_SLOPE` and :data:`FLAT_CI` (module docs)."""
    if slope is None:
        return Verdict.INCONCLUSIVE
    eps = 1e-12  # a slope fitted from an exact power law is the exponent up to float rounding (~1e-16)
    if abs(slope) > FLAT_SLOPE + eps:
        return Verdict.DRIFT
    if ci is not None and -FLAT_CI - eps <= ci[0] and ci[1] <= FLAT_CI + eps:
        return Verdict.FLAT
    return Verdict.INCONCLUSIVE


def eta_order(y: float, y_scaled: float, factor: float) -> float | None:
    """p = ∂log y/∂log η from y at η and at factor·η; None when either is not positive.

    Under Adam's first steps (≈ SignSGD, μA Assumption 4.2) every factor update is ∝ η, so a term
    that contains one update (δ² from B = 0, ‖ΔA‖, ‖ΔB‖) has p = 1 and one that contains two
    (δ³, Init[A]'s δ¹ once B has moved) has p = 2; a term that sums both kinds lies in between.
    """
    assert factor > 0 and factor != 1.0, f"the η factor must be positive and ≠ 1, got {factor}"
    if not (y > 0 and y_scaled > 0 and math.isfinite(y) and math.isfinite(y_scaled)):
        return None
    return math.log(y_scaled / y) / math.log(factor)


def lr_exponent_correction(slope: float | None, order: float | None) -> float | None:
    """c = −k/p: the change of the learning-rate exponent (η ∝ x^c more) that makes y ∝ η^p·x^k flat.

    None when the term has no slope or does not respond to η (|p| < 0.05: nothing the learning rate
    can fix).
    """
    if slope is None or order is None or abs(order) < 0.05:
        return None
    return -slope / order


def _seed_interval(per_seed: Sequence[float]) -> tuple[float, float]:
    n = len(per_seed)
    m = math.fsum(per_seed) / n
    sd = math.sqrt(math.fsum((k - m) ** 2 for k in per_seed) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return m - half, m + half


def _single_seed_interval(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    a, _, se = ols([math.log(x) for x in xs], [math.log(y) for y in ys])
    if se is None:
        return None
    half = t_quantile_975(len(xs) - 2) * se
    return a - half, a + half
