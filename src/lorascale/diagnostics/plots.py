"""A run's diagnostic traces from metrics.jsonl: compute (pure), then render.

* :func:`trace_info` — ``<prefix>/<kind>/<metric>`` records grouped into one panel per metric and one
  line per layer type, with the metrics that go on a log axis; :func:`trace_summary` — their
  mean/median/last per layer type.
* :func:`render_traces` — draws a :class:`TraceInfo` (``all`` thick and black).

The LoRA-α figures of the repro experiments (Fig. 2, Fig. 8) live in :mod:`lorascale.repro.plots`.
Renderers draw on :func:`lorascale.figures.new_figure` and return the path they wrote.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import NamedTuple

from ..figures import new_figure, save_figure
from .aggregate import ALL, parse_metric_key

__all__ = ["LOG_METRICS", "TraceInfo", "trace_info", "trace_summary", "render_traces"]

# norms, ratios and feature-update sizes span decades; alignments and losses do not
LOG_METRICS = frozenset({"signal_norm", "drift_norm", "ratio", "delta1", "delta2", "delta3", "z_a"})


class TraceInfo(NamedTuple):
    prefix: str  # "sd" or "fu"
    series: dict  # metric -> kind -> (steps, values), both tuples in logged order
    log_y: frozenset  # metrics in LOG_METRICS whose finite values are all > 0


def trace_info(records: list[dict], prefix: str) -> TraceInfo:
    """Group ``<prefix>/<kind>/<metric>`` keys of metrics.jsonl records into per-metric, per-kind
    series; records without a step and non-numeric values are skipped."""
    lists: dict = {}
    for rec in records:
        step = rec.get("step")
        if step is None:
            continue
        for key, value in rec.items():
            parsed = parse_metric_key(key)
            if parsed is None or parsed[0] != prefix or not isinstance(value, (int, float)):
                continue
            _, kind, metric = parsed
            steps, values = lists.setdefault(metric, {}).setdefault(kind, ([], []))
            steps.append(step)
            values.append(float(value))
    series = {m: {k: (tuple(s), tuple(v)) for k, (s, v) in kinds.items()} for m, kinds in lists.items()}
    log_y = frozenset(
        m for m, kinds in series.items()
        if m in LOG_METRICS and all(v > 0 for _, vs in kinds.values() for v in vs if math.isfinite(v))
    )
    return TraceInfo(prefix, series, log_y)


def trace_summary(info: TraceInfo) -> dict:
    """kind -> metric -> {mean, median, last, n} over the finite logged values."""
    out: dict = {}
    for metric, kinds in info.series.items():
        for kind, (_, values) in kinds.items():
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                out.setdefault(kind, {})[metric] = {
                    "mean": statistics.fmean(finite), "median": float(statistics.median(finite)),
                    "last": finite[-1], "n": len(finite),
                }
    return out


def render_traces(info: TraceInfo, path: str | Path, title: str = "") -> Path:
    metrics = sorted(info.series)
    cols = min(3, max(1, len(metrics)))
    rows = math.ceil(len(metrics) / cols) or 1
    fig, axes = new_figure(rows, cols, width=4.6, height=3.4)
    for ax, metric in zip(axes.flat, metrics):
        for kind, (steps, values) in sorted(info.series[metric].items()):
            ax.plot(steps, values, label=kind, lw=2.2 if kind == ALL else 1.1, color="black" if kind == ALL else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        if metric in info.log_y:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if metrics:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title or info.prefix)
    return save_figure(fig, path)
