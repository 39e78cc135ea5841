"""The repro experiments' figures: compute the numbers (pure NamedTuples), then render.

* :func:`fig2_info` / :func:`render_fig2` — LoRA-α Fig. 2: loss, drift norm and signal-to-drift
  ratio over steps (seed means), η-scaling in warm colours, α-scaling in cool ones.
* :func:`sweep_info` / :func:`render_sweep` — final loss against the multiplier on each path.
* :func:`fig8_info` / :func:`render_fig8` — LoRA-α Fig. 8 (a)–(d) from an mlp-spectra result.

The info functions read the result objects by attribute only (``path``, ``multiplier``, ``losses``,
... of :class:`~lorascale.repro.dynamics.ConfigResult`; ``spectra``, ``trace_pairs()``, ... of
:class:`~lorascale.repro.spectra.SpectraResult`), so this module imports neither experiment.
Renderers draw on :func:`lorascale.figures.new_figure` and return the path they wrote.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

from ..figures import colormap, new_figure, save_figure

__all__ = [
    "Fig2Curve", "Fig2Info", "fig2_info", "render_fig2",
    "PathPoints", "SweepInfo", "sweep_info", "render_sweep",
    "Fig8Info", "fig8_info", "render_fig8",
    "seed_mean",
]

PATH_CMAPS = {"eta": "autumn", "alpha": "winter"}  # Fig. 2: η warm, α cool
SHADE_SPAN = 0.85  # of each colormap, so the last multiplier stays visible on white
SYMBOL = {"eta": "η", "alpha": "α"}


# --- LoRA-α Fig. 2 --------------------------------------------------------------------------
class Fig2Curve(NamedTuple):
    label: str
    path: str  # "base", "eta" or "alpha"
    multiplier: float
    loss: tuple[float, ...]  # mean over seeds per step, from step 0; NaN where no seed is finite
    drift: tuple[float, ...]  # per monitored step, from step 1
    ratio: tuple[float, ...]
    shade: float | None  # position in its path's colormap (0 … SHADE_SPAN by multiplier); None for base


class Fig2Info(NamedTuple):
    curves: tuple[Fig2Curve, ...]


def fig2_info(configs, eta: Collection[float], alpha: Collection[float]) -> Fig2Info:
    """Seed-mean curves of the base and of the η- and α-multipliers asked for (the paper's:
    ``repro.dynamics.PAPER_ETA`` and ``PAPER_ALPHA``); other configurations are left out."""
    wanted = [c for c in configs if c.path == "base" or (c.path == "eta" and c.multiplier in eta)
              or (c.path == "alpha" and c.multiplier in alpha)]
    shades = {}
    for name in PATH_CMAPS:
        mults = sorted(c.multiplier for c in wanted if c.path == name)
        shades.update({(name, m): SHADE_SPAN * i / max(1, len(mults) - 1) for i, m in enumerate(mults)})
    return Fig2Info(tuple(
        Fig2Curve("base" if c.path == "base" else f"{SYMBOL[c.path]}×{c.multiplier:g}", c.path, c.multiplier,
                  seed_mean(c.losses), seed_mean(c.drift), seed_mean(c.ratio), shades.get((c.path, c.multiplier)))
        for c in wanted
    ))


def render_fig2(info: Fig2Info, path: str | Path) -> Path:
    fig, (axes,) = new_figure(1, 3, width=5.0, height=4.0)
    for c in info.curves:
        color = "black" if c.shade is None else colormap(PATH_CMAPS[c.path])(c.shade)
        kw = {"label": c.label, "color": color, "lw": 1.4}
        axes[0].plot(range(len(c.loss)), c.loss, **kw)
        axes[1].plot(range(1, len(c.drift) + 1), c.drift, **kw)
        axes[2].plot(range(1, len(c.ratio) + 1), c.ratio, **kw)
    for ax, title in zip(axes, ("(a) training loss", "(b) drift ‖ΔW_drift‖_F", "(c) signal-to-drift ratio")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title)
    axes[0].legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


# --- final loss against the multiplier ------------------------------------------------------
class PathPoints(NamedTuple):
    label: str
    multipliers: tuple[float, ...]  # where every seed finished
    mean: tuple[float, ...]  # final loss, seed mean
    sd: tuple[float, ...]  # its sd over seeds
    diverged: tuple[float, ...]  # multipliers where some seed diverged (mean is inf)


class SweepInfo(NamedTuple):
    eta: PathPoints | None
    alpha: PathPoints | None
    base_loss: float | None  # the dotted line; None if unknown or not finite
    diverged_y: float  # where × marks sit on the log axis: twice the highest finite mean (2 if none)


def sweep_info(configs, base_loss: float | None = None) -> SweepInfo:
    """From configs with path, multiplier, mean_final, std_final (``repro.dynamics.ConfigResult``)."""
    paths = {}
    for name in PATH_CMAPS:
        cs = sorted((c for c in configs if c.path == name), key=lambda c: c.multiplier)
        if cs:
            ok = [c for c in cs if math.isfinite(c.mean_final)]
            paths[name] = PathPoints(f"{SYMBOL[name]}-scaling (± sd)", tuple(c.multiplier for c in ok),
                                     tuple(c.mean_final for c in ok), tuple(c.std_final for c in ok),
                                     tuple(c.multiplier for c in cs if not math.isfinite(c.mean_final)))
    top = max((m for p in paths.values() for m in p.mean), default=1.0)
    base = base_loss if base_loss is not None and math.isfinite(base_loss) else None
    return SweepInfo(paths.get("eta"), paths.get("alpha"), base, 2 * top)


def render_sweep(info: SweepInfo, path: str | Path) -> Path:
    fig, ((ax,),) = new_figure(width=6.0, height=4.0)
    for name, pts, colour in (("eta", info.eta, "tab:red"), ("alpha", info.alpha, "tab:blue")):
        if pts is None:
            continue
        if pts.multipliers:
            ax.errorbar(pts.multipliers, pts.mean, yerr=pts.sd, fmt="o-", capsize=3, color=colour, label=pts.label)
        if pts.diverged:
            ax.plot(pts.diverged, [info.diverged_y] * len(pts.diverged), "x", color=colour, ms=9, label=f"{name}: diverged")
    if info.base_loss is not None:
        ax.axhline(info.base_loss, color="grey", ls=":", label="base (×1)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("multiplier of η₀ or α₀")
    ax.set_ylabel("final training loss (seed mean)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# --- LoRA-α Fig. 8 --------------------------------------------------------------------------
class Fig8Info(NamedTuple):
    weights: tuple[float, ...]  # (a) leading eigenvalues of H_ℓ (one layer, init), positive part (log axis)
    signal: tuple[float, ...]  # (a) leading eigenvalues of H_signal, positive part
    trace_pairs: list[dict]  # (b) rank, predicted, measured
    lora_spectra: tuple[tuple[float, tuple[float, ...], tuple[float, ...]], ...]  # (c) (α, quantile, λ/λ_max) by α
    growth: list[dict]  # (d) per α: signal_lambda_max, drift_abs_lambda_min, lora_lambda_max
    exponents: dict  # (d) log-log slopes of the growth columns


def fig8_info(result, show_alphas: Collection[float] | None = None) -> Fig8Info:
    """From a :class:`lorascale.repro.spectra.SpectraResult`; (c) shows ``show_alphas`` (default: the
    smallest, middle and largest α), each spectrum ascending against its quantile in [0, 1] and
    divided by its largest eigenvalue (left as is when that is not positive)."""
    spectra = result.spectra.get("lora", {})
    if show_alphas is None:
        keys = sorted(spectra)
        show_alphas = {keys[0], keys[len(keys) // 2], keys[-1]} if keys else set()
    lora = []
    for a in sorted(a for a in spectra if a in show_alphas):
        eig = [float(v) for v in spectra[a]]
        top = max(eig, default=0.0)
        n = len(eig)
        lora.append((a, tuple(i / (n - 1) if n > 1 else 0.0 for i in range(n)),
                     tuple(v / top if top > 0 else v for v in eig)))
    return Fig8Info(
        _positive(result.spectra.get("weights", [])), _positive(result.spectra.get("signal", [])),
        result.trace_pairs(), tuple(lora), result.purification(), result.growth(),
    )


def render_fig8(info: Fig8Info, path: str | Path) -> Path:
    fig, (ax,) = new_figure(1, 4, width=4.75, height=4.0)
    ax[0].plot(info.weights, label="H_ℓ (weights)", color="black")
    ax[0].plot(info.signal, label="H_signal", color="tab:blue")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("eigenvalue index")
    ax[0].set_title("(a) compression at init")
    ax[0].legend(fontsize=8)
    ranks = [p["rank"] for p in info.trace_pairs]
    ax[1].plot(ranks, [p["predicted"] for p in info.trace_pairs], "s--", label="predicted α²σ²/r·Tr H_ℓ")
    ax[1].plot(ranks, [p["measured"] for p in info.trace_pairs], "o-", label="measured Tr H_signal")
    ax[1].set_xscale("log", base=2)
    ax[1].set_yscale("log")
    ax[1].set_xlabel("rank r")
    ax[1].set_title("(b) trace over ranks")
    ax[1].legend(fontsize=8)
    cmap = colormap("viridis")
    for i, (a, quantile, scaled) in enumerate(info.lora_spectra):
        ax[2].plot(quantile, scaled, color=cmap(i / max(1, len(info.lora_spectra) - 1)), label=f"α×{a:g}")
    ax[2].axhline(0, color="grey", lw=0.6)
    ax[2].set_xlabel("eigenvalue quantile")
    ax[2].set_ylabel("λ / λ_max[H_LoRA]")
    ax[2].set_title("(c) H_LoRA spectrum: purification")
    ax[2].legend(fontsize=8)
    a = [g["alpha"] for g in info.growth]
    ax[3].plot(a, [g["signal_lambda_max"] for g in info.growth], "o-", label=f"λ_max[H_signal] (slope {info.exponents['signal_lambda_max']:.2f})")
    ax[3].plot(a, [g["drift_abs_lambda_min"] for g in info.growth], "s-", label=f"|λ_min[H_drift]| (slope {info.exponents['drift_abs_lambda_min']:.2f})")
    ax[3].plot(a, [g["lora_lambda_max"] for g in info.growth], "k:", label="λ_max[H_LoRA]")
    ax[3].set_xscale("log", base=2)
    ax[3].set_yscale("log")
    ax[3].set_xlabel("α multiplier")
    ax[3].set_title("(d) growth in α")
    ax[3].legend(fontsize=7)
    return save_figure(fig, path)


# --- helpers --------------------------------------------------------------------------------
def seed_mean(per_seed: list[list[float]]) -> tuple[float, ...]:
    """Step-wise mean over seeds of the finite values; a shorter (diverged) run is absent after its
    end, and a step where no seed is finite is NaN."""
    n = max((len(s) for s in per_seed), default=0)
    out = []
    for t in range(n):
        vals = [float(s[t]) for s in per_seed if t < len(s) and math.isfinite(s[t])]
        out.append(math.fsum(vals) / len(vals) if vals else math.nan)
    return tuple(out)


def _positive(values) -> tuple[float, ...]:
    """The positive part, for a log axis."""
    return tuple(float(v) for v in values if v > 0)
