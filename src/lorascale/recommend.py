"""``recommend``: the LoraConfig and learning rate a rule gives for a model, layer by layer."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from pydantic import StrictStr

from .adapters import AdapterSpec, LoraPlan, layer_type, plan_lora
from .models import load_model
from .rules import DEFAULT_LR_FFT, RuleError, ScaleRule, peft_lora_alpha, recommended_lr
from .schema import PositiveFloat, Settings, setting

__all__ = ["Recommendation", "RecommendRequest", "recommend"]


class RecommendRequest(Settings):
    """What ``recommend`` is asked: a model, the adapter, and the full-finetuning learning rate."""

    model: StrictStr = setting("smollm2-135m", "smollm2-135m, minilm-l6, tiny-llama[@W], tiny-bert[@W] or a local HF folder")
    adapter: AdapterSpec = setting(AdapterSpec(), "the adapter to plan")
    lr_fft: PositiveFloat = setting(DEFAULT_LR_FFT, "full-finetuning learning rate the rules start from",
                                    fix="typical full-finetuning learning rates are 1e-5 to 1e-4")


@dataclass
class Recommendation:
    model: str
    spec: AdapterSpec
    plan: LoraPlan
    lr: float | None
    lr_note: str

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

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "rank": self.spec.rank,
            "rule": self.spec.scaling.rule.value,
            "alpha": self.spec.scaling.alpha,
            "c": self.spec.scaling.c,
            "init": self.spec.init.value,
            "lr": self.lr,
            "lr_note": self.lr_note,
            "peft_config": self.plan.peft_kwargs(),
            "groups": self.groups(),
            "layers": [asdict(ly) for ly in self.plan.layers],
        }


def recommend(model_name: str, spec: AdapterSpec, lr_fft: float = DEFAULT_LR_FFT, quiet: bool = False) -> Recommendation:
    loaded = load_model(model_name, quiet=quiet, weights=False)  # planning reads shapes only: no weights in memory
    plan = plan_lora(loaded.model, spec, loaded.default_targets)
    try:
        lr = recommended_lr(spec.scaling, lr_fft, spec.init)
    except RuleError:
        lr = None
    return Recommendation(loaded.name, spec, plan, lr, _lr_note(spec, lr_fft, lr))


def _lr_note(spec: AdapterSpec, lr_fft: float, lr: float | None) -> str:
    if lr is None:
        return "μA: tune once at one rank, then `lorascale transfer` predicts other ranks and widths"
    if spec.scaling.rule in (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC):
        return f"LoRA-α trains at the full-finetuning learning rate η_FFT = {lr_fft:g} (eq. 5)"
    if lr == lr_fft:
        return "μA Init[B] with α = 1: the optimal learning rate is rank-invariant and equal to full finetuning's (Cor. 4.6)"
    return f"conventional heuristic: 10 × η_FFT = 10 × {lr_fft:g}"
