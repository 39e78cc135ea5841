"""The coordinate check's figures, as microsoft/mup draws them: compute (pure), then render.

* :func:`coord_plot_info` — one panel per configuration and axis (rank, width), one line per step
  of one term: the geometric mean over seeds with the seeds' range, and the fitted slope.
* :func:`terms_plot_info` — the same panels with one line per term (δ¹, δ², δ³) at one step.
* :func:`render_coord_check` — draws either on log–log axes; a flat line is a rule that holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Sequence

from ..figures import new_figure, save_figure
from .coord_fit import Measurement, TermFit

__all__ = ["CoordLine", "CoordPanel", "CoordPlotInfo", "coord_plot_info", "terms_plot_info", "render_coord_check"]

TERM_LABELS = {"delta1": "δ¹", "delta2": "δ²", "delta3": "δ³", "z_b": "feature update ‖s·B·A·x‖", "z_a": "Z_A",
               "update_a": "ΔA", "update_b": "ΔB"}


class CoordLine(NamedTuple):
    label: str  # "t=2" or "δ²"
    sizes: tuple[int, ...]  # only sizes where every seed's value is > 0 (log axes)
    mean: tuple[float, ...]  # geometric mean over seeds
    lo: tuple[float, ...]  # smallest seed
    hi: tuple[float, ...]  # largest seed
    slope: float | None  # the fit's slope (all sizes), for the legend


class CoordPanel(NamedTuple):
    config: str
    axis: str  # rank or width
    at: int  # the other size, held fixed
    lines: tuple[CoordLine, ...]


class CoordPlotInfo(NamedTuple):
    title: str
    panels: tuple[CoordPanel, ...]  # rank panels first, then width panels; configs in the order given


def coord_plot_info(measurements: Sequence[Measurement], fits: Sequence[TermFit], term: str = "z_b",
                    kind: str = "all") -> CoordPlotInfo:
    """One line per step of ``term``; panels from the fits (which fix each axis's other size)."""
    return CoordPlotInfo(TERM_LABELS.get(term, term), tuple(
        CoordPanel(config, axis, at, tuple(
            _line(measurements, f, f"t={f.step}", kind) for f in sorted(group, key=lambda f: f.step) if f.term == term))
        for (config, axis, at), group in _panels(fits)))


def terms_plot_info(measurements: Sequence[Measurement], fits: Sequence[TermFit], step: int,
                    terms: Sequence[str] = ("delta1", "delta2", "delta3"), kind: str = "all") -> CoordPlotInfo:
    """One line per term at ``step``."""
    return CoordPlotInfo(f"μA eq. (1) terms at step {step}", tuple(
        CoordPanel(config, axis, at, tuple(
            _line(measurements, f, TERM_LABELS.get(f.term, f.term), kind)
            for t in terms for f in group if f.term == t and f.step == step))
        for (config, axis, at), group in _panels(fits)))


def _panels(fits: Sequence[TermFit]) -> list[tuple[tuple[str, str, int], list[TermFit]]]:
    groups: dict = {}
    for f in fits:
        groups.setdefault((f.config, f.axis, f.at), []).append(f)
    return sorted(groups.items(), key=lambda kv: (kv[0][1] != "rank", list(groups).index(kv[0])))


def _line(measurements: Sequence[Measurement], fit: TermFit, label: str, kind: str) -> CoordLine:
    other = "width" if fit.axis == "rank" else "rank"
    by_size: dict[int, list[float]] = {}
    for m in measurements:
        if (m.config == fit.config and m.kind == kind and m.term == fit.term and m.step == fit.step
                and m.eta_scale == 1.0 and getattr(m, other) == fit.at):
            by_size.setdefault(getattr(m, fit.axis), []).append(m.value)
    sizes, mean, lo, hi = [], [], [], []
    for x in fit.sizes:
        vals = by_size.get(x, [])
        if vals and all(v > 0 and math.isfinite(v) for v in vals):
            sizes.append(x)
            mean.append(math.exp(math.fsum(math.log(v) for v in vals) / len(vals)))
            lo.append(min(vals))
            hi.append(max(vals))
    return CoordLine(label, tuple(sizes), tuple(mean), tuple(lo), tuple(hi), fit.fit.slope)


def render_coord_check(info: CoordPlotInfo, path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Panels in a grid: one row per axis (rank, width), one column per configuration."""
    axes_kinds = list(dict.fromkeys(p.axis for p in info.panels)) or ["rank"]
    configs = list(dict.fromkeys(p.config for p in info.panels)) or [""]
    fig, axes = new_figure(len(axes_kinds), len(configs), width=3.8, height=3.2)
    for panel in info.panels:
        ax = axes[axes_kinds.index(panel.axis), configs.index(panel.config)]
        for line in panel.lines:
            if not line.sizes:
                continue
            slope = "" if line.slope is None else f" (k={line.slope:+.2f})"
            (drawn,) = ax.plot(line.sizes, line.mean, marker="o", ms=3, label=line.label + slope)
            ax.fill_between(line.sizes, line.lo, line.hi, color=drawn.get_color(), alpha=0.2, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        fixed = "width" if panel.axis == "rank" else "rank"
        ax.set_title(f"{(labels or {}).get(panel.config, panel.config)} ({fixed} {panel.at})", fontsize=9)
        ax.set_xlabel(panel.axis)
        if any(line.sizes for line in panel.lines):
            ax.legend(fontsize=7)
    drawn_cells = {(axes_kinds.index(p.axis), configs.index(p.config)) for p in info.panels}
    for i in range(len(axes_kinds)):
        for j in range(len(configs)):
            if (i, j) not in drawn_cells:
                axes[i, j].axis("off")
    fig.suptitle(f"coordinate check: {info.title} (entry RMS; flat = the rule holds)")
    return save_figure(fig, path)
