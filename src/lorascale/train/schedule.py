"""The μA recipe's learning-rate schedule (μA §5.1, Table 2), as one pure function.

Linear warm-up over the first ``warmup_frac`` of steps to the peak, then cosine decay to
``min_ratio``× the peak at the last step.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["lr_at", "warmup_steps", "ceil_of_share"]


def ceil_of_share(share: float, n: int, per: int = 1) -> int:
    """⌈share·n/per⌉, with ``share`` read as the decimal it prints as: 0.07 of 100 steps is 7, where the
    float product 7.000000000000001 would round up to 8 (1.1 epochs of 100 batches: 110, not 111)."""
    return math.ceil(Fraction(repr(share)) * n / per)


def warmup_steps(total_steps: int, warmup_frac: float) -> int:
    """W = ⌈f·T⌉ (at least 1 when f > 0), leaving the last step to the decay: a run of T ≥ 2 steps always
    ends at the floor (f = 0.95 of 10 steps would otherwise warm up to the peak at its last step)."""
    w = max(1, ceil_of_share(warmup_frac, total_steps)) if warmup_frac > 0 else 0
    return min(w, total_steps - 1) if total_steps > 1 else w


def lr_at(step: int, total_steps: int, peak: float, warmup_frac: float = 0.05, min_ratio: float = 0.1) -> float:
    """Learning rate used for optimizer step ``step`` (0-based) of ``total_steps``.

    Warm-up: peak·(step+1)/W for step < W, so the W-th step runs at the peak.
    Decay: peak·(m + (1-m)·½(1 + cos(π·p))), p = (step - W)/(T - 1 - W) ∈ [0, 1], ending at m·peak.
    """
    assert 0 <= step < total_steps, f"step {step} outside [0, {total_steps})"
    w = warmup_steps(total_steps, warmup_frac)
    if step < w:
        return peak * (step + 1) / w
    span = total_steps - 1 - w
    p = 1.0 if span <= 0 else (step - w) / span
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))
