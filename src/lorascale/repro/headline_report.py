"""The headline table (Markdown) and figure (held-out loss against compute), from ``run_headline``'s result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from ..figures import new_figure, save_figure
from .gap_text import gap_ci_text, paired_ci_text
from .timing import timing_text

__all__ = ["HeadlinePoint", "HeadlineInfo", "headline_points", "headline_info", "render_headline", "write_headline_md"]

ORDER = ("a", "b", "c", "c+", "d", "e")  # the arms, in the order of the table


COLORS = dict(zip(ORDER, ("tab:red", "tab:gray", "tab:blue", "tab:purple", "tab:green", "k")))
NUDGE = 1.06  # arms at the same compute are drawn this factor apart on the log axis, so none hides another


class HeadlinePoint(NamedTuple):
    label: str
    compute: int  # member-steps spent finding the setting (the reported seeds for a no-search arm)
    mean: float
    std: float
    arm: str = ""
    x: float = 0.0  # where it is drawn: ``compute``, nudged apart from arms at the same compute


class HeadlineInfo(NamedTuple):
    title: str
    points: tuple[HeadlinePoint, ...]
    a_with_e: HeadlinePoint | None  # (a) at the compute that also pays for the FFT sweep that found η_FFT


def headline_points(result: dict) -> tuple[HeadlinePoint, ...]:
    pts, seen = [], {}
    for k in [k for k in ORDER if k in result["arms"]]:
        a = result["arms"][k]
        m, s = a["val_loss_mean_std"]
        compute = a["member_steps"] or a["eval_member_steps"]
        n = seen[compute] = seen.get(compute, -1) + 1
        pts.append(HeadlinePoint(a["label"], compute, m, s, k, compute * NUDGE ** n))
    return tuple(pts)


def headline_info(result: dict) -> HeadlineInfo:
    pts = headline_points(result)
    a = next((p for p in pts if p.arm == "a"), None)
    frac = result.get("targets", {}).get("a", {}).get("compute_fraction_of_b_with_e")
    b = next((p for p in pts if p.arm == "b"), None)
    with_e = None
    if a is not None and b is not None and frac is not None:
        compute = round(frac * b.compute)
        with_e = a._replace(label="(a) counting the FFT sweep that found η_FFT", compute=compute, x=float(compute))
    run = result["request"]["run"]
    title = f"{run['model']} on {run['data']}: {result['steps']} steps, {len(result['seeds'])} seeds"
    return HeadlineInfo(title, pts, with_e)


def render_headline(result: dict, path: str | Path) -> Path:
    info = headline_info(result)
    fig, axes = new_figure(width=7.0, height=4.4)
    ax = axes[0, 0]
    for p in info.points:
        if math.isfinite(p.mean):
            ax.errorbar([p.x], [p.mean], yerr=[p.std], fmt="o", color=COLORS[p.arm], capsize=3, label=p.label)
    e = info.a_with_e
    if e is not None and math.isfinite(e.mean):
        ax.errorbar([e.x], [e.mean], yerr=[e.std], fmt="o", mfc="none", color=COLORS["a"], capsize=3, label=e.label)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 200, 500, 1000, 2000, …
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 1000, not 10³
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.08)
    ax.set(xlabel="compute to find the setting (member-steps, log)", ylabel="held-out loss (mean ± std over seeds)",
           title=info.title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return save_figure(fig, path)


def write_headline_md(result: dict, path: str | Path) -> Path:
    run = result["request"]["run"]
    lines = [f"### {run['model']} on {run['data']}", "",
             f"{result['steps']} steps × {run['batch_size']}×{run['seq_len']}, rank {run['adapter']['rank']},"
             f" seeds {result['seeds']}, η_FFT = {result['lr_fft']:.3g} (the FFT arm's optimum); "
             + _timing(result), "",
             "| arm | learning rate | held-out loss | " + _metric(result) + " | EMA train loss | compute (member-steps) | statuses |",
             "|---|---|---|---|---|---|---|"]
    for k in [k for k in ORDER if k in result["arms"]]:
        a = result["arms"][k]
        lines.append(f"| {a['label']} | {a['lr']:.3g} | {_pm(a['val_loss_mean_std'])} | {_pm(a['eval_mean_std'])} |"
                     f" {_pm(a['ema_mean_std'])} | {a['member_steps'] or a['eval_member_steps']} |"
                     f" {', '.join(sorted(set(a['statuses'])))} |")
    t = result["targets"]
    lines += ["", "Targets (issue #10):", ""]
    if "a" in t:
        ci = _ci(t["a"])
        lines.append(f"* (a) within one seed-std of (b), or better: **{_yes(t['a']['within_one_std_or_better'])}**"
                     f" (gap {t['a']['val_loss_gap_vs_b']:+.4f}{ci}, (b)'s std {t['a']['b_std']:.4f}{_unfinished(t['a'])}),"
                     f" at {t['a']['compute_fraction_of_b']:.1%} of (b)'s compute (target 1/8 = 12.5%)"
                     + (f"; {t['a']['compute_fraction_of_b_with_e']:.1%} counting the FFT sweep (e) that found its η_FFT"
                        if "compute_fraction_of_b_with_e" in t["a"] else "") + ".")
    if "d" in t:
        gap, ci = t["d"]["val_loss_gap_vs_b"], _ci(t["d"])
        lines.append(f"* (d) equals or beats (b): within one seed-std **{_yes(t['d']['within_one_std_or_better'])}**,"
                     f" better in the mean **{_yes(gap < 0)}** (gap {gap:+.4f}{ci}, (b)'s std {t['d']['b_std']:.4f}"
                     f"{_unfinished(t['d'])}),"
                     f" at {t['d']['compute_fraction_of_b']:.1%} of (b)'s compute (target ≤ 40%).")
    for k in [k for k in ORDER if k in result["arms"]]:
        added = _extension(result, k)
        if added:
            lines.append(f"* {k}'s best rate lay on its grid's edge, so its sweep went on past it: log2 η"
                         f" {', '.join(f'{x:+g}' for x in added)} ({len(result['arms'][k]['sweep'])} rates in all,"
                         " counted in its compute).")
        for w in result["arms"][k].get("at_edge") or []:
            lines.append(f"* {k}'s answer is at an edge of its search (`{w['field']}`): {w['message']}; {w['fix']}.")
    missing = result.get("missing") or []
    if missing:
        lines.append(f"* **partial report**: arm(s) {', '.join(missing)} not finished yet; the targets that need them are"
                     " not evaluated. Re-run the same command to resume.")
    lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def _extension(result: dict, key: str) -> list[float]:
    """The log2 rates an arm's sweep added past its requested grid (headline's ``edge_extension``)."""
    asked = result["request"]["fft_log2_lr" if key == "e" else "lora_log2_lr"]
    swept = [math.log2(x["lr"]) for x in result["arms"][key].get("sweep") or []]
    return [x for x in swept if all(abs(x - a) > 1e-9 for a in asked)]


def _ci(target: dict) -> str:
    """A target gap's intervals: Welch over seeds, then paired by seed (every arm runs the same seeds)."""
    return (gap_ci_text(target.get("gap_ci95"), spell_out=True)
            + paired_ci_text(target.get("gap_ci95_paired"), spell_out=True))


def _metric(result: dict) -> str:
    return next(iter(result["arms"].values()))["eval_metric"] or "metric"


def _pm(ms) -> str:
    m, s = ms
    return "—" if m is None or not math.isfinite(m) else f"{m:.4f} ± {s:.4f}"


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def _timing(result: dict) -> str:
    """The runs' own training time (read back with them, so a re-read report keeps it), and this call's."""
    call = "this report read the finished runs back" if result["request"].get("report_only") else f"this call {result['seconds']} s"
    if "run_seconds" not in result:  # a headline.json written before the runs' time was kept
        return call + "."
    return f"the arms' runs: {timing_text(result)} (tune's search not counted); {call}."


def _unfinished(target: dict) -> str:
    """"; 1 seed diverged: the target is missed" where an arm's seed did not finish (its mean leaves it out)."""
    n = target.get("unfinished_seeds") or 0
    return f"; {n} seed{'s' * (n > 1)} did not finish, so the target is missed" if n else ""
