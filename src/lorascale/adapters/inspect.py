"""Inspect any PEFT LoRA model: per module its shapes, rank, effective scale and init."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..rules import Init, sigma_a
from .init import lora_modules
from .targets import strip_peft_prefix

__all__ = ["LayerReport", "inspect_model", "classify_init"]

# A sample std within 10% of the expected one: with r·d_in ≥ 64 entries the sampling error of a
# std estimate is ≈ 1/√(2·64) ≈ 9% at worst, typically far less.
INIT_STD_TOL = 0.10


@dataclass(frozen=True)
class LayerReport:
    name: str
    d_in: int
    d_out: int
    rank: int
    scale: float
    init: str  # kaiming | A | B | trained | zero

    def to_dict(self) -> dict:
        return asdict(self)


def classify_init(a_std: float, b_std: float, d_in: int, r: int) -> str:
    """Name the init from the factors' standard deviations (pure; see module docs for the schemes)."""
    if b_std == 0.0 and a_std == 0.0:
        return "zero"
    if b_std == 0.0:
        for init in (Init.KAIMING, Init.A):
            if math.isclose(a_std, sigma_a(init, d_in), rel_tol=INIT_STD_TOL):
                return init.value
        return "A-other"
    if a_std == 0.0:
        return "B" if math.isclose(b_std, 1 / math.sqrt(r), rel_tol=INIT_STD_TOL) else "B-other"
    return "trained"


def inspect_model(model, adapter: str = "default") -> list[LayerReport]:
    import torch

    reports = []
    with torch.no_grad():
        for name, m in lora_modules(model, adapter):
            a = m.lora_A[adapter].weight
            b = m.lora_B[adapter].weight
            r, d_in = a.shape
            d_out = b.shape[0]
            a_std = float(a.float().pow(2).mean().sqrt())  # RMS: the std of a centred init
            b_std = float(b.float().pow(2).mean().sqrt())
            reports.append(
                LayerReport(strip_peft_prefix(name), d_in, d_out, r, float(m.scaling[adapter]), classify_init(a_std, b_std, d_in, r))
            )
    return reports
