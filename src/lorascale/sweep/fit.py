"""Fits of stored sweep results: pure math on plain records (no torch, no optuna).

μA (§5.1, App. B.6): for each configuration and rank, the optimal learning rate η* is the best
point of a log2 grid, selected separately on the EMA(0.1)-smoothed final training loss and on the
validation metric. We refine it with the parabola through the best grid point and its two
neighbours in log2 η, fit the log-log slope of η* against rank, and set it beside μA's prediction
(Table 1): −(1−γ)/2 for Init[A] with α = r^-γ (Cor. 4.4), 0 for Init[B] with α = 1 (Cor. 4.6).
"Rank-invariant" means the grid optima lie within one grid step (2×, §5.1); Init[B] with α = 1
should share full finetuning's optimum (§4.2, Fig. 5).

LoRA-α (§2): the scaling paths and α*(r) = C·r^p live in :mod:`.fit_paths`; :func:`fit` runs both.

Noise (issue 5): seeds aggregate into mean ± std per point; confidence intervals come from a
bootstrap over seeds, resampled jointly across a configuration since one seed fixes the data order
of all its points (interval: :func:`~lorascale.sweep.stats.seed_interval`). A point where any seed diverged scores +inf (unstable there) and is counted;
failed and interrupted runs are excluded and counted; a single-seed fit is flagged as noisy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

from ..rules import Finetune, Init
from ..schema import NonNegativeInt, Settings, setting
from ..vocabulary import RunStatus, higher_is_better
from .fit_paths import AlphaLaw, PathComparison, PathFit, alpha_laws, path_comparisons, path_fits
from .optima import (
    FIT_METRICS, Metric, PointStat, RankOptimum, cells, grid_of, optima, records_grid, rank_slope, score, seed_ci, seeds_at, seeds_of,
    uneven_points, unless_bound, with_ci,
)
from .records import RECORD_STATUSES, Record
from .stats import bootstrap_rng, seed_interval, t_quantile_975

__all__ = [
    "Record", "PointStat", "RankOptimum", "ConfigFit", "TransferGap", "PathFit", "AlphaLaw", "FitReport",
    "fit", "score", "FitSettings", "DEFAULT_FIT", "MAX_BOOTSTRAP",
]


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
    rank_invariant: bool | None  # spread within one grid step (μA §5.1); None while an optimum is not bracketed
    n_seeds: int
    noisy: bool  # one seed: η* is as noisy as one run
    counts: dict
    scale: float | None = None  # the multiplier s = lora_alpha/r where it does not depend on rank (γ_eff = 0)
    uneven: tuple[tuple[int | None, float, int, int], ...] = ()  # (rank, log2 η, seeds there, seeds at the rank)

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
    within_one_step: bool | None  # on the grid optima, as in the paper; None while an optimum is not bracketed


class FitReport(NamedTuple):
    metric: str  # "ema" or the eval metric's name
    higher_is_better: bool
    configs: tuple[ConfigFit, ...]
    gaps: tuple[TransferGap, ...]
    paths: tuple[PathFit, ...]
    alpha_laws: tuple[AlphaLaw, ...]
    counts: dict
    notes: tuple[str, ...]
    path_comparisons: tuple[PathComparison, ...] = ()

    def show(self, v: float | None) -> float | None:
        """A score in the metric's own units (accuracy was negated); None for +inf or None."""
        if v is None or not math.isfinite(v):
            return None
        return -v if self.higher_is_better else v


# --------------------------------------------------------------------------------------------


MAX_BOOTSTRAP = 100_000  # a CI's Monte Carlo error is ~1/√B: 1e5 resamples is far past useful


class FitSettings(Settings):
    """How a stored sweep is fitted: what the optima are selected on, and the bootstrap behind the CIs."""

    metric: Metric = setting("ema", "what optima are selected on: " + "; ".join(f"{k}: {v}" for k, v in FIT_METRICS.items()),
                             fix="ema selects like μA; val_loss on the fixed held-out set")
    bootstrap: NonNegativeInt = setting(1000, "bootstrap resamples over seeds for the CIs (0: none)", le=MAX_BOOTSTRAP,
                                        fix="1000 resamples give CIs to ~3%")


DEFAULT_FIT = FitSettings()


def fit(records, metric: Metric = DEFAULT_FIT.metric, n_boot: int = DEFAULT_FIT.bootstrap, seed: int = 0,
        pending: int = 0) -> FitReport:
    """All fits from plain records; deterministic for a given ``seed`` of the bootstrap. A bad ``metric`` or
    ``n_boot`` raises ConfigErrors naming the setting (``metric``, ``bootstrap``). ``pending``: the study's
    points still queued or running, which the notes mention (the fits see only finished points)."""
    settings = FitSettings(metric=metric, bootstrap=n_boot)
    metric, n_boot = settings.metric, settings.bootstrap  # as validated (1e3 → 1000)
    records = [r for r in records if r.outcome.status in RECORD_STATUSES]
    evals = sorted({r.outcome.eval_metric for r in records if r.outcome.eval_metric})
    counts = _counts(records)
    counts["no_metric"] = sum(r.outcome.status == RunStatus.COMPLETE and score(r, metric) is None for r in records)
    configs = _config_fits(records, metric, n_boot, seed)
    laws = alpha_laws(records, metric, n_boot, seed)
    notes = _notes(metric, evals, counts, configs, laws) + _unfitted(records, metric, configs)
    if pending:
        notes.append(f"{pending} points of the study are still queued or running: these fits, their optima and"
                     " grid edges see only the finished points; re-run `lorascale fit` when the sweep is done")
    return FitReport(
        metric=metric if metric != "eval" else "/".join(evals) or "eval",
        higher_is_better=metric == "eval" and bool(evals) and all(higher_is_better(e) for e in evals),
        configs=tuple(configs),
        gaps=tuple(_transfer_gaps(configs)),
        paths=tuple(path_fits(records, metric)),
        alpha_laws=tuple(laws),
        counts=counts,
        notes=tuple(notes),
        path_comparisons=tuple(path_comparisons(records, metric, n_boot, seed)),
    )


def _counts(records) -> dict:
    """Runs per status (complete, diverged, interrupted, failed), as plain strings for JSON."""
    return {str(s): sum(r.outcome.status == s for r in records) for s in RECORD_STATUSES}


def _notes(metric, evals, counts, configs, laws=()) -> list[str]:
    notes = []
    if metric == "eval" and len(evals) > 1:
        notes.append(f"records mix eval metrics {evals}; each point is scored on its own")
    if metric == "eval" and not evals:
        notes.append("no run stored an eval metric, so nothing was fitted; fit with `metric` ema")
    if counts["diverged"]:
        notes.append(f"{counts['diverged']} diverged runs score +inf: a point where any seed diverged is unstable")
    if counts["failed"] + counts["interrupted"]:
        notes.append(f"{counts['failed']} failed and {counts['interrupted']} interrupted runs are excluded;"
                     " re-run `lorascale sweep` to retry them")
    if counts["no_metric"]:
        notes.append(f"{counts['no_metric']} finished runs have no {metric} value and are excluded")
    single = [c.label for c in configs if c.noisy]
    if single:
        which = "" if len(single) == len(configs) else f" ({', '.join(single)}; the rest have more seeds)"
        notes.append(f"single-seed fits are noisy{which}: at small budgets seed noise (±0.05–0.1 EMA loss) is as"
                     " large as the gap between neighbouring learning rates; add seeds")
    if any(o.at_edge for c in configs for o in c.ranks):
        notes.append("some optima sit at the edge of their learning-rate grid: extend the grid there")
    edges = [f"{law.config} at log2 η = {law.log2_lr:g}, r = {o.rank}" for law in laws for o in law.optima if o.at_edge]
    if edges:
        notes.append(f"some α* sit at the edge of their α grid, so α*(r)'s p and C carry no interval there:"
                     f" {'; '.join(edges)}; extend the α grid there")
    gaps = [f"{c.label}, {'FFT' if o.rank is None else f'r = {o.rank}'} (log2 η = {o.x_grid:g})"
            for c in configs for o in c.ranks if o.gap]
    gaps += [f"{law.config} α*, r = {o.rank}" for law in laws for o in law.optima if o.gap]
    if gaps:
        notes.append(f"a grid value beside these optima has no result at their rank, so they are kept on the grid"
                     f" (not refined, no rank-invariance verdict): {'; '.join(gaps)}; re-run `lorascale sweep` to"
                     " fill them")
    for c in configs:
        if c.uneven:
            where = "; ".join(f"{'FFT' if r is None else f'r = {r}'}, log2 η = {x:g}: {k} of {n} seeds"
                              for r, x, k, n in c.uneven)
            notes.append(f"{c.label}: some points lack seeds their rank has, so their means are over other seeds"
                         f" and the optimum can move with the seed set: {where}; re-run `lorascale sweep` to fill them")
    return notes


def _unfitted(records, metric, configs) -> list[str]:
    """Notes for learning-rate sweeps, or ranks of them, that got no optimum: every rate diverged, or fewer
    than 2 rates have a score. Without them they would vanish from the tables unremarked."""
    fitted = {(c.config, c.alpha_mult): {o.rank for o in c.ranks} for c in configs}
    groups = defaultdict(lambda: defaultdict(set))
    for r in records:
        if r.point.log2_lr is not None:
            groups[(r.point.config, r.point.alpha_mult)][r.point.rank].add(r.point.log2_lr)
    notes = []
    for (config, alpha_mult), by_rank in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        swept = sorted((rank for rank, xs in by_rank.items() if len(xs) >= 2), key=lambda r: -1 if r is None else r)
        if not swept:
            continue  # one rate per rank: not a learning-rate sweep (the α-path)
        missing = [r for r in swept if r not in fitted.get((config, alpha_mult), set())]
        if missing:
            where = ", ".join("FFT" if r is None else f"r = {r}" for r in missing)
            notes.append(f"{config}: no optimum at {where}: every learning rate there diverged, or fewer than 2 have a"
                         f" score ({metric}); lower the grid there, or re-run `lorascale sweep` to finish its points")
    return notes


def _config_fits(records, metric, n_boot, seed) -> list[ConfigFit]:
    groups = defaultdict(list)
    for r in records:
        groups[(r.point.config, r.point.alpha_mult)].append(r)
    fits = []
    for (config, alpha_mult), recs in sorted(groups.items()):
        c = cells(recs, metric, lambda r: r.point.log2_lr)
        grid = records_grid(recs, lambda r: r.point.log2_lr)  # failed runs' rates too
        opts = optima(c, grid=grid)
        if not opts:
            continue  # not a learning-rate sweep (e.g. the α-path: one η per point)
        seeds = seeds_of(c)
        opt_samples, slope_samples = seed_ci(c, seeds, n_boot, bootstrap_rng(seed, "lr", config, alpha_mult), grid)
        sl = rank_slope(opts)
        slope = slope_ci = None
        method = "n/a (fewer than 2 ranks)"
        censored = [r for r, (o, _) in opts.items() if r is not None and (o.at_edge or not o.refined)]
        if sl is not None:
            slope = sl[0]
            per_rank = {r: seeds_at(c, r) for r in opts if r is not None}
            fewest = min(per_rank.values())
            if len(seeds) >= 2 and fewest < 2:
                method = f"n/a (rank {min(per_rank, key=per_rank.get)} has results from one seed)"
            elif len(seeds) >= 2:  # t and the variance correction count the seeds of the thinnest rank
                slope_ci = seed_interval(slope, slope_samples, fewest)
                method = (f"bootstrap over {len(seeds)} seeds" + ("" if fewest == len(seeds) else f" (≥ {fewest} per rank)")
                          if slope_ci is not None else f"n/a (too few resamples over {len(seeds)} seeds: raise bootstrap)")
                if slope_ci is not None and unless_bound(slope_ci, bool(censored)) is None:
                    slope_ci = None
                    method = (f"n/a (every resample gave the same slope, with the optimum at r = {censored[0]} on its"
                              " grid's edge or beside a diverged or unmeasured rate)")
            elif sl[2] is not None:
                k = sum(r is not None for r in opts)
                half = t_quantile_975(k - 2) * sl[2]
                slope_ci, method = (slope - half, slope + half), f"OLS t-interval over {k} ranks (single seed)"
                if unless_bound(slope_ci, bool(censored)) is None:  # grid points exactly on a line: no scatter
                    slope_ci = None
                    method = (f"n/a (single seed: the optima lie exactly on a line, with r = {censored[0]} on its grid's"
                              " edge or beside a diverged or unmeasured rate)")
            else:
                method = "n/a (single seed, 2 ranks)"
        xs = grid_of(c)
        step = min((b - a for a, b in zip(xs, xs[1:])), default=1.0)
        lora = [o.x_grid for r, (o, _) in opts.items() if r is not None]
        ranks = with_ci(opts, opt_samples, c)
        bracketed = all(o.bracketed for o in ranks if o.rank is not None)
        spread = max(lora) - min(lora) if len(lora) >= 2 else None
        first = recs[0].point
        fits.append(ConfigFit(
            config=config, alpha_mult=alpha_mult, finetune=first.finetune, init=first.init,
            gamma_eff=first.gamma_eff, predicted_slope=first.predicted_slope,
            ranks=ranks, slope=slope, slope_ci=slope_ci, slope_ci_method=method,
            grid_step=step, spread=spread,
            rank_invariant=None if spread is None or not bracketed else spread <= step + 1e-9,
            n_seeds=len(seeds), noisy=len(seeds) < 2, counts=_counts(recs), scale=_constant_scale(first),
            uneven=tuple(sorted(uneven_points(c), key=lambda u: (u[0] or 0, u[1]))),
        ))
    return fits


def _constant_scale(p) -> float | None:
    """s = lora_alpha/r of a configuration whose s does not depend on rank (γ_eff = 0), else None."""
    if p.gamma_eff != 0.0 or p.peft_alpha is None or p.rank is None:
        return None
    return p.peft_alpha / p.rank


def _transfer_gaps(configs: list[ConfigFit]) -> list[TransferGap]:
    """Init[B] with α = 1 (s = 1 at every rank, no α multiplier) against each full-finetuning configuration
    (μA §4.2, Fig. 5). Only s = 1: η* ∝ 1/α (μA Thm 4.5), so lora_alpha = 2r (s = 2) sits a step lower."""
    ffts = [c for c in configs if c.finetune == Finetune.FULL and c.ranks]
    bs = [c for c in configs if c.finetune == Finetune.LORA and c.init == Init.B and c.gamma_eff == 0.0
          and c.alpha_mult == 1.0 and c.scale is not None and abs(c.scale - 1.0) < 1e-9]  # s = r/r: rounding only
    out = []
    for b in bs:
        for f in ffts:
            fo = f.ranks[0]
            gaps = tuple((o.rank, o.x - fo.x) for o in b.ranks)
            step = max(b.grid_step, f.grid_step)
            within = (all(abs(o.x_grid - fo.x_grid) <= step + 1e-9 for o in b.ranks)
                      if all(o.bracketed for o in (*b.ranks, fo)) else None)  # an edge optimum says nothing
            out.append(TransferGap(b.label, f.label, fo.x, gaps, sum(g for _, g in gaps) / len(gaps), within))
    return out
