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

from ..vocabulary import RunStatus, higher_is_better
from .records import Record
from .stats import bootstrap, mean_std, ols, refine_optimum, seed_interval

__all__ = ["Metric", "FIT_METRICS", "PointStat", "RankOptimum", "score", "cells", "optima", "rank_slope", "with_ci", "seed_ci", "seeds_of"]

Metric = Literal["ema", "val_loss", "eval"]
FIT_METRICS: dict[str, str] = {
    "ema": "final training loss (EMA 0.1), μA's selection rule",
    "val_loss": "held-out loss on the fixed validation set (NLL for LM and classification)",
    "eval": "the task's held-out metric (val_nll, val_accuracy, val_mrr or val_reward)",
}
"""What a sweep's optima can be selected on: the one definition the fit, the report and ``--metric`` use."""


def score(rec: Record, metric: Metric) -> float | None:
    """Lower-is-better score: +inf for a diverged run, None for a run without this result.

    Accuracy and MRR (:data:`~lorascale.vocabulary.HIGHER_IS_BETTER`) are negated so every metric is minimised; a "complete" run whose EMA loss is not finite
    (stored as null) is treated as diverged.
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
    value: float  # best mean score (lower is better)
    refined: bool
    at_edge: bool
    ci: tuple[float, float] | None  # bootstrap CI of x over seeds
    points: tuple[PointStat, ...]

    @property
    def lr(self) -> float:
        return 2.0**self.x


Cells = dict  # rank -> x -> seed -> score


def cells(recs, metric: Metric, x_of: Callable[[Record], float]) -> Cells:
    out: Cells = defaultdict(lambda: defaultdict(dict))
    for r in recs:
        s = score(r, metric)
        if s is not None:
            out[r.point.rank][round(x_of(r), 9)][r.point.seed] = s
    return out


def seeds_of(c: Cells) -> list[int]:
    return sorted({s for by_x in c.values() for by_seed in by_x.values() for s in by_seed})


def optima(c: Cells, draw: list[int] | None = None) -> dict:
    """rank -> (Optimum, points) over the seeds in ``draw`` (with multiplicity; None: every seed once)."""
    out = {}
    for rank, by_x in c.items():
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


def rank_slope(opts: dict) -> tuple[float, float, float | None] | None:
    """OLS of the refined optimum on log2 r over the LoRA ranks: (slope, intercept, its SE)."""
    ranks = sorted(r for r in opts if r is not None)
    if len(ranks) < 2:
        return None
    return ols([math.log2(r) for r in ranks], [opts[r][0].x for r in ranks])


def with_ci(opts: dict, samples: list[dict], n_seeds: int) -> tuple[RankOptimum, ...]:
    out = []
    for rank in sorted(opts, key=lambda r: -1 if r is None else r):
        opt, pts = opts[rank]
        ci = seed_interval(opt.x, [s[rank] for s in samples if rank in s], n_seeds)
        out.append(RankOptimum(rank, opt.x, opt.x_grid, opt.value, opt.refined, opt.at_edge, ci, pts))
    return tuple(out)


def seed_ci(c: Cells, seeds: list[int], n_boot: int, rng: random.Random):
    """Bootstrap over seeds: per-rank optimum samples and slope samples (empty with one seed)."""
    if len(seeds) < 2:
        return [], []

    def stat(draw):
        opts = optima(c, draw)
        sl = rank_slope(opts)
        return {r: o.x for r, (o, _) in opts.items()}, (sl[0] if sl else None)

    samples = bootstrap(seeds, stat, n_boot, rng)
    return [s for s, _ in samples], [sl for _, sl in samples if sl is not None]
