"""A sweep point's Optuna params, for optuna-dashboard's plots: the learning rate itself (log scale),
rank, α multiplier and seed, each distributed over the range of the points enqueued together."""

from __future__ import annotations

from collections import defaultdict

from ..errors import ConfigError
from .records import PointCoords

__all__ = ["point_params", "param_distributions"]


def point_params(c: PointCoords) -> dict:
    """The dashboard's params of a point: the learning rate itself (log scale), rank, α multiplier, seed."""
    p = {"lr": 2.0**c.log2_lr, "rank": c.rank, "alpha_mult": c.alpha_mult, "seed": c.seed}
    return {k: v for k, v in p.items() if v is not None}


def param_distributions(points: list[PointCoords]) -> dict:
    """Each param's range over the points enqueued together (a spec's own span; Optuna only needs a
    param's kind and log flag to agree across trials, so a spec grown later still fits)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    values = defaultdict(list)
    for c in points:
        for k, v in point_params(c).items():
            values[k].append(v)
    kinds = {"lr": (FloatDistribution, True), "alpha_mult": (FloatDistribution, True),
             "rank": (IntDistribution, True), "seed": (IntDistribution, False)}
    out = {}
    for k, vs in values.items():
        cls, log_scale = kinds[k]
        try:
            out[k] = cls(min(vs), max(vs), log=log_scale)
        except ValueError as e:  # e.g. a learning rate that underflowed to 0 on a log scale
            raise ConfigError("spec", f"param {k} spans {min(vs)!r}…{max(vs)!r}, which Optuna cannot store: {e}",
                              "check the spec's axes") from None
    return out
