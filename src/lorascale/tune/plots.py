"""The search's figure: every candidate's EMA loss against the steps it was given, the chosen one marked."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..figures import new_figure, save_figure

__all__ = ["CandidateLine", "SearchInfo", "search_info", "render_search"]


class CandidateLine(NamedTuple):
    label: str
    steps: tuple[int, ...]
    ema: tuple[float, ...]
    pruned_at: int | None
    chosen: bool
    diverged: bool


class SearchInfo(NamedTuple):
    title: str
    lines: tuple[CandidateLine, ...]
    rungs: tuple[int, ...]
    member_steps: int
    full_member_steps: int
    checks: tuple[CandidateLine, ...] = ()  # the finalists again at other seeds (dashed)


def search_info(result) -> SearchInfo:
    st = result.search
    lines = [_line(c, f", mean over {len(c.seed_ema)} seeds {c.mean_ema:.3f}" if c.seed_ema else "", c.pruned_at,
                   i == st.best) for i, c in enumerate(st.candidates)]
    cfg = result.config
    title = (f"tune {cfg.model} r={cfg.adapter.rank}: {len(st.candidates)} candidates, "
             f"{st.member_steps} of {st.full_member_steps} member-steps")
    if result.confirm is not None:
        title += f"\n+ {result.confirm.member_steps} checking the finalists at other seeds"
    checks = tuple(_line(c, f" seed {c.seed}", None, (c.lr, c.alpha) == (st.chosen.lr, st.chosen.alpha))
                   for c in (result.confirm.candidates if result.confirm is not None else ()))
    return SearchInfo(title, tuple(lines), tuple(st.rungs), st.member_steps, st.full_member_steps, checks)


def _line(c, suffix: str, pruned_at: int | None, chosen: bool) -> CandidateLine:
    return CandidateLine(f"η={c.lr:.2g} α={c.alpha:.3g}{suffix}", tuple(int(s) for s, _ in c.curve),
                         tuple(float(v) for _, v in c.curve), pruned_at, chosen, c.status == "diverged")


def render_search(info: SearchInfo, path: str | Path) -> Path:
    fig, axes = new_figure(width=7.5, height=4.8)
    ax = axes[0, 0]
    for line in info.lines:
        if not line.steps:
            continue
        style = dict(color="tab:red", lw=2.4, zorder=3, label=f"chosen: {line.label}") if line.chosen else \
            dict(color="tab:gray", lw=0.9, alpha=0.6)
        ax.plot(line.steps, line.ema, **style)
        if line.pruned_at is not None:
            ax.plot(line.steps[-1], line.ema[-1], "x", color="tab:gray", ms=5)
    for line in info.checks:
        if line.steps:
            ax.plot(line.steps, line.ema, ls="--", lw=1.4 if line.chosen else 0.9,
                    color="tab:red" if line.chosen else "tab:gray", alpha=0.8 if line.chosen else 0.6,
                    label=f"seed check: {line.label}" if line.chosen else None)
    for r in info.rungs:
        ax.axvline(r, color="k", ls=":", lw=0.8)
    ax.set(title=info.title, xlabel="training step (each candidate's compute)", ylabel="EMA(0.1) training loss")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)
