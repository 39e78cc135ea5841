"""One-call API for people with their own trainer (HF Trainer, TRL, a custom loop).

>>> peft_model = lorascale.apply(model, rank=16, rule="lora-alpha")
>>> lr = lorascale.recommend_lr("lora-alpha", lr_fft=2e-5)
"""

from __future__ import annotations

from .adapters import AdapterSpec, apply_init, plan_lora
from .models import default_targets_for as default_targets  # μA Table 3 placement; public name
from .rules import DEFAULT_C, DEFAULT_LR_FFT, Init, RuleSpec, ScaleRule, recommended_lr

__all__ = ["apply", "recommend_lr", "default_targets"]


def apply(
    model,
    rank: int = 16,
    rule: str | ScaleRule = ScaleRule.LORA_ALPHA,
    *,
    alpha: float = 1.0,
    c: float = DEFAULT_C,
    lora_alpha: float = 16.0,
    gamma: float = 0.0,
    init: str | Init = Init.KAIMING,
    targets: tuple[str, ...] | list[str] | None = None,
    task_type: str | None = None,
    seed: int = 0,
):
    """Wrap ``model`` with LoRA adapters whose scale follows ``rule``; returns the PEFT model."""
    from peft import get_peft_model

    spec = AdapterSpec(
        rank=rank,
        scaling=RuleSpec(rule=rule, alpha=alpha, c=c, lora_alpha=lora_alpha, gamma=gamma),
        init=init,
        targets=tuple(targets) if targets else None,
    )
    plan = plan_lora(model, spec, default_targets(model), task_type=task_type)
    peft_model = get_peft_model(model, plan.config)
    apply_init(peft_model, spec.init, seed=seed)
    return peft_model


def recommend_lr(rule: str | ScaleRule = ScaleRule.LORA_ALPHA, lr_fft: float = DEFAULT_LR_FFT, *,
                 init: str | Init = Init.KAIMING, gamma: float = 0.0) -> float:
    """The learning rate the rule prescribes from the full-finetuning one (LoRA-α: η_FFT itself;
    μA Init[B] with α = 1: η_FFT too). Other μA configurations raise: use ``lorascale transfer``."""
    return recommended_lr(RuleSpec(rule=rule, gamma=gamma), lr_fft, init)
