"""How tune picks among its finalists: the one-standard-error rule toward the gentler setting (pure math).

On short budgets two learning rates a factor of 4 apart often end within noise of each other (the MiniLM
headline's η_FFT probe: 1.599 at 2^−10 against 1.615 at 2^−12, with a noise of ±0.03), and the lower loss
picks the more aggressive one, on the edge of where training collapses. Breiman's one-standard-error rule
(Breiman et al. 1984, *Classification and Regression Trees*, §3.4.3) takes instead the most conservative
candidate whose score is within one standard error of the best: here the smallest update size (η, or
α·η for an α knob).

The standard error comes from the run itself. The logged EMA(β) curve e_t = (1−β)·e_{t−1} + β·ℓ_t gives back
the step losses ℓ_t = (e_t − (1−β)·e_{t−1})/β; over the last third of training (cosine schedule near its
floor, little trend left) their spread σ_ℓ gives the EMA's stationary standard deviation
σ_ℓ·√(β/(2−β)). Over k seeds the mean's error is that divided by √k. On the MiniLM headline this is 0.02–0.03,
the size of the seed-to-seed spread measured there (±0.02–0.05).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

__all__ = ["ema_noise", "one_se_choice"]


def ema_noise(curve: Sequence[Sequence[float]], beta: float, tail: float = 1 / 3) -> float | None:
    """Standard deviation of an EMA(β) loss at the end of training, from its (step, EMA) curve; None when
    the curve's last ``tail`` has fewer than 5 consecutive logged steps to recover step losses from."""
    pts = [(int(s), float(v)) for s, v in curve]
    start = pts[-1][0] * (1 - tail) if pts else 0
    losses = [(e - (1 - beta) * e_prev) / beta for (s_prev, e_prev), (s, e) in zip(pts, pts[1:])
              if s == s_prev + 1 and s > start and math.isfinite(e) and math.isfinite(e_prev)]
    if len(losses) < 5:
        return None
    return statistics.stdev(losses) * math.sqrt(beta / (2 - beta))


def one_se_choice(indices: Sequence[int], score: Callable[[int], float], error: Callable[[int], float | None],
                  gentleness: Callable[[int], float]) -> int:
    """The index with the smallest ``gentleness`` (update size) whose ``score`` is within one standard error
    (``error`` of the best-scoring index; 0 when unknown) of the best. Ties go to the earlier index."""
    best = min(indices, key=lambda i: (score(i), i))
    bound = score(best) + (error(best) or 0.0)
    return min((i for i in indices if score(i) <= bound), key=lambda i: (gentleness(i), score(i), i))
