"""What a user asks of an adapter: rank, scaling rule, init, targets, the LoRA variant (``method``) and
PEFT options passed through. The one definition of these settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import StrictBool, StrictStr, field_validator, model_validator

from ..errors import ConfigErrors
from ..methods import BASE_CHANGING_METHODS, LORAPLUS_LR_RATIO, Method
from ..rules import Init, RuleError, RuleSpec, ScaleRule
from ..schema import Float, PositiveFloat, PositiveInt, Settings, setting

__all__ = ["AdapterSpec", "PeftOptions", "BASE_CHANGING_INITS"]


class AdapterSpec(Settings):
    """LoRA adapters for one model: ΔW = s·B·A on each target layer, s from ``scaling``."""

    rank: PositiveInt = setting(16, "LoRA rank r", fix="typical ranks are 8 to 256")
    scaling: RuleSpec = setting(RuleSpec(), "the scaling rule and its knobs")
    init: Init = setting(Init.KAIMING, "adapter init: kaiming (PEFT default), A or B (μA Def. 3.2)")
    targets: tuple[str, ...] | str | None = setting(
        None, "target module names or suffixes, 'all-linear', or one regular expression matched against full module"
        " names, as in PEFT (default: μA Table 3 placement, encoders' attention and FFN projections and"
        " decoders' MLPs; the tiny-llama test model: every linear layer)")
    lora_dropout: Float = setting(0.0, "dropout on the adapter input (PEFT lora_dropout)", ge=0.0, lt=1.0,
                                  fix="μA uses 0")
    method: Method = setting(Method.LORA, "LoRA variant, built by PEFT: lora, loraplus, dora, pissa or olora"
                             " (docs/baselines.md)")
    pissa_niter: PositiveInt | None = setting(None, "PiSSA by randomized SVD with this many subspace iterations"
                                              " (PEFT's 'pissa_niter_N'); unset: exact SVD",
                                              fix="PEFT suggests 4 to 16 for large models")
    loraplus_lr_ratio: PositiveFloat | None = setting(
        None, f"LoRA+ η_B/η_A: B's learning rate is this × the learning rate (method loraplus: {LORAPLUS_LR_RATIO:g} unless"
        " set; with dora, pissa or olora it adds LoRA+'s optimizer)", fix=f"Hayou et al. 2024 recommend {LORAPLUS_LR_RATIO:g}")

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_of_loraplus(cls, data):
        """LoRA+ on plain adapters has one spelling, so equal runs get equal configs (and sweep keys):
        method loraplus, with loraplus_lr_ratio only when it is not the default 16. A ratio given with
        method lora (the default) means loraplus."""
        if not isinstance(data, dict):
            return data
        given = method, ratio = data.get("method", Method.LORA), data.get("loraplus_lr_ratio")
        if method == Method.LORA and ratio is not None:
            method = Method.LORAPLUS
        if method == Method.LORAPLUS and _number(ratio) == LORAPLUS_LR_RATIO:
            ratio = None
        return data if (method, ratio) == given else {**data, "method": method, "loraplus_lr_ratio": ratio}

    @field_validator("targets", mode="before")
    @classmethod
    def _names_or_regex(cls, v):
        """Names (a list), or one string kept as it is: PEFT reads a string as a regular expression that must
        match the whole module name, so turning it into a one-name list would change what it selects."""
        if v == "":
            raise RuleError("targets", "is an empty string: it matches no module", "name modules in `targets`, e.g. q_proj and v_proj")
        if isinstance(v, str):
            try:
                re.compile(v)
            except re.error as e:
                raise RuleError("targets", f"{v!r} is not a regular expression ({e.msg})",
                                r"e.g. targets: '.*\.(q_proj|v_proj)', or a list of names: [q_proj, v_proj]") from None
            return v
        if isinstance(v, (list, tuple)) and not v:
            raise RuleError("targets", "is an empty list: no layer would get an adapter",
                            "name modules in `targets` (e.g. q_proj and v_proj), or leave it unset for μA's placement")
        if v is not None and not (isinstance(v, (list, tuple)) and all(isinstance(t, str) and t for t in v)):
            raise RuleError("targets", f"must be module names, got {v!r}", "name modules in `targets`, e.g. q_proj and v_proj")
        return v

    @model_validator(mode="after")
    def _init_fits_rule(self) -> "AdapterSpec":
        errors = []
        if self.scaling.rule is ScaleRule.LORA_ALPHA_ANALYTIC and self.init is Init.B:
            errors.append(RuleError("init", "LoRA-α analytic needs σ_A > 0, and Init[B] starts with A = 0",
                                    "use init kaiming or A, or rule lora-alpha"))
        if self.pissa_niter is not None and self.method is not Method.PISSA:
            errors.append(RuleError("pissa_niter", f"is PiSSA's SVD setting, but method is {self.method.value}",
                                    "drop pissa_niter, or use method pissa"))
        if self.method in BASE_CHANGING_METHODS and self.init is not Init.KAIMING:
            errors.append(RuleError(
                "init", f"init {self.init.value} re-draws the factors, but method {self.method.value} builds them from W₀"
                " and folds them out of the base weights (W_res = W₀ − s·B·A)", "use init kaiming with this method, or method lora"))
        if self.method in BASE_CHANGING_METHODS and self.scaling.rule is ScaleRule.LORA_ALPHA_ANALYTIC:
            errors.append(RuleError("method", f"LoRA-α analytic takes σ_A from PEFT's kaiming init of A; {self.method.value}"
                                    " builds A from W₀", "use rule lora-alpha (Variant I) with this method"))
        ConfigErrors.raise_if_any(errors)
        return self

    def loraplus_ratio(self) -> float | None:
        """LoRA+'s η_B/η_A for this adapter (method loraplus: 16 unless set), or None for plain AdamW."""
        if self.method is Method.LORAPLUS and self.loraplus_lr_ratio is None:
            return LORAPLUS_LR_RATIO
        return self.loraplus_lr_ratio


def _number(v) -> float | None:
    """``v`` as a float for comparison (YAML may give "16"), None when it is no number; validation judges it."""
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


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
