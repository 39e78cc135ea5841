"""Compute, then render: pure functions turn traces into small named tuples; thin matplotlib renderers draw them.

* :func:`trace_info` / :func:`render_traces` — a run's per-layer-type diagnostics from metrics.jsonl.
* :func:`fig2_info` / :func:`render_fig2` — LoRA-α Fig. 2: loss, drift norm and signal-to-drift
  ratio over steps, η-scaling in warm colours, α-scaling in cool ones.
* :func:`sweep_info` / :func:`render_sweep` — final loss against the multiplier on each path.
* :func:`fig8_info` / :func:`render_fig8` — LoRA-α Fig. 8 (a)–(d) from an mlp-spectra result.

Renderers use the Agg backend (files only, no display) and return the path they wrote.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .aggregate import ALL, parse_metric_key

__all__ = [
    "TraceInfo", "trace_info", "trace_summary", "render_traces",
    "Fig2Curve", "Fig2Info", "fig2_info", "render_fig2",
    "SweepInfo", "sweep_info", "render_sweep",
    "Fig8Info", "fig8_info", "render_fig8",
]

LOG_METRICS = {"signal_norm", "drift_norm", "ratio", "delta1", "delta2", "delta3", "z_a"}


# --- a run's traces -------------------------------------------------------------------------
class TraceInfo(NamedTuple):
    prefix: str  # "sd" or "fu"
    series: dict  # metric -> kind -> (steps, values)


def trace_info(records: list[dict], prefix: str) -> TraceInfo:
    """Group ``<prefix>/<kind>/<metric>`` keys of metrics.jsonl records into per-metric, per-kind series."""
    series: dict = {}
    for rec in records:
        step = rec.get("step")
        if step is None:
            continue
        for key, value in rec.items():
            parsed = parse_metric_key(key)
            if parsed is None or parsed[0] != prefix or not isinstance(value, (int, float)):
                continue
            _, kind, metric = parsed
            steps, values = series.setdefault(metric, {}).setdefault(kind, ([], []))
            steps.append(step)
            values.append(float(value))
    return TraceInfo(prefix, series)


def trace_summary(info: TraceInfo) -> dict:
    """kind -> metric -> {mean, median, last, n} over the finite logged values."""
    out: dict = {}
    for metric, kinds in info.series.items():
        for kind, (steps, values) in kinds.items():
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                out.setdefault(kind, {})[metric] = {
                    "mean": float(np.mean(finite)), "median": float(np.median(finite)), "last": finite[-1], "n": len(finite),
                }
    return out


def render_traces(info: TraceInfo, path: str | Path, title: str = "") -> Path:
    plt = _pyplot()
    metrics = sorted(info.series)
    cols = min(3, max(1, len(metrics)))
    rows = math.ceil(len(metrics) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for kind, (steps, values) in sorted(info.series[metric].items()):
            ax.plot(steps, values, label=kind, lw=2.2 if kind == ALL else 1.1, color="black" if kind == ALL else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        if metric in LOG_METRICS and all(v > 0 for _, vs in info.series[metric].values() for v in vs if math.isfinite(v)):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if metrics:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title or info.prefix)
    return _save(fig, path)


# --- LoRA-α Fig. 2 --------------------------------------------------------------------------
class Fig2Curve(NamedTuple):
    label: str
    path: str  # "base", "eta" or "alpha"
    multiplier: float
    loss: np.ndarray  # mean over seeds, per step
    drift: np.ndarray
    ratio: np.ndarray


class Fig2Info(NamedTuple):
    curves: list[Fig2Curve]


def fig2_info(configs, eta=(16, 32, 64, 128), alpha=(32, 64, 128, 256)) -> Fig2Info:
    """Seed-mean curves of the paper's configurations; ``configs`` have path, multiplier, losses, drift, ratio."""
    curves = []
    for c in configs:
        wanted = c.path == "base" or (c.path == "eta" and c.multiplier in eta) or (c.path == "alpha" and c.multiplier in alpha)
        if wanted:
            label = "base" if c.path == "base" else f"{'η' if c.path == 'eta' else 'α'}×{c.multiplier:g}"
            curves.append(Fig2Curve(label, c.path, c.multiplier, _nanmean(c.losses), _nanmean(c.drift), _nanmean(c.ratio)))
    return Fig2Info(curves)


def render_fig2(info: Fig2Info, path: str | Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colours = _path_colours([(c.path, c.multiplier) for c in info.curves])
    for c in info.curves:
        kw = {"label": c.label, "color": colours[(c.path, c.multiplier)], "lw": 1.4}
        axes[0].plot(np.arange(len(c.loss)), c.loss, **kw)
        axes[1].plot(np.arange(1, len(c.drift) + 1), c.drift, **kw)
        axes[2].plot(np.arange(1, len(c.ratio) + 1), c.ratio, **kw)
    for ax, title in zip(axes, ("(a) training loss", "(b) drift ‖ΔW_drift‖_F", "(c) signal-to-drift ratio")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title)
    axes[0].legend(fontsize=7, ncol=2)
    return _save(fig, path)


class SweepInfo(NamedTuple):
    paths: dict  # path -> list of (multiplier, mean final loss or inf, its sd over seeds, diverged seeds)


def sweep_info(configs) -> SweepInfo:
    """From configs with path, multiplier, mean_final, std_final and diverged (``repro.dynamics.ConfigResult``)."""
    paths: dict = {}
    for c in sorted(configs, key=lambda c: c.multiplier):
        if c.path in ("eta", "alpha"):
            paths.setdefault(c.path, []).append((c.multiplier, c.mean_final, c.std_final, c.diverged))
    return SweepInfo(paths)


def render_sweep(info: SweepInfo, path: str | Path, base_loss: float | None = None) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    top = max((v for pts in info.paths.values() for _, v, _, _ in pts if math.isfinite(v)), default=1.0)
    for name, colour in (("eta", "tab:red"), ("alpha", "tab:blue")):
        pts = info.paths.get(name, [])
        ok = [(m, v, sd) for m, v, sd, _ in pts if math.isfinite(v)]
        bad = [m for m, v, _, _ in pts if not math.isfinite(v)]
        if ok:
            m, v, sd = zip(*ok)
            ax.errorbar(m, v, yerr=sd, fmt="o-", capsize=3, color=colour, label=f"{'η' if name == 'eta' else 'α'}-scaling (± sd)")
        if bad:
            ax.plot(bad, [top * 2] * len(bad), "x", color=colour, ms=9, label=f"{name}: diverged")
    if base_loss is not None and math.isfinite(base_loss):
        ax.axhline(base_loss, color="grey", ls=":", label="base (×1)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("multiplier of η₀ or α₀")
    ax.set_ylabel("final training loss (seed mean)")
    ax.legend(fontsize=8)
    return _save(fig, path)


# --- LoRA-α Fig. 8 --------------------------------------------------------------------------
class Fig8Info(NamedTuple):
    weights: list[float]  # (a) leading eigenvalues of H_ℓ (one layer, init)
    signal: list[float]  # (a) leading eigenvalues of H_signal
    trace_pairs: list[dict]  # (b) rank, predicted, measured
    lora_spectra: dict  # (c) α -> ascending eigenvalues of H_LoRA
    growth: list[dict]  # (d) per α: signal_lambda_max, drift_abs_lambda_min, lora_lambda_max
    exponents: dict


def fig8_info(result, show_alphas=None) -> Fig8Info:
    """From a :class:`lorascale.repro.spectra.SpectraResult`; (c) shows ``show_alphas`` (default: the
    smallest, middle and largest α)."""
    spectra = result.spectra.get("lora", {})
    if show_alphas is None:
        keys = sorted(spectra)
        show_alphas = {keys[0], keys[len(keys) // 2], keys[-1]} if keys else set()
    lora = {a: v for a, v in spectra.items() if a in show_alphas}
    return Fig8Info(
        result.spectra.get("weights", []), result.spectra.get("signal", []), result.trace_pairs(),
        lora, result.purification(), result.growth(),
    )


def render_fig8(info: Fig8Info, path: str | Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(1, 4, figsize=(19, 4))
    pos = lambda v: [x for x in v if x > 0]  # noqa: E731  (log axis: the positive part)
    ax[0].plot(pos(info.weights), label="H_ℓ (weights)", color="black")
    ax[0].plot(pos(info.signal), label="H_signal", color="tab:blue")
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
    cmap = plt.get_cmap("viridis")
    for i, (a, eig) in enumerate(sorted(info.lora_spectra.items())):
        e = np.asarray(eig)
        ax[2].plot(np.linspace(0, 1, len(e)), e / e.max(), color=cmap(i / max(1, len(info.lora_spectra) - 1)), label=f"α×{a:g}")
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
    return _save(fig, path)


# --- helpers --------------------------------------------------------------------------------
def _nanmean(per_seed: list[list[float]]) -> np.ndarray:
    """Step-wise mean over seeds; shorter (diverged) runs are padded with NaN and ignored there."""
    if not per_seed:
        return np.array([])
    n = max(len(s) for s in per_seed)
    arr = np.full((len(per_seed), n), np.nan)
    for i, s in enumerate(per_seed):
        vals = np.asarray(s, dtype=float)
        arr[i, : len(vals)] = np.where(np.isfinite(vals), vals, np.nan)
    with np.errstate(all="ignore"):
        counts = np.isfinite(arr).sum(0)
        return np.where(counts > 0, np.nansum(arr, 0) / np.maximum(counts, 1), np.nan)


def _path_colours(keys) -> dict:
    plt = _pyplot()
    out = {}
    for name, cmap in (("eta", "autumn"), ("alpha", "winter")):
        mults = sorted(m for p, m in keys if p == name)
        for i, m in enumerate(mults):
            out[(name, m)] = plt.get_cmap(cmap)(0.85 * i / max(1, len(mults) - 1))
    for key in keys:
        out.setdefault(key, "black")
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path
