"""Where tune's answer sits on the edge of what it searched (pure math): a warning with the setting to widen.

A sweep whose optimum lands on its grid's first or last point has not found an optimum, only a bound; the
sweep fit marks such points "edge". ``tune`` has the same blind spot twice over:

* the η_FFT probe: its chosen rate is the lowest or highest of its grid (``FFT_PROBE_LOG2_LR``), so full
  finetuning's optimum may lie beyond it, and the whole search is centred on a bound;
* the search: the chosen α knob is the smallest or largest searched (at ``alpha_min`` / ``alpha_max``, or
  short of them when a ``compute`` cap left few candidates), or, with ``lr_span`` > 0, the chosen η is the
  lowest or highest searched.

The one-standard-error rule leans toward the gentler setting, so a smaller α that the box left out could do
as well or better. Each finding names the request field to change and the value to try (the edge moved
two octaves outward, as a sweep extends its grid), as a :class:`~lorascale.errors.ConfigWarning`; only the
CLI turns the field into a flag.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigWarning
from .request import LR_SPAN_MAX

__all__ = ["probe_edges", "search_edges", "WIDEN"]

WIDEN = 4.0  # how far past an edge to look next: two octaves, as the sweep's edge extension


def probe_edges(chosen_lr: float, grid_lrs: Sequence[float]) -> list[ConfigWarning]:
    """A warning when the η_FFT probe chose the lowest or highest rate of its grid."""
    lo, hi = min(grid_lrs), max(grid_lrs)
    if len(set(grid_lrs)) < 2 or lo < chosen_lr < hi:
        return []
    side = "lowest" if chosen_lr <= lo else "highest"
    return [ConfigWarning("lr_fft", f"the η_FFT probe chose {chosen_lr:.3g}, the {side} rate of its grid"
                          f" ({lo:.3g} … {hi:.3g}): full finetuning's optimum may lie beyond it",
                          "give `lr_fft` from a full-finetuning sweep (or a transfer of one)")]


def search_edges(chosen: tuple[float, float], searched: Sequence[tuple[float, float]], lr_fft: float,
                 lr_span: float, alpha_box: tuple[float, float]) -> list[ConfigWarning]:
    """Warnings for a chosen (lr, α) at the edge of the searched (lr, α) points: α at its smallest or largest
    (always), η at its lowest or highest (only when η was searched, ``lr_span`` > 0). An α edge at the box
    (``alpha_box`` = (alpha_min, alpha_max)) moves the box; one inside it (fewer candidates than the path
    needs, e.g. under a ``compute`` cap) asks for more candidates. The fix keeps this run's η_FFT, so a
    second tune spends nothing on the probe, except for an η edge at the widest ``lr_span``: that one
    centres the search on the chosen rate (``lr_fft`` set to it)."""
    lr, alpha = chosen
    alphas, lrs = [a for _, a in searched], [x for x, _ in searched]
    again = f"`lr_fft` {lr_fft!r} (this run's) and a new `tune_dir`"  # exact: a rounded η_FFT is another question
    out = []
    if len(set(alphas)) > 1 and (alpha <= min(alphas) or alpha >= max(alphas)):
        low = alpha <= min(alphas)
        side, bound = ("smallest", "alpha_min") if low else ("largest", "alpha_max")
        box = alpha_box[0] if low else alpha_box[1]
        if _same(alpha, box):
            moved = alpha / WIDEN if low else alpha * WIDEN
            out.append(ConfigWarning(bound, f"the chosen α knob, {alpha:.3g}, is the {side} searched: a"
                                     f" {'smaller' if low else 'larger'} α may do as well or better",
                                     f"re-run with `{bound}` {moved:.3g}, {again}"))
        elif lr_span > 0:  # Sobol points never land on the box's edge: more of them only get closer to it
            moved = box / WIDEN if low else box * WIDEN
            out.append(ConfigWarning(bound, f"the chosen α knob, {alpha:.3g}, is the {side} of the {len(alphas)}"
                                     f" searched in [{alpha_box[0]:.3g}, {alpha_box[1]:.3g}] (Sobol points, which never"
                                     f" reach the box's edge): a {'smaller' if low else 'larger'} α may do as well or"
                                     " better", f"re-run with `{bound}` {moved:.3g} (or more `candidates`), {again}"))
        else:
            out.append(ConfigWarning("candidates", f"the chosen α knob, {alpha:.3g}, is the {side} of the {len(alphas)}"
                                     f" searched, inside [{alpha_box[0]:.3g}, {alpha_box[1]:.3g}]: too few candidates"
                                     " to reach the box's edge", f"raise `candidates` or `compute`, {again}"))
    if lr_span > 0 and len(set(lrs)) > 1 and (lr <= min(lrs) or lr >= max(lrs)):
        side = "lowest" if lr <= min(lrs) else "highest"
        if lr_span < LR_SPAN_MAX:
            fix = f"re-run with `lr_span` {min(lr_span + 2, LR_SPAN_MAX):g}, {again}"
        else:  # the span is at its cap: centre the search on the edge instead
            fix = f"re-run with `lr_fft` {lr!r} (the chosen rate, so the search is centred on it) and a new `tune_dir`"
        out.append(ConfigWarning("lr_span", f"the chosen learning rate, {lr:.3g}, is the {side} searched", fix))
    return out


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))  # the path's ends are exp(log(box)): equal to rounding
