"""The papers' figures from stored results: compute the numbers (pure NamedTuples), then render.

* :func:`lr_sweep_info` — loss against log2 η per rank, optima marked, error bars over seeds, the
  FFT curve in red with its optimum as a dashed line (μA Figs 2–5; the y-axis is clipped for
  readability as in the paper, diverged points drawn as × on the worse edge).
* :func:`paths_info` — the η-path against the α-path of LoRA-α eq. (2) (Fig. 1b).
* :func:`render_lr_panels` — every configuration's :func:`lr_sweep_info` in one row of panels, μA Fig. 2's
  layout, with one colour per rank across the row.
* :func:`ylim_covering` — the y-range both use: every finite mean ± its error bar (the worst 10% of the
  means left off the top), plus a margin.

An optimum's star sits at the refined log2 η* (the parabola's vertex), at the height of the drawn curve
there: the curve joins measured means, and the star stays on it (the vertex's own value, below any run
when the valley is sharp, is in the report's tables).
* :func:`alpha_law_info` — α* against r with the fitted C·r^p and C·r^0.5 (Fig. 1c).
* :func:`curves_info` — EMA loss curves (the trials' intermediate values) at each rank's optimum.

Renderers draw on :func:`lorascale.figures.new_figure` (object API, own Agg canvas, no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from ..figures import colormap, new_figure, save_figure
from .fit import AlphaLaw, ConfigFit, FitReport, PathFit, Record
from .stats import percentile

__all__ = [
    "Series", "LrSweepInfo", "PathsInfo", "AlphaLawInfo", "CurvesInfo",
    "ylim_covering", "lr_sweep_info", "paths_info", "alpha_law_info", "curves_info",
    "rank_shades", "render_lr_sweep", "render_lr_panels", "render_paths", "render_alpha_law", "render_curves",
]

FFT_COLOR = "tab:red"
CLIP_QUANTILE = 0.9  # μA clips its axes: the worst 10% of a sweep's points may leave the plot
MARGIN = 0.05  # of the y-span, on each side


class Series(NamedTuple):
    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]  # display units (accuracy as accuracy); finite points only
    yerr: tuple[float, ...]  # std over seeds, 0 where unknown
    diverged_x: tuple[float, ...]  # points where a seed diverged
    opt_x: float | None  # refined optimum
    opt_y: float | None  # the drawn curve's height at opt_x (linear between its means), display units


class LrSweepInfo(NamedTuple):
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]  # one per rank
    fft: Series | None
    fft_opt_x: float | None  # the dashed line
    ylim: tuple[float, float] | None  # display units; None when every point diverged
    diverged_y: float  # where × marks sit: the worse edge of ylim (the top for a loss, the bottom for accuracy)


class PathsInfo(NamedTuple):
    title: str
    rank: int
    eta: Series | None
    alpha: Series | None
    ylabel: str
    ylim: tuple[float, float] | None  # both paths' means ± error bars (the worst 10% of means off the top)
    diverged_y: float
    xlabel: str = "log2(m): η-path at m·η_FFT, α-path at m·α₀"


class AlphaLawInfo(NamedTuple):
    title: str
    ranks: tuple[int, ...]
    alpha_star: tuple[float, ...]
    ci: tuple[tuple[float, float] | None, ...]  # in α units
    fit_r: tuple[float, ...]
    fit_free: tuple[float, ...]  # C·r^p
    fit_half: tuple[float, ...]  # C½·r^0.5
    label_free: str
    label_half: str
    ylabel: str
    ylim: tuple[float, float]  # the estimates and the fits, an octave beyond each side; wider CIs end in arrows


class CurvesInfo(NamedTuple):
    title: str
    curves: tuple[tuple[str, tuple[int, ...], tuple[float, ...]], ...]  # (label, steps, EMA loss)


def metric_label(rep: FitReport) -> str:
    return {"ema": "final training loss (EMA 0.1)", "val_loss": "held-out loss", "val_nll": "validation NLL",
            "val_accuracy": "validation accuracy", "val_mrr": "validation MRR",
            "val_reward": "held-out reward"}.get(rep.metric, rep.metric)


def _series(rep: FitReport, label: str, points, opt_x: float | None) -> Series:
    fin = sorted((p for p in points if math.isfinite(p.mean)), key=lambda p: p.x)
    xs, ys = tuple(p.x for p in fin), tuple(rep.show(p.mean) for p in fin)
    return Series(label, xs, ys, tuple(_bar(p.std) for p in fin), tuple(p.x for p in points if not math.isfinite(p.mean)),
                  opt_x if xs else None, height_at(opt_x, xs, ys) if opt_x is not None and xs else None)


def height_at(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """The polyline through (xs, ys) (xs increasing) at ``x``: linear between neighbours, flat past the ends."""
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _bar(err: float | None) -> float:
    """An error bar's half-height: 0 where unknown (one seed) or not finite."""
    return err if err is not None and math.isfinite(err) else 0.0


def ylim_covering(means, errs, clip: float | None = CLIP_QUANTILE, margin: float = MARGIN) -> tuple[float, float] | None:
    """(lo, hi) in score units (lower is better) covering each finite mean ± its error bar.

    With ``clip`` and at least 5 points, the means above their ``clip`` quantile leave the plot (as μA clips
    its axes, so a few very bad learning rates do not flatten the valley). lo is the lowest bar bottom and hi
    the highest bar top of the means that stay: a point on the plot keeps its whole error bar, and a clipped
    one, often a rate where one seed blew up, does not stretch the axis down with its wide bar. Both widen
    by ``margin`` of the span (of |lo|, or 1, when the span is 0). A +inf mean (a diverged point, drawn as
    × on the edge) is left out; an unknown or non-finite error bar counts as 0. None when no mean is finite.
    """
    bars = [(m, _bar(e)) for m, e in zip(means, errs) if math.isfinite(m)]
    if not bars:
        return None
    if clip is not None and len(bars) >= 5:
        cut = percentile(sorted(m for m, _ in bars), clip)
        bars = [(m, e) for m, e in bars if m <= cut]
    lo, hi = min(m - e for m, e in bars), max(m + e for m, e in bars)
    pad = margin * (hi - lo) or margin * abs(lo) or margin
    return lo - pad, hi + pad


def _display_range(rep: FitReport, lim: tuple[float, float] | None) -> tuple[tuple[float, float] | None, float]:
    """Score-unit limits to display units, and the worse edge (where diverged points are marked)."""
    if lim is None:
        return None, 0.0
    a, b = rep.show(lim[0]), rep.show(lim[1])
    return (min(a, b), max(a, b)), b


def lr_sweep_info(rep: FitReport, cfg: ConfigFit, fft: ConfigFit | None = None) -> LrSweepInfo:
    series = tuple(_series(rep, f"r = {o.rank}" if o.rank is not None else "FFT", o.points, o.x) for o in cfg.ranks)
    # the y-range follows this configuration's own curves and their error bars; where FFT's optimum lies
    # outside it (FFT often reaches far lower), its label gives that best value, since the curve is clipped;
    # FFT's points inside the range keep their whole error bars
    pts = [p for o in cfg.ranks for p in o.points]
    lim = ylim_covering([p.mean for p in pts], [p.std for p in pts])
    lo, hi = lim if lim else (None, None)
    fft_s = fft_x = None
    if fft is not None and fft is not cfg and fft.ranks:
        o = fft.ranks[0]
        inside = [p for p in o.points if lim is not None and lo <= p.mean <= hi]
        if inside:
            lim = ylim_covering([p.mean for p in pts + inside], [p.std for p in pts + inside])
            lim = (min(lim[0], lo), max(lim[1], hi))
        # judged on the final range: widening it for FFT's error bars can bring FFT's best onto the plot
        off = lim is not None and not lim[0] <= o.best_value <= lim[1]
        label = f"FFT (best {rep.show(o.best_value):.3g}, off scale)" if off else "FFT"
        fft_s, fft_x = _series(rep, label, o.points, o.x), o.x
    ylim, diverged_y = _display_range(rep, lim)
    n = cfg.n_seeds
    what = "η*" if all(o.rank is None for o in cfg.ranks) else "η* per rank"
    title = f"{cfg.label}: {what} ({n} seed{'s' if n != 1 else ''}{', noisy' if cfg.noisy else ''})"
    return LrSweepInfo(title, "log2(η)", metric_label(rep), series, fft_s, fft_x, ylim, diverged_y)


def paths_info(rep: FitReport) -> tuple[PathsInfo, ...]:
    by_rank: dict[tuple[str, int], dict[str, PathFit]] = {}
    for p in rep.paths:
        by_rank.setdefault((p.config, p.rank), {})[p.path] = p
    out = []
    for (config, rank), d in sorted(by_rank.items()):
        mk = {k: _series(rep, ("η-path: L(r, m·η_FFT, α₀)" if k == "eta" else "α-path: L(r, η_FFT, m·α₀)"),
                         p.points, p.log2_m_star) for k, p in d.items()}  # the star: refined x, on the curve
        pts = [x for p in d.values() for x in p.points]
        ylim, diverged_y = _display_range(rep, ylim_covering([x.mean for x in pts], [x.std for x in pts]))
        out.append(PathsInfo(f"{config}, r = {rank}", rank, mk.get("eta"), mk.get("alpha"), metric_label(rep),
                             ylim, diverged_y))
    return tuple(out)


def alpha_law_info(rep: FitReport, law: AlphaLaw) -> AlphaLawInfo:
    ranks = tuple(o.rank for o in law.optima)
    stars = tuple(2.0**o.x for o in law.optima)
    ci = tuple((2.0 ** o.ci[0], 2.0 ** o.ci[1]) if o.ci else None for o in law.optima)
    lo, hi = math.log2(min(ranks)), math.log2(max(ranks))
    rs = tuple(2.0 ** (lo + (hi - lo) * i / 49) for i in range(50))
    ci_p = f" [{law.p_ci[0]:.2f}, {law.p_ci[1]:.2f}]" if law.p_ci else ""
    fits = [law.c * r**law.p for r in rs] + [law.c_half * r**0.5 for r in rs]
    shown = [v for v in (*stars, *fits) if math.isfinite(v) and v > 0]
    ylim = (min(shown) / 2, max(shown) * 2)
    return AlphaLawInfo(
        f"{law.config}: α*(r) at η = {2.0 ** law.log2_lr:.3g}" + (" (single seed, noisy)" if law.noisy else ""),
        ranks, stars, ci, rs, tuple(law.c * r**law.p for r in rs), tuple(law.c_half * r**0.5 for r in rs),
        f"C·r^p: C = {law.c:.3g}, p = {law.p:.2f}{ci_p}", f"C·√r: C = {law.c_half:.3g}",
        "α* (PEFT lora_alpha)" if law.units == "lora_alpha" else "α* (multiplier)", ylim,
    )


def curves_info(records: list[Record], cfg: ConfigFit) -> CurvesInfo:
    """EMA curves of the runs at each rank's best grid learning rate (one line per seed)."""
    curves = []
    for o in cfg.ranks:
        for r in records:
            if (r.config, r.alpha_mult, r.rank) == (cfg.config, cfg.alpha_mult, o.rank) and r.curve \
                    and abs(r.log2_lr - o.x_grid) < 1e-9:
                label = f"{'FFT' if o.rank is None else f'r = {o.rank}'}, η = 2^{o.x_grid:g}, seed {r.seed}"
                curves.append((label, tuple(s for s, _ in r.curve), tuple(v for _, v in r.curve)))
    return CurvesInfo(f"{cfg.label}: EMA training loss at each rank's best grid η", tuple(curves))


# --------------------------------------------------------------------------------------------
# renderers


def _draw(ax, s: Series, color, diverged_y: float, marker: str = "o", ls: str = "-") -> None:
    ax.errorbar(s.x, s.y, yerr=s.yerr if any(s.yerr) else None, color=color, marker=marker, ms=4, ls=ls,
                capsize=2, label=s.label)
    if s.opt_x is not None:
        ax.plot([s.opt_x], [s.opt_y], marker="*", ms=15, color=color, mec="black", mew=0.6, ls="none")
    if s.diverged_x:
        ax.plot(s.diverged_x, [diverged_y] * len(s.diverged_x), marker="x", ms=7, color=color, ls="none", clip_on=False)


def rank_shades(infos) -> dict[str, float]:
    """Each rank's place on the colormap (0 … 0.9), one place per rank across ``infos``: in a row of panels
    r = 64 has the same colour in every panel, as in μA's figures."""
    ranks = sorted({int(s.label.removeprefix("r = ")) for info in infos for s in info.series if s.label.startswith("r = ")})
    return {f"r = {r}": i / max(1, len(ranks) - 1) * 0.9 for i, r in enumerate(ranks)}


def _draw_lr_sweep(ax, info: LrSweepInfo, shades: dict[str, float]) -> None:
    cmap = colormap("viridis")
    for s in info.series:
        _draw(ax, s, FFT_COLOR if s.label == "FFT" else cmap(shades[s.label]), info.diverged_y)
    if info.fft is not None:
        _draw(ax, info.fft, FFT_COLOR, info.diverged_y, marker="s")
    if info.fft_opt_x is not None:
        ax.axvline(info.fft_opt_x, color=FFT_COLOR, ls="--", lw=1.2, label="FFT η*")
    if info.ylim:
        ax.set_ylim(*info.ylim)
    from matplotlib.ticker import MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(1))  # the log2 grid's own steps, no half-steps
    ax.set(title=info.title, xlabel=info.xlabel, ylabel=info.ylabel)
    ax.grid(alpha=0.3)


def render_lr_sweep(info: LrSweepInfo, path: str | Path) -> Path:
    fig, ((ax,),) = new_figure()
    _draw_lr_sweep(ax, info, rank_shades([info]))
    ax.legend(fontsize=8, title="★ optimum, × diverged", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0)  # beside the axes: it hides no curve, star or the FFT line
    return save_figure(fig, path)


def render_lr_panels(infos: tuple[LrSweepInfo, ...], path: str | Path) -> Path:
    """μA Fig. 2's layout: one panel per configuration in a row, each with its ranks, the FFT curve and
    its dashed optimum, each y-axis clipped on its own; one legend below the row."""
    fig, (axes,) = new_figure(ncols=max(1, len(infos)), width=4.6, height=3.8)
    shades = rank_shades(infos)
    for ax, info in zip(axes, infos, strict=True):
        _draw_lr_sweep(ax, info, shades)
        if info.fft is not None and info.fft.label != "FFT":  # its best is off this panel's scale: said in the panel
            ax.text(0.02, 0.02, info.fft.label, transform=ax.transAxes, color=FFT_COLOR, fontsize=7)
    seen: dict = {}
    for ax in axes:  # each rank's entry once, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label.split(" (best")[0], h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), 8), fontsize=8,
                   title="★ optimum, × diverged", title_fontsize=8)
    return save_figure(fig, path)


def render_paths(infos: tuple[PathsInfo, ...], path: str | Path) -> Path:
    fig, (axes,) = new_figure(ncols=max(1, len(infos)), width=5.0)
    for ax, info in zip(axes, infos):
        if info.eta:
            _draw(ax, info.eta, "tab:orange", info.diverged_y)
        if info.alpha:
            _draw(ax, info.alpha, "tab:blue", info.diverged_y, marker="s")
        if info.ylim:
            ax.set_ylim(*info.ylim)
        ax.set(title=info.title, xlabel=info.xlabel, ylabel=info.ylabel)
        ax.grid(alpha=0.3)
    seen: dict = {}
    for ax in axes:  # each path's entry once, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    handles, labels = list(seen.values()), list(seen)
    if handles:  # one legend for every panel, below them, where it hides no data
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8,
                   title="★ optimum, × diverged", title_fontsize=8)
    return save_figure(fig, path)


def render_alpha_law(info: AlphaLawInfo, path: str | Path) -> Path:
    fig, ((ax,),) = new_figure()
    lo, hi = info.ylim
    bounded = [(max(c[0], lo), min(c[1], hi)) if c else (a, a) for a, c in zip(info.alpha_star, info.ci)]
    yerr = [[a - b[0] for a, b in zip(info.alpha_star, bounded)], [b[1] - a for a, b in zip(info.alpha_star, bounded)]]
    ax.errorbar(info.ranks, info.alpha_star, yerr=yerr, marker="o", ls="none", color="black", capsize=3,
                label="α* (refined), 95% CI")
    for r, c in zip(info.ranks, info.ci):  # a CI past the axis: an arrow at the edge it crosses
        if c and c[1] > hi:
            ax.plot([r], [hi], marker="^", color="black", ls="none", clip_on=False)
        if c and c[0] < lo:
            ax.plot([r], [lo], marker="v", color="black", ls="none", clip_on=False)
    ax.plot(info.fit_r, info.fit_free, color="tab:blue", label=info.label_free)
    ax.plot(info.fit_r, info.fit_half, color="tab:green", ls="--", label=info.label_half)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_ylim(lo, hi)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 4, 16, 64 rather than 2^2, 2^4, 2^6
    ax.set(title=info.title, xlabel="rank r", ylabel=info.ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def render_curves(info: CurvesInfo, path: str | Path) -> Path:
    fig, ((ax,),) = new_figure()
    cmap = colormap("viridis")
    for i, (label, steps, values) in enumerate(info.curves):
        ax.plot(steps, values, lw=1.2, color=cmap(i / max(1, len(info.curves) - 1) * 0.9), label=label)
    ax.set(title=info.title, xlabel="step", ylabel="EMA training loss")
    ax.grid(alpha=0.3)
    if info.curves:
        ax.legend(fontsize=7)
    return save_figure(fig, path)
