"""The search's figure: every candidate's EMA loss against the steps it was given, the chosen one marked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from ..figures import new_figure, save_figure
from ..vocabulary import RunStatus

__all__ = ["CandidateLine", "SearchInfo", "search_info", "search_info_from_dict", "render_search"]


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
    ylim: tuple[float, float] | None = None  # what the candidates that passed the first rung span


def search_ylim(lines, checks=()) -> tuple[float, float] | None:
    """The y-range of the curves that matter: those never cut (and the seed checks), whole; a candidate cut
    at the first rung, or one that blew up, may leave the top (a loss of 20 would flatten the finalists)."""
    kept = [v for line in (*lines, *checks) if line.pruned_at is None and not line.diverged for v in line.ema
            if math.isfinite(v)]
    every = [v for line in (*lines, *checks) for v in line.ema if math.isfinite(v)]
    if not kept or not every:
        return None
    lo, hi = min(every), max(kept)
    pad = 0.05 * (hi - lo) or 0.05
    return lo - pad, hi + pad


def search_info(result) -> SearchInfo:
    """From a :class:`~lorascale.tune.search.TuneResult`."""
    return _search_info(result.search, result.confirm, result.config.model, result.config.adapter.rank)


def search_info_from_dict(answer: dict) -> SearchInfo:
    """From the ``tune.json`` a tune wrote (``TuneResult.to_dict``): the figure again, without the study."""
    from .search import StageResult

    confirm = StageResult.from_dict(answer["confirm"]) if answer.get("confirm") else None
    return _search_info(StageResult.from_dict(answer["search"]), confirm, answer["model"], answer["rank"])


def _search_info(st, confirm, model: str, rank: int) -> SearchInfo:
    lines = [_line(c, f", mean over {len(c.seed_ema)} seeds {c.mean_ema:.3f}" if c.seed_ema else "", c.pruned_at,
                   i == st.best) for i, c in enumerate(st.candidates)]
    title = (f"tune {model} r={rank}: {len(st.candidates)} candidates, "
             f"{st.member_steps} of {st.full_member_steps} member-steps")
    if confirm is not None:
        title += f"\n+ {confirm.member_steps} checking the finalists at other seeds"
    checks = tuple(_line(c, f" seed {c.seed}", None, (c.lr, c.alpha) == (st.chosen.lr, st.chosen.alpha))
                   for c in (confirm.candidates if confirm is not None else ()))
    return SearchInfo(title, tuple(lines), tuple(st.rungs), st.member_steps, st.full_member_steps, checks,
                      search_ylim(lines, checks))


def _line(c, suffix: str, pruned_at: int | None, chosen: bool) -> CandidateLine:
    return CandidateLine(f"η={c.lr:.2g} α={c.alpha:.3g}{suffix}", tuple(int(s) for s, _ in c.curve),
                         tuple(float(v) for _, v in c.curve), pruned_at, chosen, c.status == RunStatus.DIVERGED)


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
            ax.plot(line.steps[-1], min(line.ema[-1], info.ylim[1]) if info.ylim else line.ema[-1], "x",
                    color="tab:gray", ms=5, clip_on=False)  # a cut above the axis: its × on the top edge
        if line.diverged:
            ax.plot(line.steps[-1], info.ylim[1] if info.ylim else line.ema[-1], marker="X", color="tab:orange",
                    ms=7, ls="none", clip_on=False)
    for line in info.checks:
        if line.steps:
            ax.plot(line.steps, line.ema, ls="--", lw=1.4 if line.chosen else 0.9,
                    color="tab:red" if line.chosen else "tab:gray", alpha=0.8 if line.chosen else 0.6,
                    label=f"seed check: {line.label}" if line.chosen else None)
    for r in info.rungs:
        ax.axvline(r, color="k", ls=":", lw=0.8)
    if info.ylim:
        ax.set_ylim(*info.ylim)
    ax.set(title=info.title, xlabel="training step (each candidate's compute)", ylabel="EMA(0.1) training loss")
    ax.legend(loc="upper right", fontsize=8, title="× cut at a rung (on the edge: off the axis), X diverged",
              title_fontsize=7)
    return save_figure(fig, path)
