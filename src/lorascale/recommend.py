"""``recommend``: the LoraConfig and learning rate a rule gives for a model, layer by layer."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

from pydantic import StrictStr

from .adapters import AdapterSpec, LoraPlan, layer_type, plan_lora
from .methods import METHOD_LR_NOTES, Method
from .models import load_model
from .rules import DEFAULT_C, DEFAULT_LR_FFT, RuleError, ScaleRule, peft_lora_alpha, recommended_lr
from .schema import PositiveFloat, Settings, same_setting, setting
from .train.config import TrainConfig

__all__ = ["Recommendation", "RecommendRequest", "recommend", "scale_note"]


class RecommendRequest(Settings):
    """What ``recommend`` is asked: a model, the adapter, and the full-finetuning learning rate."""

    model: StrictStr = same_setting(TrainConfig, "model")
    adapter: AdapterSpec = setting(AdapterSpec(), "the adapter to plan")
    lr_fft: PositiveFloat = same_setting(TrainConfig, "lr_fft")


@dataclass
class Recommendation:
    model: str
    spec: AdapterSpec
    plan: LoraPlan
    lr: float | None
    lr_note: str
    scale_note: str = ""

    def groups(self) -> list[dict]:
        """Layers grouped by type (module suffix) and shape, for the readable table."""
        out: dict[tuple, list] = defaultdict(list)
        for ly in self.plan.layers:
            out[(layer_type(ly.name), ly.d_in, ly.d_out, ly.scale)].append(ly.name)
        return [
            {"type": t, "d_in": di, "d_out": do, "scale": s, "count": len(names),
             "lora_alpha": peft_lora_alpha(s, self.spec.rank, self.plan.config.use_rslora)}
            for (t, di, do, s), names in out.items()
        ]

    @property
    def lr_b(self) -> float | None:
        """LoRA+'s learning rate of the B factors (ratio × ``lr``), None without LoRA+."""
        ratio = self.spec.loraplus_ratio()
        return None if ratio is None or self.lr is None else ratio * self.lr

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "rank": self.spec.rank,
            "rule": self.spec.scaling.rule.value,
            "alpha": self.spec.scaling.alpha,
            "c": self.spec.scaling.c,
            "init": self.spec.init.value,
            "method": self.spec.method.value,
            "loraplus_lr_ratio": self.spec.loraplus_ratio(),
            "lr": self.lr,
            "lr_b": self.lr_b,
            "lr_note": self.lr_note,
            "scale_note": self.scale_note,
            "peft_config": self.plan.peft_kwargs(),
            "groups": self.groups(),
            "layers": [asdict(ly) for ly in self.plan.layers],
        }


def recommend(model_name: str, spec: AdapterSpec, lr_fft: float = DEFAULT_LR_FFT, quiet: bool = False) -> Recommendation:
    loaded = load_model(model_name, quiet=quiet, weights=False)  # planning reads shapes only: no weights in memory
    plan = plan_lora(loaded.model, spec, loaded.default_targets)
    try:
        lr = recommended_lr(spec.scaling, lr_fft, spec.init, spec.method)
    except RuleError:
        lr = None
    return Recommendation(loaded.name, spec, plan, lr, _lr_note(spec, lr_fft, lr), scale_note(spec, [ly.d_in for ly in plan.layers]))


D_FIT = 2048  # the width LoRA-α fitted Variant I's C (DEFAULT_C) at: Llama 3-1B on Tulu 3 (Fig. 1; App. D.2: 8B fits 512)


def scale_note(spec: AdapterSpec, d_ins: list[int]) -> str:
    """Which LoRA-α default the plan used and why, with the other variant's scale at this model's widths.

    Variant I's C = 256 was fitted on Llama 3-1B (d = 2048; the 8B model, d = 4096, fits 512);
    Variant II's α_base = √(3·d_in·r) is C = √(3·d_in)
    per layer, so at a small width the two differ by 256/√(3·d_in) (≈ 6× at d_in = 576).
    """
    rule = spec.scaling.rule
    if rule not in (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC) or not d_ins:
        return ""
    d = sorted(d_ins)[len(d_ins) // 2]  # the median layer's input width
    c_width = math.sqrt(3.0 * d)
    if rule is ScaleRule.LORA_ALPHA:
        origin = (f"the paper's constant, fitted at width {D_FIT}; its width-{2 * D_FIT} model fits {2 * DEFAULT_C:g}"
                  if spec.scaling.c == DEFAULT_C else f"set by c; the paper's is {DEFAULT_C:g}, fitted at width {D_FIT}")
        return (f"Variant I: α_base = C·√r with C = {spec.scaling.c:g} ({origin}). "
                f"Variant II (rule lora-alpha-analytic) scales with the layer width instead: C = √(3·d_in) = "
                f"{c_width:.3g} at this model's median d_in = {d}, i.e. a scale {spec.scaling.c / c_width:.3g}× smaller. "
                f"The measured optimum C differs by model and task, not plainly by width (docs/rules.md): below 256 on "
                f"MiniLM classification (d_in 384), at 256 on SmolLM2 SFT (576); when in doubt, tune the knob α "
                f"(`lorascale tune`)")
    return (f"Variant II: α_base = √(3·d_in·r) per layer (PEFT's kaiming-uniform A has σ_A = 1/√(3·d_in)); at the median"
            f" d_in = {d} that is Variant I with C = {c_width:.3g} instead of {DEFAULT_C:g}")


def _lr_note(spec: AdapterSpec, lr_fft: float, lr: float | None) -> str:
    """The rule's reason (unless the method brings its own rate), the method's, and LoRA+'s B rate."""
    notes = [] if spec.method is Method.PISSA else [_rule_lr_note(spec, lr_fft, lr)]
    if spec.method in METHOD_LR_NOTES:
        notes.append(METHOD_LR_NOTES[spec.method])
    if spec.loraplus_ratio() is not None:
        notes.append(f"LoRA+ (Hayou et al. 2024, λ = 16 recommended): B factors at {spec.loraplus_ratio():g} × this rate")
    return "; ".join(notes)


def _rule_lr_note(spec: AdapterSpec, lr_fft: float, lr: float | None) -> str:
    if lr is None:
        return "μA: tune once at one rank, then `lorascale transfer` predicts other ranks and widths"
    if spec.scaling.rule in (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC):
        return f"LoRA-α trains at the full-finetuning learning rate η_FFT = {lr_fft:g} (eq. 5)"
    if lr == lr_fft:
        return "μA Init[B] with α = 1: the optimal learning rate is rank-invariant and equal to full finetuning's (Cor. 4.6)"
    return f"conventional heuristic: 10 × η_FFT = 10 × {lr_fft:g}"
