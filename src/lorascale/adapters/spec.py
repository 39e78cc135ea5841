"""What a user asks of an adapter: rank, scaling rule, init, targets (and PEFT options passed through).
The one definition of these settings."""

from __future__ import annotations

from typing import Literal

from pydantic import StrictBool, StrictStr, field_validator, model_validator

from ..rules import Init, RuleError, RuleSpec, ScaleRule
from ..schema import PositiveInt, Settings, setting

__all__ = ["AdapterSpec", "PeftOptions", "BASE_CHANGING_INITS"]


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


# PEFT inits that change the base weights when the adapter is created (W_res = W₀ − s·B·A for PiSSA,
# OLoRA, CorDA, LoRA-GA; quantisation-aware LoftQ): re-initialising the factors or changing s afterwards breaks
# W_res + s·B·A = W₀. Matched as prefixes of ``init_lora_weights`` ("pissa_niter_16").
BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")


class PeftOptions(Settings):
    """PEFT ``LoraConfig`` options lorascale passes through unchanged (PEFT validates their values).

    They live apart from :class:`AdapterSpec` because they are PEFT's vocabulary, not lorascale's: the
    scale plan reads ``rank_pattern`` (each layer's s follows the rule at its own rank) and checks that
    ``init_lora_weights`` fits the rule; the rest only reaches the ``LoraConfig``.
    """

    use_dora: StrictBool = setting(False, "DoRA: weight-decomposed LoRA (PEFT use_dora)")
    init_lora_weights: StrictBool | StrictStr = setting(True, "PEFT's init of the factors: True (kaiming A, B = 0),"
                                                        " 'gaussian', 'pissa', 'olora', ...")
    modules_to_save: tuple[str, ...] | None = setting(None, "modules trained in full and saved with the adapter")
    rank_pattern: dict[str, PositiveInt] = setting({}, "per-module ranks, PEFT's rank_pattern (keys match as in PEFT)")
    bias: Literal["none", "all", "lora_only"] = setting("none", "which biases train (PEFT bias)")

    def changes_base_weights(self) -> bool:
        return isinstance(self.init_lora_weights, str) and self.init_lora_weights.lower().startswith(BASE_CHANGING_INITS)
