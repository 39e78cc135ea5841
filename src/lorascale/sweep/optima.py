"""Grid optima over seeds, shared by μA's η*(r) fit (:mod:`.fit`) and LoRA-α's α*(r) and paths
(:mod:`.fit_paths`): pure math on records (no torch, no optuna).

A run is scored lower-is-better (:func:`score`); per rank, the scores at each grid value x (log2 η,
log2 α or log2 m) are aggregated over seeds into mean ± std, the best mean is refined by the
parabola through its neighbours, and the optima's log-log slope against rank is fitted by least
squares. Confidence intervals come from a bootstrap over seeds, resampled jointly across a
configuration since one seed fixes the data order of all its points.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Callable, Literal, NamedTuple

from ..errors import ConfigError
from ..vocabulary import RunStatus, higher_is_better
from .records import Record
from .stats import bootstrap, mean_std, ols, refine_optimum, seed_interval

__all__ = ["Metric", "FIT_METRICS", "PointStat", "RankOptimum", "score", "cells", "grid_of", "records_grid", "optima", "rank_slope", "with_ci", "seed_ci", "seeds_of",
           "seeds_at", "uneven_points"]

FIT_METRICS: dict[str, str] = {  # what a fit may select optima on, each defined once here
    "ema": "final training loss (EMA 0.1), μA's selection rule",
    "val_loss": "held-out loss on the fixed validation set (NLL for LM and classification)",
    "eval": "the task's held-out metric (val_nll, val_accuracy, val_mrr or val_reward)",
}
Metric = Literal[tuple(FIT_METRICS)]  # type: ignore[valid-type]  # its values are FIT_METRICS' keys
"""What a sweep's optima can be selected on: the one definition the fit, the report and ``--metric`` use."""


def score(rec: Record, metric: Metric) -> float | None:
    """Lower-is-better score: +inf for a diverged run, None for a run without this result.

    Accuracy and MRR (:data:`~lorascale.vocabulary.HIGHER_IS_BETTER`) are negated so every metric is minimised; a "complete" run whose EMA loss is not finite
    (or null, as some studies stored it) is treated as diverged, and a non-finite held-out value scores +inf, the worst.
    """
    out = rec.outcome
    if out.status == RunStatus.DIVERGED:
        return math.inf
    if out.status != RunStatus.COMPLETE:
        return None
    if metric == "ema":
        v = out.final_ema_loss
    elif metric == "val_loss":
        if out.val_loss is None:
            return None
        v = out.val_loss
    elif out.eval_value is None:
        return None
    else:
        v = -out.eval_value if higher_is_better(out.eval_metric) else out.eval_value
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
    best_value: float  # best observed mean score, at x_grid (lower is better)
    vertex_value: float  # the refining parabola's value at x (= best_value when not refined)
    refined: bool
    at_edge: bool
    ci: tuple[float, float] | None  # bootstrap CI of x over the seeds with results at this rank; None under 2
    points: tuple[PointStat, ...]
    gap: bool = False  # a grid value beside the best has no result at this rank: not refined (Optimum.gap)

    @property
    def bracketed(self) -> bool:
        """Whether the grid brackets this optimum: not at the grid's edge and no unmeasured value beside it
        (a refined or unrefined interior optimum is known to one grid step)."""
        return not (self.at_edge or self.gap)

    @property
    def lr(self) -> float:
        return 2.0**self.x


Cells = dict  # rank -> x -> seed -> score


def cells(recs, metric: Metric, x_of: Callable[[Record], float]) -> Cells:
    """rank -> x -> seed -> score; ConfigError when two different points land in one cell (their
    coordinates cannot tell them apart, e.g. a paths section named like a grid configuration)."""
    out: Cells = defaultdict(lambda: defaultdict(dict))
    keys: dict[tuple, str] = {}
    for r in recs:
        s = score(r, metric)
        if s is None:
            continue
        cell = (r.point.rank, round(x_of(r), 9), r.point.seed)
        if keys.setdefault(cell, r.point.key) != r.point.key:
            raise ConfigError("study", f"runs {keys[cell]} and {r.point.key} of configuration {r.point.config!r} are"
                              f" different points at the same rank {cell[0]}, x = {cell[1]:g} and seed {cell[2]}",
                              "give each grid configuration and the paths section a name of its own, and sweep"
                              " them into a new study")
        out[cell[0]][cell[1]][cell[2]] = s
    return out


def seeds_of(c: Cells) -> list[int]:
    return sorted({s for by_x in c.values() for by_seed in by_x.values() for s in by_seed})


def seeds_at(c: Cells, rank) -> int:
    """How many seeds have a result at ``rank`` (at any x)."""
    return len({s for by_seed in c[rank].values() for s in by_seed}) if rank in c else 0


def uneven_points(c: Cells) -> list[tuple[int | None, float, int, int]]:
    """(rank, x, seeds there, seeds at the rank) for each point lacking some of its rank's seeds: its
    mean is over other seeds than its neighbours', and a seed shifts the whole curve."""
    return [(rank, x, len(by_x[x]), n) for rank, by_x in c.items() for n in [seeds_at(c, rank)]
            for x in sorted(by_x) if len(by_x[x]) < n]


def grid_of(c: Cells) -> list[float]:
    """Every x with a result at some rank and seed: the grid a rank's missing values are measured against."""
    return sorted({x for by_x in c.values() for x in by_x})


def records_grid(recs, x_of: Callable[[Record], float]) -> list[float]:
    """Every x a run was stored at, finished or not (a failed or interrupted run's x is a grid value with no
    result), rounded as :func:`cells` rounds it."""
    return sorted({round(x_of(r), 9) for r in recs})


def optima(c: Cells, draw: list[int] | None = None, grid: list[float] | None = None) -> dict:
    """rank -> (Optimum, points) over the seeds in ``draw`` (with multiplicity; None: every seed once).
    ``grid``: the sweep's x values (default :func:`grid_of`); an optimum beside one with no result at its
    rank is not refined (:func:`~.stats.refine_optimum`)."""
    grid = grid_of(c) if grid is None else grid
    out = {}
    for rank, by_x in c.items():
        pts = []
        for x in sorted(by_x):
            vals = list(by_x[x].values()) if draw is None else [by_x[x][s] for s in draw if s in by_x[x]]
            if vals:
                m, sd, n_div = mean_std(vals)
                pts.append(PointStat(x, m, sd, len(vals), n_div))
        if len(pts) >= 2:
            opt = refine_optimum([p.x for p in pts], [p.mean for p in pts], grid)
            if opt is not None:
                out[rank] = (opt, tuple(pts))
    return out


def rank_slope(opts: dict) -> tuple[float, float, float | None] | None:
    """OLS of the refined optimum on log2 r over the LoRA ranks: (slope, intercept, its SE)."""
    ranks = sorted(r for r in opts if r is not None)
    if len(ranks) < 2:
        return None
    return ols([math.log2(r) for r in ranks], [opts[r][0].x for r in ranks])


NO_SPREAD = 1e-9  # an interval this narrow is float rounding of one repeated value (octaves, or slope units)


def unless_bound(ci: tuple[float, float] | None, censored: bool) -> tuple[float, float] | None:
    """``ci``, or None when it has no width and rests on ``censored`` optima (at the grid's edge, or beside a
    diverged rate): every resample picked the same grid points, a bound rather than a measured precision."""
    return None if ci is not None and censored and ci[1] - ci[0] <= NO_SPREAD else ci


def with_ci(opts: dict, samples: list[dict], c: Cells) -> tuple[RankOptimum, ...]:
    """Each rank's optimum with its CI over the seeds that have results at that rank (a rank run at one
    seed of four gets none: every resample holding that seed gives the same optimum). Nor does an optimum
    that could not be refined (at the grid's edge, or beside a diverged rate) and sits on the same grid point
    in every resample: a zero-width interval there would claim a precision the grid never measured."""
    out = []
    for rank in sorted(opts, key=lambda r: -1 if r is None else r):
        opt, pts = opts[rank]
        ci = unless_bound(seed_interval(opt.x, [s[rank] for s in samples if rank in s], seeds_at(c, rank)),
                          opt.at_edge or not opt.refined)
        best = min(p.mean for p in pts)  # finite: refine_optimum found one
        out.append(RankOptimum(rank, opt.x, opt.x_grid, best, opt.value, opt.refined, opt.at_edge, ci, pts, opt.gap))
    return tuple(out)


def seed_ci(c: Cells, seeds: list[int], n_boot: int, rng: random.Random, grid: list[float] | None = None):
    """Bootstrap over seeds: per-rank optimum samples and slope samples (empty with one seed). A slope
    sample is kept only from a resample with every rank of the full fit (else it is another fit's slope)."""
    if len(seeds) < 2:
        return [], []
    ranks = set(optima(c, grid=grid))

    def stat(draw):
        opts = optima(c, draw, grid)
        sl = rank_slope(opts) if set(opts) == ranks else None
        return {r: o.x for r, (o, _) in opts.items()}, (sl[0] if sl else None)

    samples = bootstrap(seeds, stat, n_boot, rng)
    return [s for s, _ in samples], [sl for _, sl in samples if sl is not None]
