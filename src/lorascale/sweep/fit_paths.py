"""LoRA-α fits (§2): the scaling paths of eq. (2) and the optimal α*(r) = C·r^p (pure math on records).

The paths, L_η(m) = L(r, m·η_FFT, α₀) and L_α(m) = L(r, η_FFT, m·α₀) (Fig. 1b): per rank, the score
against log2 m and its refined optimum m*; where a rank has both, their comparison (Finding II: does the
α-path reach the lower loss, at the larger m*?) with seed-bootstrap intervals. The law: at each learning rate, the optimal α* per rank
(in PEFT lora_alpha units s·r when every run has one, else as the rule's multiplier) fitted as
C·r^p by least squares in log space (footnote 1, Fig. 1c), once with p free and once with p = 0.5.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

from ..rules import Finetune
from .optima import PointStat, RankOptimum, cells, optima, records_grid, seed_ci, seeds_at, seeds_of, unless_bound, with_ci
from .stats import bootstrap, bootstrap_rng, ols, power_law, seed_interval

__all__ = ["PathFit", "PathComparison", "AlphaLaw", "path_fits", "path_comparisons", "alpha_laws"]


class PathFit(NamedTuple):
    """One LoRA-α scaling path (eq. (2)) at one rank: score against log2 m, the best score and m*."""

    config: str
    rank: int
    path: str  # "eta": L(r, m·η_FFT, α₀) | "alpha": L(r, η_FFT, m·α₀)
    points: tuple[PointStat, ...]
    log2_m_star: float  # refined
    best_value: float  # best observed mean
    best_std: float | None
    at_edge: bool
    vertex_value: float  # the refining parabola's value at log2_m_star (= best_value when not refined)

    @property
    def m_star(self) -> float:
        return 2.0**self.log2_m_star


class AlphaLaw(NamedTuple):
    """α*(r) = C·r^p at one learning rate (LoRA-α Fig. 1c); α in PEFT lora_alpha units (s·r)."""

    config: str
    log2_lr: float
    units: str  # "lora_alpha" or "multiplier" (rules whose α depends on the layer width)
    optima: tuple[RankOptimum, ...]  # x = log2 α*
    c: float | None
    p: float | None
    p_ci: tuple[float, float] | None
    rms: float | None  # log2 residual, p free
    c_half: float
    rms_half: float
    noisy: bool
    c_half_ci: tuple[float, float] | None = None  # 95% CI of C at p = ½ (bootstrap over seeds, as p_ci)


def _path_members(records) -> dict:
    """(config, rank, path) -> [(log2 m, record)]. Both paths start at the base point (η_FFT, α₀), m = 1:
    a run there belongs to every path of its configuration and rank, whatever memberships it was stored
    with (a study extended by the η-path holds its base runs as α-path points only)."""
    members = defaultdict(list)
    base = defaultdict(dict)  # (config, rank) -> {id: record} of the runs at m = 1
    for r in records:
        for path, m in r.point.paths:
            members[(r.point.config, r.point.rank, path)].append((math.log2(m), r))
            if m == 1.0:
                base[(r.point.config, r.point.rank)][id(r)] = r
    for (config, rank, path), items in members.items():
        held = {id(r) for _, r in items}
        items += [(0.0, r) for k, r in base[(config, rank)].items() if k not in held]
    return members


def _path_cells(items, metric):
    xm = {id(r): x for x, r in items}
    return cells([r for _, r in items], metric, lambda r: xm[id(r)])


def path_fits(records, metric) -> list[PathFit]:
    out = []
    for (config, rank, path), items in sorted(_path_members(records).items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        opts = optima(_path_cells(items, metric))
        if rank not in opts:
            continue
        opt, pts = opts[rank]
        best = min(pts, key=lambda p: p.mean)  # finite: refine_optimum found one
        out.append(PathFit(config, rank, path, pts, opt.x, best.mean, best.std, opt.at_edge, opt.value))
    return out


class PathComparison(NamedTuple):
    """LoRA-α Finding II at one rank (Fig. 1b): the α-path against the η-path from the same base.

    Both differences are α-path minus η-path; the CIs come from a bootstrap over seeds, resampled jointly
    for the two paths (a seed fixes the data order of every run)."""

    config: str
    rank: int
    best_gap: float  # best mean score, α − η, in lower-is-better score units: < 0 means the α-path went lower
    best_gap_ci: tuple[float, float] | None
    log2_m_gap: float  # log2 m*_α − log2 m*_η (refined optima): > 0 means the α-path's optimal multiplier is larger
    log2_m_gap_ci: tuple[float, float] | None
    n_seeds: int


def path_comparisons(records, metric, n_boot, seed) -> list[PathComparison]:
    members = _path_members(records)
    out = []
    for config, rank in sorted({(c, r) for c, r, p in members if p == "alpha" and (c, r, "eta") in members},
                               key=lambda k: (k[0], k[1] or 0)):
        both = {p: _path_cells(members[(config, rank, p)], metric) for p in ("alpha", "eta")}

        def stat(draw=None):
            o = {p: optima(c, draw).get(rank) for p, c in both.items()}
            if None in o.values():
                return None
            best = {p: min(pt.mean for pt in pts) for p, (_, pts) in o.items()}
            if not all(map(math.isfinite, best.values())):
                return None
            return best["alpha"] - best["eta"], o["alpha"][0].x - o["eta"][0].x

        point = stat()
        if point is None:
            continue
        seeds = sorted(set(seeds_of(both["alpha"])) | set(seeds_of(both["eta"])))
        samples = (bootstrap(seeds, stat, n_boot, bootstrap_rng(seed, "paths", config, rank))
                   if len(seeds) >= 2 else [])
        n = min(seeds_at(c, rank) for c in both.values())  # a path run at one seed gives no interval
        out.append(PathComparison(config, rank, point[0], seed_interval(point[0], [s[0] for s in samples], n),
                                  point[1], seed_interval(point[1], [s[1] for s in samples], n), len(seeds)))
    return out


def alpha_laws(records, metric, n_boot, seed) -> list[AlphaLaw]:
    groups = defaultdict(list)
    for r in records:
        if r.point.finetune == Finetune.LORA:
            groups[(r.point.config, round(r.point.log2_lr, 9))].append(r)
    laws = []
    for (config, log2_lr), recs in sorted(groups.items()):
        units = "lora_alpha" if all(r.point.peft_alpha for r in recs) else "multiplier"
        x_of = ((lambda r: math.log2(r.point.peft_alpha)) if units == "lora_alpha"
                else (lambda r: math.log2(r.point.alpha_mult)))
        c = cells(recs, metric, x_of)
        grid = records_grid(recs, x_of)  # failed runs' α too
        opts = optima(c, grid=grid)
        ranks = sorted(r for r in opts if r is not None)
        if len(ranks) < 2:
            continue  # α*(r) needs an α sweep at two ranks or more
        seeds = seeds_of(c)
        opt_samples, _ = seed_ci(c, seeds, n_boot, bootstrap_rng(seed, "alpha", config, log2_lr), grid)
        alphas = [2.0 ** opts[r][0].x for r in ranks]
        c_free, p, rms = power_law(ranks, alphas)
        c_half, _, rms_half = power_law(ranks, alphas, p=0.5)
        p_ci = c_half_ci = None
        fewest = min(seeds_at(c, r) for r in ranks)  # t and the variance correction count the thinnest rank's seeds
        if len(seeds) >= 2 and fewest >= 2:
            whole = [s for s in opt_samples if all(r in s for r in ranks)]
            p_ci = seed_interval(p, [ols([math.log2(r) for r in ranks], [s[r] for r in ranks])[0] for s in whole], fewest)
            # at p = ½, log2 C = mean over ranks of (log2 α* − ½·log2 r): its interval in log2, then back
            log2_c = lambda s: sum(s[r] - 0.5 * math.log2(r) for r in ranks) / len(ranks)  # noqa: E731
            ci = seed_interval(math.log2(c_half), [log2_c(s) for s in whole], fewest)
            # an α* at its grid's edge (or beside a diverged or unmeasured α) is a bound: every resample
            # picks the same grid point, and a zero-width interval would claim a precision never measured
            censored = any(opts[r][0].at_edge or not opts[r][0].refined for r in ranks)
            p_ci, ci = unless_bound(p_ci, censored), unless_bound(ci, censored)
            c_half_ci = None if ci is None else (2.0 ** ci[0], 2.0 ** ci[1])
        laws.append(AlphaLaw(config, log2_lr, units, with_ci({r: opts[r] for r in ranks}, opt_samples, c),
                             c_free, p, p_ci, rms, c_half, rms_half, len(seeds) < 2, c_half_ci))
    return laws
