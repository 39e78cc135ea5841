"""Lint anyone's saved PEFT LoRA adapter from its files alone (no base model needed).

Reads ``adapter_config.json`` and the tensor shapes in ``adapter_model.safetensors``, resolves each
module's rank and alpha with PEFT's own ``get_pattern_key``, and compares the resulting scale with
LoRA-α's recommendation. Answers "what alpha should I use" and "why does my adapter barely learn".
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config_files import read_mapping
from ..errors import ConfigError
from ..rules import DEFAULT_C, Init, RuleSpec, ScaleRule, effective_scale, scale_from_peft

__all__ = ["LintLayer", "LintReport", "lint_adapter", "name_rule"]

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")
MATCH_TOL = 0.02  # a scale within 2% of a known rule's is that rule (covers rounded lora_alpha values)


@dataclass(frozen=True)
class LintLayer:
    name: str
    d_in: int
    d_out: int
    rank: int
    lora_alpha: float
    scale: float
    rule: str  # the rule this scale corresponds to
    lora_alpha_scale: float  # LoRA-α Variant I (C = 256) scale for this rank
    analytic_scale: float  # LoRA-α Variant II (kaiming) scale for this layer
    ratio_vs_lora_alpha: float  # recommended / actual: > 1 means under-scaled


@dataclass
class LintReport:
    adapter_dir: str
    use_rslora: bool
    layers: list[LintLayer]
    unmatched_pattern_keys: dict[str, list[str]] = field(default_factory=dict)
    verdict: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(x) for x in self.layers]
        return d


def name_rule(scale: float, r: int, d_in: int, use_rslora: bool, lora_alpha: float) -> str:
    """The conventional or principled rule whose scale equals ``scale`` (within MATCH_TOL), or 'custom'."""
    candidates = [
        ("alpha = r", 1.0),
        ("alpha = 2r", 2.0),
        ("LoRA-α (C=256)", effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA), r, d_in)),
        ("LoRA-α analytic", effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), r, d_in, Init.KAIMING)),
        ("μA α = 1/√r", r**-0.5),
        ("μA α = 1/r", 1.0 / r),
    ]
    for name, s in candidates:
        if math.isclose(scale, s, rel_tol=MATCH_TOL):
            return name
    if use_rslora:
        return f"rsLoRA (lora_alpha = {lora_alpha:g})"
    return f"fixed alpha = {lora_alpha:g}"


def lint_adapter(adapter_dir: str | Path, c: float = DEFAULT_C) -> LintReport:
    from peft.utils.other import get_pattern_key
    from safetensors import safe_open

    root = Path(adapter_dir)
    cfg_path = root / "adapter_config.json"
    weights = root / "adapter_model.safetensors"
    cfg = read_mapping(cfg_path, "adapter_dir", "a folder written by PEFT's save_pretrained")
    if not weights.exists():
        raise ConfigError("adapter_dir", f"{root} has no adapter_model.safetensors; re-save with safe_serialization=True")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ConfigError("adapter_dir", f"{cfg_path} is not a LoRA adapter config; only LoRA adapters can be checked")

    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            m = _KEY.match(key)
            if m:
                shapes.setdefault(m["module"], {})[m["which"]] = tuple(f.get_slice(key).get_shape())
    if not shapes:
        raise ConfigError("adapter_dir", f"{weights.name} holds no lora_A/lora_B weights")

    alpha0 = float(cfg.get("lora_alpha", 8))  # ranks come from the tensors themselves, as PEFT loads them
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    rslora = bool(cfg.get("use_rslora", False))
    layers, used = [], {"rank_pattern": set(), "alpha_pattern": set()}
    for module in sorted(shapes):
        a_shape, b_shape = shapes[module].get("A"), shapes[module].get("B")
        if a_shape is None or b_shape is None or len(a_shape) != 2:
            continue  # embeddings/conv adapters are outside this report
        r, d_in = a_shape
        d_out = b_shape[0]
        key_r = get_pattern_key(list(rank_pattern), module)
        key_a = get_pattern_key(list(alpha_pattern), module)
        if key_r in rank_pattern:
            used["rank_pattern"].add(key_r)
        if key_a in alpha_pattern:
            used["alpha_pattern"].add(key_a)
        alpha = float(alpha_pattern.get(key_a, alpha0))
        if not alpha > 0:
            raise ConfigError("adapter_dir", f"{module} has lora_alpha = {alpha:g}: its update is switched off (scale 0)")
        scale = scale_from_peft(alpha, r, rslora)
        rec = effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, c=c), r, d_in)
        analytic = effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), r, d_in, Init.KAIMING)
        layers.append(
            LintLayer(module, d_in, d_out, r, alpha, scale, name_rule(scale, r, d_in, rslora, alpha), rec, analytic, rec / scale)
        )
    unmatched = {
        which: sorted(set(pattern) - used[which])
        for which, pattern in (("rank_pattern", rank_pattern), ("alpha_pattern", alpha_pattern))
        if set(pattern) - used[which]
    }
    if not layers:
        raise ConfigError("adapter_dir", f"{weights.name} holds no linear (2-D) LoRA factors; embedding/conv adapters are not checked")
    return LintReport(str(root), rslora, layers, unmatched, _verdict(layers, unmatched, c, rslora))


def _verdict(layers: list[LintLayer], unmatched: dict, c: float, rslora: bool) -> str:
    ratios = sorted(ly.ratio_vs_lora_alpha for ly in layers)
    mid = ratios[len(ratios) // 2]
    # LoRA-α's s = C·√r/r is lora_alpha = C·√r under s = lora_alpha/r, and lora_alpha = C under rsLoRA's /√r
    target = f"lora_alpha = {c:g}" if rslora else f"lora_alpha = {c:g}·√r"
    if mid > 1.5:
        msg = (
            f"under-scaled {mid:.0f}× vs LoRA-α (median over {len(layers)} layers): at the full-finetuning learning"
            f" rate this adapter barely learns. Raise lora_alpha by {mid:.0f}× (LoRA-α: {target}),"
            " or expect to need a much larger learning rate"
        )
    elif mid < 1 / 1.5:
        msg = f"over-scaled {1 / mid:.1f}× vs LoRA-α (median): lower lora_alpha or the learning rate if training is unstable"
    else:
        msg = "scale is within 1.5× of LoRA-α's recommendation"
    if unmatched:
        keys = "; ".join(f"{k}: {', '.join(v)}" for k, v in unmatched.items())
        msg += f". Pattern keys that match no module (PEFT ignores them silently): {keys}"
    return msg
