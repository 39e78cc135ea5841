"""Per-layer-type aggregation of per-module diagnostics (pure, torch-free).

Metrics are logged per *layer type* (``q_proj``, ``down_proj``, ``attention.output.dense``, ...)
so metrics.jsonl stays small: a 30-block model logs one number per type, not 30. Norms of a type
are the norm of all its modules' updates stacked (√Σ‖·‖²), and alignments are the cosine between
the stacked vectors (Σ⟨·,·⟩ / √(Σ‖·‖²·Σ‖·‖²)); ``all`` aggregates every module the same way.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ..adapters.targets import layer_type  # the one definition of a layer's type; torch-free

__all__ = ["ALL", "layer_type", "layer_types", "TypeSums", "metric_key", "parse_metric_key"]

ALL = "all"


def layer_types(names: list[str]) -> dict[str, str]:
    """Module name → its type, shortened to the shortest dotted suffix that stays unambiguous.

    ``self_attn.q_proj`` becomes ``q_proj``; BERT keeps ``attention.output.dense`` apart from
    ``output.dense`` because their shorter suffixes collide.
    """
    full = {n: layer_type(n) for n in names}
    kinds = sorted(set(full.values()))
    short: dict[str, str] = {}
    for kind in kinds:
        parts = kind.split(".")
        if parts[-1].isdigit():  # a per-layer name (``layers.3``): shortening would keep only the index
            short[kind] = kind
            continue
        for k in range(1, len(parts) + 1):
            cand = ".".join(parts[-k:])
            clash = any(o != kind and (o == cand or o.endswith("." + cand)) for o in kinds)
            if not clash or k == len(parts):
                short[kind] = cand
                break
    return {n: short[t] for n, t in full.items()}


def metric_key(prefix: str, kind: str, metric: str) -> str:
    """``sd/down_proj/ratio``: the metrics.jsonl key of one aggregated metric."""
    return f"{prefix}/{kind}/{metric}"


def parse_metric_key(key: str) -> tuple[str, str, str] | None:
    """Inverse of :func:`metric_key`; None for keys that are not per-type diagnostics."""
    prefix, sep, rest = key.partition("/")
    kind, sep2, metric = rest.rpartition("/")
    if not (sep and sep2 and prefix and kind and metric):
        return None
    return prefix, kind, metric


class TypeSums:
    """Running sums per layer type (and ``all``) of additive per-module quantities."""

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, kind: str, **values: float) -> None:
        for bucket in (kind, ALL):
            for k, v in values.items():
                self._sums[bucket][k] += v

    def items(self):
        return self._sums.items()

    @staticmethod
    def root(x: float) -> float:
        return math.sqrt(max(x, 0.0))
