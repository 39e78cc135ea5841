"""Fits of stored sweep results: pure math on plain records (no torch, no optuna).

μA (§5.1, App. B.6): for each configuration and rank, the optimal learning rate η* is the best
point of a log2 grid, selected separately on the EMA(0.1)-smoothed final training loss and on the
validation metric. We refine it with the parabola through the best grid point and its two
neighbours in log2 η, fit the log-log slope of η* against rank, and set it beside μA's prediction
(Table 1): −(1−γ)/2 for Init[A] with α = r^-γ (Cor. 4.4), 0 for Init[B] with α = 1 (Cor. 4.6).
"Rank-invariant" means the grid optima lie within one grid step (2×, §5.1); Init[B] with α = 1
should share full finetuning's optimum (§4.2, Fig. 5).

LoRA-α (§2): the scaling paths of eq. (2), L_η(m) = L(r, m·η_FFT, α₀) and L_α(m) = L(r, η_FFT, m·α₀)
(Fig. 1b), and the optimal α*(r) fitted as C·r^p by least squares in log space (footnote 1,
Fig. 1c), once with p free and once with p = 0.5.

Noise (issue 5): seeds aggregate into mean ± std per point; confidence intervals come from a
bootstrap over seeds, resampled jointly across a configuration since one seed fixes the data order
of all its points (interval: :func:`~lorascale.sweep.stats.seed_interval`). A point where any seed diverged scores +inf (unstable there) and is counted;
failed and interrupted runs are excluded and counted; a single-seed fit is flagged as noisy.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, fields
from typing import Callable, Literal, NamedTuple

from .stats import bootstrap, mean_std, ols, power_law, refine_optimum, seed_interval, t_quantile_975

__all__ = [
    "Record", "PointStat", "RankOptimum", "ConfigFit", "TransferGap", "PathFit", "AlphaLaw", "FitReport",
    "fit", "score",
]

Metric = Literal["ema", "eval"]
STATUSES = ("complete", "diverged", "failed", "interrupted")


@dataclass(frozen=True)
class Record:
    """One stored run as plain values; ``paths`` lists its LoRA-α path memberships ("eta"|"alpha", m)."""

    key: str
    config: str
    rank: int | None  # None for full finetuning
    log2_lr: float
    seed: int
    status: str  # one of STATUSES
    ema_loss: float | None = None
    eval_metric: str | None = None  # val_nll (lower is better) | val_accuracy (higher is better)
    eval_value: float | None = None
    alpha_mult: float = 1.0
    peft_alpha: float | None = None  # PEFT lora_alpha equivalent s·r: LoRA-α's α (Fig. 1)
    finetune: str = "lora"
    init: str | None = None
    gamma_eff: float | None = None  # the multiplier scales as s ∝ r^-γ_eff
    predicted_slope: float | None = None
    paths: tuple[tuple[str, float], ...] = ()
    curve: tuple[tuple[int, float], ...] = ()
    wall_time: float | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        v = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        v["paths"] = tuple((str(p), float(m)) for p, m in v.get("paths") or ())
        v["curve"] = tuple((int(s), float(x)) for s, x in v.get("curve") or ())
        return cls(**v)


def score(rec: Record, metric: Metric) -> float | None:
    """Lower-is-better score: +inf for a diverged run, None for a run without this result.

    Accuracy is negated so every metric is minimised; a "complete" run with a non-finite value is
    treated as diverged.
    """
    if rec.status == "diverged":
        return math.inf
    if rec.status != "complete":
        return None
    if metric == "ema":
        v = rec.ema_loss
    elif rec.eval_value is None:
        return None
    else:
        v = -rec.eval_value if rec.eval_metric == "val_accuracy" else rec.eval_value
    return float(v) if v is not None and math.isfinite(v) else math.inf


class PointStat(NamedTuple):
    x: float  # log2 η, log2 m or log2 α
    mean: float  # +inf if any seed diverged
    std: float | None  # sample std over seeds; None with one seed or a divergence
    n: int  # seeds with a result
    n_diverged: int


class RankOptimum(NamedTuple):
    rank: int | None
    x: float  # refined optimum (log2 η* or log2 α*)
    x_grid: float
    value: float  # best mean score (lower is better)
    refined: bool
    at_edge: bool
    ci: tuple[float, float] | None  # bootstrap CI of x over seeds
    points: tuple[PointStat, ...]

    @property
    def lr(self) -> float:
        return 2.0**self.x


class ConfigFit(NamedTuple):
    config: str
    alpha_mult: float
    finetune: str
    init: str | None
    gamma_eff: float | None
    predicted_slope: float | None
    ranks: tuple[RankOptimum, ...]
    slope: float | None  # d log η* / d log r
    slope_ci: tuple[float, float] | None
    slope_ci_method: str
    grid_step: float  # log2 spacing of the learning-rate grid
    spread: float | None  # max − min of the grid optima across ranks, in log2 η
    rank_invariant: bool | None  # spread within one grid step (μA §5.1)
    n_seeds: int
    noisy: bool  # one seed: η* is as noisy as one run
    counts: dict

    @property
    def label(self) -> str:
        return self.config if self.alpha_mult == 1.0 else f"{self.config} ×α{self.alpha_mult:g}"

    @property
    def slope_matches(self) -> bool | None:
        """Whether μA's predicted slope lies inside the slope's confidence interval."""
        if self.predicted_slope is None or self.slope_ci is None:
            return None
        return self.slope_ci[0] - 1e-9 <= self.predicted_slope <= self.slope_ci[1] + 1e-9


class TransferGap(NamedTuple):
    """log2 η*(Init[B], α = 1, r) − log2 η*(FFT), refined; μA predicts 0 within one grid step (§4.2)."""

    lora_config: str
    fft_config: str
    fft_log2_lr: float
    gaps: tuple[tuple[int, float], ...]
    mean_gap: float
    within_one_step: bool  # on the grid optima, as in the paper


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


class FitReport(NamedTuple):
    metric: str  # "ema" or the eval metric's name
    higher_is_better: bool
    configs: tuple[ConfigFit, ...]
    gaps: tuple[TransferGap, ...]
    paths: tuple[PathFit, ...]
    alpha_laws: tuple[AlphaLaw, ...]
    counts: dict
    notes: tuple[str, ...]

    def show(self, v: float | None) -> float | None:
        """A score in the metric's own units (accuracy was negated); None for +inf or None."""
        if v is None or not math.isfinite(v):
            return None
        return -v if self.higher_is_better else v


# --------------------------------------------------------------------------------------------


def fit(records, metric: Metric = "ema", n_boot: int = 1000, seed: int = 0) -> FitReport:
    """All fits from plain records; deterministic for a given ``seed`` of the bootstrap."""
    assert metric in ("ema", "eval"), f"metric must be ema or eval, got {metric!r}"
    records = [r for r in records if r.status in STATUSES]
    rng = random.Random(seed)
    evals = sorted({r.eval_metric for r in records if r.eval_metric})
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    counts["no_metric"] = sum(r.status == "complete" and score(r, metric) is None for r in records)
    configs = _config_fits(records, metric, n_boot, rng)
    notes = _notes(metric, evals, counts, configs)
    return FitReport(
        metric=metric if metric == "ema" else "/".join(evals) or "eval",
        higher_is_better=metric == "eval" and evals == ["val_accuracy"],
        configs=tuple(configs),
        gaps=tuple(_transfer_gaps(configs)),
        paths=tuple(_path_fits(records, metric)),
        alpha_laws=tuple(_alpha_laws(records, metric, n_boot, rng)),
        counts=counts,
        notes=tuple(notes),
    )


def _notes(metric, evals, counts, configs) -> list[str]:
    notes = []
    if metric == "eval" and len(evals) > 1:
        notes.append(f"records mix eval metrics {evals}; each point is scored on its own")
    if metric == "eval" and not evals:
        notes.append("no run stored an eval metric; fit with --metric ema")
    if counts["diverged"]:
        notes.append(f"{counts['diverged']} diverged runs score +inf: a point where any seed diverged is unstable")
    if counts["failed"] + counts["interrupted"]:
        notes.append(f"{counts['failed']} failed and {counts['interrupted']} interrupted runs are excluded;"
                     " re-run `lorascale sweep` to retry them")
    if counts["no_metric"]:
        notes.append(f"{counts['no_metric']} finished runs have no {metric} value and are excluded")
    if any(c.noisy for c in configs):
        notes.append("single-seed fits are noisy: at small budgets seed noise (±0.05–0.1 EMA loss) is as"
                     " large as the gap between neighbouring learning rates; add seeds")
    if any(o.at_edge for c in configs for o in c.ranks):
        notes.append("some optima sit at the edge of their learning-rate grid: extend the grid there")
    return notes


# cells: rank -> x -> seed -> score
Cells = dict


def _cells(recs, metric, x_of: Callable[[Record], float]) -> Cells:
    cells: Cells = defaultdict(lambda: defaultdict(dict))
    for r in recs:
        s = score(r, metric)
        if s is not None:
            cells[r.rank][round(x_of(r), 9)][r.seed] = s
    return cells


def _optima(cells: Cells, draw: list[int] | None = None) -> dict:
    """rank -> (Optimum, points) over the seeds in ``draw`` (with multiplicity; None: every seed once)."""
    out = {}
    for rank, by_x in cells.items():
        pts = []
        for x in sorted(by_x):
            vals = list(by_x[x].values()) if draw is None else [by_x[x][s] for s in draw if s in by_x[x]]
            if vals:
                m, sd, n_div = mean_std(vals)
                pts.append(PointStat(x, m, sd, len(vals), n_div))
        if len(pts) >= 2:
            opt = refine_optimum([p.x for p in pts], [p.mean for p in pts])
            if opt is not None:
                out[rank] = (opt, tuple(pts))
    return out


def _slope(optima: dict) -> tuple[float, float, float | None] | None:
    """OLS of the refined log2 η* on log2 r over the LoRA ranks: (slope, intercept, its SE)."""
    ranks = sorted(r for r in optima if r is not None)
    if len(ranks) < 2:
        return None
    return ols([math.log2(r) for r in ranks], [optima[r][0].x for r in ranks])


def _with_ci(optima: dict, samples: list[dict], n_seeds: int) -> tuple[RankOptimum, ...]:
    out = []
    for rank in sorted(optima, key=lambda r: -1 if r is None else r):
        opt, pts = optima[rank]
        ci = seed_interval(opt.x, [s[rank] for s in samples if rank in s], n_seeds)
        out.append(RankOptimum(rank, opt.x, opt.x_grid, opt.value, opt.refined, opt.at_edge, ci, pts))
    return tuple(out)


def _seed_ci(cells: Cells, seeds: list[int], n_boot: int, rng: random.Random):
    """Bootstrap over seeds: per-rank optimum samples and slope samples (empty with one seed)."""
    if len(seeds) < 2:
        return [], []

    def stat(draw):
        opts = _optima(cells, draw)
        sl = _slope(opts)
        return {r: o.x for r, (o, _) in opts.items()}, (sl[0] if sl else None)

    samples = bootstrap(seeds, stat, n_boot, rng)
    return [s for s, _ in samples], [sl for _, sl in samples if sl is not None]


def _config_fits(records, metric, n_boot, rng) -> list[ConfigFit]:
    groups = defaultdict(list)
    for r in records:
        groups[(r.config, r.alpha_mult)].append(r)
    fits = []
    for (config, alpha_mult), recs in sorted(groups.items()):
        cells = _cells(recs, metric, lambda r: r.log2_lr)
        optima = _optima(cells)
        if not optima:
            continue  # not a learning-rate sweep (e.g. the α-path: one η per point)
        seeds = sorted({s for by_x in cells.values() for by_seed in by_x.values() for s in by_seed})
        opt_samples, slope_samples = _seed_ci(cells, seeds, n_boot, rng)
        sl = _slope(optima)
        slope = slope_ci = None
        method = "n/a (fewer than 2 ranks)"
        if sl is not None:
            slope = sl[0]
            if len(seeds) >= 2:
                slope_ci, method = seed_interval(slope, slope_samples, len(seeds)), f"bootstrap over {len(seeds)} seeds"
            elif sl[2] is not None:
                k = sum(r is not None for r in optima)
                half = t_quantile_975(k - 2) * sl[2]
                slope_ci, method = (slope - half, slope + half), f"OLS t-interval over {k} ranks (single seed)"
            else:
                method = "n/a (single seed, 2 ranks)"
        xs = sorted({x for by_x in cells.values() for x in by_x})
        step = min((b - a for a, b in zip(xs, xs[1:])), default=1.0)
        lora = [o.x_grid for r, (o, _) in optima.items() if r is not None]
        spread = max(lora) - min(lora) if len(lora) >= 2 else None
        first = recs[0]
        fits.append(ConfigFit(
            config=config, alpha_mult=alpha_mult, finetune=first.finetune, init=first.init,
            gamma_eff=first.gamma_eff, predicted_slope=first.predicted_slope,
            ranks=_with_ci(optima, opt_samples, len(seeds)), slope=slope, slope_ci=slope_ci, slope_ci_method=method,
            grid_step=step, spread=spread, rank_invariant=None if spread is None else spread <= step + 1e-9,
            n_seeds=len(seeds), noisy=len(seeds) < 2,
            counts={s: sum(r.status == s for r in recs) for s in STATUSES},
        ))
    return fits


def _transfer_gaps(configs: list[ConfigFit]) -> list[TransferGap]:
    """Init[B] with constant α (γ_eff = 0) against each full-finetuning configuration (μA §4.2, Fig. 5)."""
    ffts = [c for c in configs if c.finetune == "full" and c.ranks]
    bs = [c for c in configs if c.finetune == "lora" and c.init == "B" and c.gamma_eff == 0.0]
    out = []
    for b in bs:
        for f in ffts:
            fo = f.ranks[0]
            gaps = tuple((o.rank, o.x - fo.x) for o in b.ranks)
            step = max(b.grid_step, f.grid_step)
            within = all(abs(o.x_grid - fo.x_grid) <= step + 1e-9 for o in b.ranks)
            out.append(TransferGap(b.label, f.label, fo.x, gaps, sum(g for _, g in gaps) / len(gaps), within))
    return out


def _path_fits(records, metric) -> list[PathFit]:
    members = defaultdict(list)  # (config, rank, path) -> [(log2 m, record)]
    for r in records:
        for path, m in r.paths:
            members[(r.config, r.rank, path)].append((math.log2(m), r))
    out = []
    for (config, rank, path), items in sorted(members.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        xm = {id(r): x for x, r in items}
        cells = _cells([r for _, r in items], metric, lambda r: xm[id(r)])
        optima = _optima(cells)
        if rank not in optima:
            continue
        opt, pts = optima[rank]
        best = min(pts, key=lambda p: p.mean)  # finite: refine_optimum found one
        out.append(PathFit(config, rank, path, pts, opt.x, best.mean, best.std, opt.at_edge))
    return out


def _alpha_laws(records, metric, n_boot, rng) -> list[AlphaLaw]:
    groups = defaultdict(list)
    for r in records:
        if r.finetune == "lora":
            groups[(r.config, round(r.log2_lr, 9))].append(r)
    laws = []
    for (config, log2_lr), recs in sorted(groups.items()):
        units = "lora_alpha" if all(r.peft_alpha for r in recs) else "multiplier"
        x_of = (lambda r: math.log2(r.peft_alpha)) if units == "lora_alpha" else (lambda r: math.log2(r.alpha_mult))
        cells = _cells(recs, metric, x_of)
        optima = _optima(cells)
        ranks = sorted(r for r in optima if r is not None)
        if len(ranks) < 2:
            continue  # α*(r) needs an α sweep at two ranks or more
        seeds = sorted({s for by_x in cells.values() for by_seed in by_x.values() for s in by_seed})
        opt_samples, _ = _seed_ci(cells, seeds, n_boot, rng)
        alphas = [2.0 ** optima[r][0].x for r in ranks]
        c, p, rms = power_law(ranks, alphas)
        c_half, _, rms_half = power_law(ranks, alphas, p=0.5)
        p_ci = None
        if len(seeds) >= 2:
            p_samples = [ols([math.log2(r) for r in ranks], [s[r] for r in ranks])[0]
                         for s in opt_samples if all(r in s for r in ranks)]
            p_ci = seed_interval(p, p_samples, len(seeds))
        laws.append(AlphaLaw(config, log2_lr, units, _with_ci({r: optima[r] for r in ranks}, opt_samples, len(seeds)),
                             c, p, p_ci, rms, c_half, rms_half, len(seeds) < 2))
    return laws
