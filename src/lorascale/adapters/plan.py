"""Turn a scaling rule into a ``peft.LoraConfig``: ``lora_alpha`` plus, per layer, ``alpha_pattern``.

PEFT applies s = lora_alpha / r (or lora_alpha / √r with ``use_rslora``). LoRA-α Variant II gives
each layer its own s, which we express with ``alpha_pattern``. PEFT silently ignores pattern keys
that match no module and resolves overlapping keys by dict order, so the plan is checked against
PEFT's own resolver (``peft.utils.other.get_pattern_key``) before it is returned.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from ..errors import ConfigError
from ..rules import ScaleRule, effective_scale, peft_lora_alpha, scale_from_peft
from .spec import AdapterSpec
from .targets import TargetLayer, find_target_layers, layer_type

__all__ = ["AdapterSpec", "LayerPlan", "LoraPlan", "PlanMismatch", "plan_lora", "plan_for_layers"]

REL_TOL = 1e-9  # plans are exact arithmetic on floats; anything above rounding is a bug


@dataclass(frozen=True)
class LayerPlan:
    name: str
    d_in: int
    d_out: int
    rank: int
    scale: float  # the s PEFT will apply to this layer


@dataclass
class LoraPlan:
    config: object  # peft.LoraConfig
    layers: list[LayerPlan]

    def peft_kwargs(self) -> dict:
        """The LoraConfig fields that matter, as plain JSON-able values."""
        c = self.config
        return {
            "r": c.r,
            "lora_alpha": c.lora_alpha,
            "alpha_pattern": dict(c.alpha_pattern),
            "use_rslora": c.use_rslora,
            "target_modules": sorted(c.target_modules) if not isinstance(c.target_modules, str) else c.target_modules,
            "lora_dropout": c.lora_dropout,
            "bias": c.bias,
        }


def plan_lora(model, spec: AdapterSpec, default_targets: tuple[str, ...] = (), task_type: str | None = None) -> LoraPlan:
    """Plan the LoRA adapters of ``model`` under ``spec``, without touching the model."""
    targets = spec.targets or default_targets
    layers = find_target_layers(model, targets)
    return plan_for_layers(layers, spec, targets, task_type)


def plan_for_layers(layers: list[TargetLayer], spec: AdapterSpec, targets, task_type: str | None = None) -> LoraPlan:
    from peft import LoraConfig

    r = spec.rank
    too_big = [ly for ly in layers if r > min(ly.d_in, ly.d_out)]
    if too_big:
        worst = min(min(ly.d_in, ly.d_out) for ly in too_big)
        raise ConfigError("rank", f"r = {r} exceeds min(d_in, d_out) = {worst} of {too_big[0].name}",
                          f"use rank {worst} or less")
    scales = {ly.name: effective_scale(spec.scaling, r, ly.d_in, spec.init) for ly in layers}

    use_rslora = spec.scaling.rule is ScaleRule.RSLORA
    if use_rslora:
        lora_alpha, pattern = spec.scaling.lora_alpha, {}
    else:
        alphas = {name: peft_lora_alpha(s, r) for name, s in scales.items()}
        lora_alpha, pattern = _alpha_pattern(alphas)
    config = LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        alpha_pattern=pattern,
        use_rslora=use_rslora,
        target_modules=list(targets),
        lora_dropout=spec.lora_dropout,
        bias="none",
        task_type=task_type,
    )
    plan = LoraPlan(config, [LayerPlan(ly.name, ly.d_in, ly.d_out, r, scales[ly.name]) for ly in layers])
    _verify_against_peft(plan)
    return plan


def _alpha_pattern(alphas: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Smallest faithful (lora_alpha, alpha_pattern): one key per module suffix when the suffix group
    shares a value, more specific suffixes first; exact names where a suffix group disagrees."""
    values = set(alphas.values())
    if len(values) == 1:
        return values.pop(), {}
    groups: dict[str, set[float]] = defaultdict(set)
    for name, a in alphas.items():
        groups[layer_type(name)].add(a)
    pattern: dict[str, float] = {}
    # Longer (more dotted) suffixes first: PEFT returns the first key that matches.
    for suffix in sorted(groups, key=lambda s: (-s.count("."), s)):
        members = [n for n in alphas if layer_type(n) == suffix]
        if len(groups[suffix]) == 1:
            pattern[re.escape(suffix)] = alphas[members[0]]
        else:
            for n in members:
                pattern["^" + re.escape(n)] = alphas[n]
    lora_alpha = max(values, key=lambda v: sum(1 for a in alphas.values() if a == v))
    return lora_alpha, pattern


def _verify_against_peft(plan: LoraPlan) -> None:
    """Every pattern key matches a module, and PEFT's resolver gives each layer the planned scale."""
    from peft.utils.other import get_pattern_key

    c = plan.config
    keys = list(c.alpha_pattern)
    used = set()
    for ly in plan.layers:
        key = get_pattern_key(keys, ly.name)
        if key in c.alpha_pattern:
            used.add(key)
        alpha = c.alpha_pattern.get(key, c.lora_alpha)
        s = scale_from_peft(alpha, c.r, c.use_rslora)
        if not math.isclose(s, ly.scale, rel_tol=REL_TOL):  # a planning bug: never train with a wrong scale
            raise PlanMismatch(f"alpha_pattern resolves {ly.name} to s={s}, planned {ly.scale}")
    unused = [k for k in keys if k not in used]
    if unused:
        raise PlanMismatch(f"alpha_pattern keys match no module: {unused}")


class PlanMismatch(RuntimeError):
    """lorascale's plan and PEFT's resolution of it disagree: a bug in lorascale, raised even under ``python -O``."""
