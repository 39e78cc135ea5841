"""What a user asks of an adapter: rank, scaling rule, init, targets. The one definition of these settings."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from ..rules import Init, RuleError, RuleSpec, ScaleRule
from ..schema import PositiveInt, Settings, setting

__all__ = ["AdapterSpec"]


class AdapterSpec(Settings):
    """LoRA adapters for one model: ΔW = s·B·A on each target layer, s from ``scaling``."""

    rank: PositiveInt = setting(16, "LoRA rank r", fix="typical ranks are 8 to 256")
    scaling: RuleSpec = setting(RuleSpec(), "the scaling rule and its knobs")
    init: Init = setting(Init.KAIMING, "adapter init: kaiming (PEFT default), A or B (μA Def. 3.2)")
    targets: tuple[str, ...] | None = setting(None, "target module names (default: μA Table 3 placement)")
    lora_dropout: float = setting(0.0, "dropout on the adapter input (PEFT lora_dropout)", ge=0.0, lt=1.0,
                                  fix="μA uses 0")

    @field_validator("targets", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        if isinstance(v, str):
            return (v,)
        if isinstance(v, (list, tuple)) and not all(isinstance(t, str) and t for t in v):
            raise RuleError("targets", f"must be module names, got {v!r}", "e.g. targets: [q_proj, v_proj]")
        return v

    @model_validator(mode="after")
    def _init_fits_rule(self) -> "AdapterSpec":
        if self.scaling.rule is ScaleRule.LORA_ALPHA_ANALYTIC and self.init is Init.B:
            raise RuleError("init", "LoRA-α analytic needs σ_A > 0, and Init[B] starts with A = 0",
                            "use init kaiming or A, or rule lora-alpha")
        return self
