"""Pure helpers of the loop: the papers' EMA of the training loss, and divergence detection."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Ema", "DivergenceGuard"]


@dataclass
class Ema:
    """μA's EMA(β)-smoothed training loss: ema₁ = loss₁, emaₜ = (1-β)·emaₜ₋₁ + β·lossₜ."""

    beta: float = 0.1
    value: float = math.nan

    def update(self, loss: float) -> float:
        self.value = loss if math.isnan(self.value) else (1.0 - self.beta) * self.value + self.beta * loss
        return self.value


@dataclass
class DivergenceGuard:
    """A run diverges on a non-finite loss, or when the loss exceeds ``factor`` × its first value
    for ``patience`` consecutive steps."""

    factor: float = 3.0
    patience: int = 5
    first: float = math.nan
    streak: int = 0
    reason: str | None = field(default=None)

    def check(self, step: int, loss: float) -> bool:
        if not math.isfinite(loss):
            self.reason = f"loss became {loss} at step {step}"
            return True
        if math.isnan(self.first):
            self.first = loss
        self.streak = self.streak + 1 if loss > self.factor * self.first else 0
        if self.streak >= self.patience:
            self.reason = (
                f"loss {loss:.4g} stayed above {self.factor:g}× its first value {self.first:.4g} for {self.patience} steps"
                f" (step {step})"
            )
            return True
        return False
