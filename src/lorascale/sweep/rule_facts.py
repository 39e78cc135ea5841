"""What a sweep configuration is, asked of the pure rules: its label, its α knob, and μA's prediction.

The multiplier s of ΔW = s·B·A scales with rank as s ∝ r^-γ_eff (μA writes α = r^-γ): γ_eff = 0
for lora_alpha = r or 2r, 1 for a fixed lora_alpha, 0.5 for rsLoRA and LoRA-α. μA's rank exponent
of the optimal learning rate is then −(1−γ)/2 for Init[A] (Cor. 4.4; PEFT's kaiming init behaves
as Init[A] up to a constant) and 0 for Init[B] with constant α (Cor. 4.6). Init[B] with α = 1/r
(Cor. A.22) changes regime at r = √n, so no single slope is predicted.
"""

from __future__ import annotations

import math

from ..methods import Method
from ..rules import Finetune, Init, MuAConfig, RuleError, ScaleRule, effective_scale, mua_lr_exponents, peft_lora_alpha
from ..train.config import TrainConfig

__all__ = ["ALPHA_KNOB", "default_label", "rule_facts"]

ALPHA_KNOB = {
    ScaleRule.LORA_ALPHA: "alpha",
    ScaleRule.LORA_ALPHA_ANALYTIC: "alpha",
    ScaleRule.FIXED_ALPHA: "lora_alpha",
    ScaleRule.RSLORA: "lora_alpha",
}
"""The RuleSpec field an α multiplier scales, per rule; rules without one have a fixed s(r)."""

_PROBE_WIDTH = 1024  # only lora-alpha-analytic depends on d_in, and not in its rank exponent
_PROBE_N = 4096  # μA's rank exponents for Init[A] and Init[B], α = 1 do not depend on the width


def rule_facts(cfg: TrainConfig) -> tuple[str | None, float | None, float | None, float | None]:
    """(init, γ_eff, μA's predicted slope of log η* vs log r, PEFT lora_alpha = s·r) for a config."""
    if cfg.finetune is Finetune.FULL:
        return None, None, None, None
    spec, init, r = cfg.adapter.scaling, cfg.adapter.init, cfg.adapter.rank
    try:
        s1 = effective_scale(spec, r, _PROBE_WIDTH, init)
        s2 = effective_scale(spec, 2 * r, _PROBE_WIDTH, init)
    except RuleError:
        return init.value, None, None, None
    gamma = round(-math.log2(s2 / s1), 9) + 0.0  # + 0.0: no negative zero
    slope = None
    if 0.0 <= gamma <= 1.0 and (init is not Init.B or gamma == 0.0):
        mua = MuAConfig(finetune=Finetune.LORA, init=Init.A if init is Init.KAIMING else init, gamma=gamma)
        slope = mua_lr_exponents(_PROBE_N, min(r, _PROBE_N), mua)[1] + 0.0  # −(1−1)/2 is −0.0
    # s·r: LoRA-α's α, PEFT's lora_alpha under its standard s = lora_alpha/r, whatever the rule (rsLoRA's own
    # lora_alpha is s·√r; α*(r) fitted on that would be off by r^½)
    peft_alpha = None if spec.rule is ScaleRule.LORA_ALPHA_ANALYTIC else peft_lora_alpha(s1, r)
    return init.value, gamma, slope, peft_alpha


def default_label(cfg: TrainConfig) -> str:
    """A readable configuration name: "FFT", "Init[A] α=1/r", "lora-alpha Init[kaiming]",
    "lora-alpha Init[kaiming] + dora", ... (a method other than plain LoRA is appended)."""
    if cfg.finetune is Finetune.FULL:
        return "FFT"
    label = _rule_label(cfg)
    adapter = cfg.adapter
    if adapter.method is Method.LORA:
        return label
    ratio = adapter.loraplus_ratio()
    plus = f" + loraplus ×{ratio:g}" if ratio is not None and adapter.method is not Method.LORAPLUS else ""
    method = f"loraplus ×{ratio:g}" if adapter.method is Method.LORAPLUS else adapter.method.value
    return f"{label} + {method}{plus}"


def _rule_label(cfg: TrainConfig) -> str:
    scaling = cfg.adapter.scaling
    init = f"Init[{cfg.adapter.init}]"
    if scaling.rule is ScaleRule.MUA:
        g = float(scaling.gamma)
        return f"{init} α={'1' if g == 0 else '1/r' if g == 1 else f'r^-{g:g}'}"
    if scaling.rule is ScaleRule.ALPHA_EQ_R:
        return f"{init} α=1 (lora_alpha=r)"
    knob = ALPHA_KNOB.get(scaling.rule)
    suffix = f" {knob}={getattr(scaling, knob):g}" if knob else ""
    return f"{scaling.rule} {init}{suffix}"
