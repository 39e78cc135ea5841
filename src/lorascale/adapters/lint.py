"""Lint anyone's saved PEFT LoRA adapter from its files alone (no base model needed).

Reads ``adapter_config.json`` and the tensor shapes in ``adapter_model.safetensors``, resolves each
module's rank and alpha with PEFT's own ``get_pattern_key``, and judges each layer's scale at its own
rank against a reference rule: the rule in ``lorascale.json`` when lorascale wrote one (LoRA-α either
variant, μA), else the principled rule the layer matches (LoRA-α analytic), else LoRA-α Variant I.
Layers are reported in groups (layer type × rank × alpha), each group off its reference with the exact
``lora_alpha``/``alpha_pattern`` that fixes it. Answers "what alpha should I use" and "why does my
adapter barely learn".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..rules import DEFAULT_C, Init, RuleSpec, ScaleRule, effective_scale, peft_lora_alpha, scale_from_peft
from .io import read_metadata
from .plan import _alpha_pattern
from .presets import config_notes, converted_note, judged_by_scale, preset_name
from .saved import factor_shapes, read_lora_config
from .targets import layer_type

__all__ = ["LintLayer", "LintGroup", "LintReport", "lint_adapter", "name_rule"]

MATCH_TOL = 0.02  # a scale within 2% of a known rule's is that rule (covers rounded lora_alpha values)
NEAR = 1.5  # within 1.5× of the reference: close enough not to change training much; beyond: say so
PRINCIPLED = (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC, ScaleRule.MUA)
ANALYTIC = "LoRA-α analytic"


@dataclass(frozen=True)
class LintLayer:
    name: str
    layer_type: str
    d_in: int
    d_out: int
    rank: int
    lora_alpha: float
    scale: float
    rule: str  # the rule this scale corresponds to
    reference_scale: float  # the reference rule's s for this layer at its own rank
    ratio: float  # reference / actual: > 1 means under-scaled


@dataclass(frozen=True)
class LintGroup:
    """Layers of one type that share rank and alpha (hence scale and verdict)."""

    layer_type: str
    count: int
    d_in: int
    d_out: int
    rank: int
    lora_alpha: float
    scale: float
    rule: str
    reference_scale: float
    ratio: float
    fix_lora_alpha: float | None  # the lora_alpha that gives the reference scale; None when it already does


@dataclass
class LintReport:
    adapter_dir: str
    use_rslora: bool
    judged: bool  # False where the init makes the scale comparison meaningless (PiSSA, OLoRA, ...)
    reference: str  # what the adapter is judged against
    layers: list[LintLayer]
    groups: list[LintGroup]
    preset: str | None = None
    notes: list[str] = field(default_factory=list)
    unmatched_pattern_keys: dict[str, list[str]] = field(default_factory=dict)
    fix: dict = field(default_factory=dict)  # LoraConfig fields that bring every layer to the reference
    verdict: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def name_rule(scale: float, r: int, d_in: int, use_rslora: bool, lora_alpha: float, c: float = DEFAULT_C) -> str:
    """The conventional or principled rule whose scale equals ``scale`` (within MATCH_TOL), or 'custom'."""
    candidates = [
        ("alpha = r", 1.0),
        ("alpha = 2r", 2.0),
        (f"LoRA-α (C={c:g})", effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, c=c), r, d_in)),
        (ANALYTIC, effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), r, d_in, Init.KAIMING)),
        ("μA α = 1/√r", r**-0.5),
        ("μA α = 1/r", 1.0 / r),
    ]
    if use_rslora:  # "alpha = r" and "alpha = 2r" name plain LoRA's lora_alpha, not an rsLoRA scale of 1 or 2
        candidates = candidates[2:]
    for name, s in candidates:
        if math.isclose(scale, s, rel_tol=MATCH_TOL):
            return name
    if use_rslora:
        return f"rsLoRA (lora_alpha = {lora_alpha:g})"
    return f"fixed alpha = {lora_alpha:g}"


def lint_adapter(adapter_dir: str | Path, c: float | None = None) -> LintReport:
    """The report on the adapter saved in ``adapter_dir``. ``c``: LoRA-α's C to judge and name scales by
    (default 256); a lora-alpha rule declared in ``lorascale.json`` brings its own C, which wins (with a note
    when ``c`` differs)."""
    root = Path(adapter_dir)
    cfg, saved = read_lora_config(root)
    shapes = factor_shapes(root)

    alpha0 = saved.lora_alpha  # ranks come from the tensors themselves, as PEFT loads them
    rank_pattern, alpha_pattern, rslora = saved.rank_pattern, saved.alpha_pattern, saved.use_rslora
    try:
        meta = read_metadata(root)
    except ConfigError as e:  # a hand-edited or foreign file: judge by the tensors alone
        meta = None
        reference, notes = _Reference(None, DEFAULT_C if c is None else c), [f"{e.message}; judged by the scales alone"]
    else:
        reference, notes = _reference(meta, c)
    converted = converted_note(cfg, meta)
    layers, used = [], {"rank_pattern": set(), "alpha_pattern": set()}
    skipped: dict[str, float] = {}  # embedding and convolution adapters: not judged, their lora_alpha kept by the fix
    for module in sorted(shapes):
        a_shape, b_shape = shapes[module].get("A"), shapes[module].get("B")
        if a_shape is None or b_shape is None or len(a_shape) != 2:
            skipped[module] = float(alpha_pattern.get(_resolve(alpha_pattern, module, used["alpha_pattern"]), alpha0))
            _resolve(rank_pattern, module, used["rank_pattern"])  # a key used by this module alone is not dead
            continue
        (r, d_in), d_out = a_shape, b_shape[0]
        alpha = float(alpha_pattern.get(_resolve(alpha_pattern, module, used["alpha_pattern"]), alpha0))
        _resolve(rank_pattern, module, used["rank_pattern"])  # ranks: the tensors; keys: only whether they match
        scale = scale_from_peft(alpha, r, rslora)
        planned = r // 2 if converted else r  # a converted PiSSA/OLoRA adapter is [B | −B₀]·[A ; A₀]: trained at r/2
        # the lora_alpha it trained with: PEFT's conversion doubled it (×√2 under rsLoRA, whose s is α/√r)
        trained_alpha = alpha * (math.sqrt(planned / r) if rslora else planned / r)
        rule = name_rule(scale, planned, d_in, rslora, trained_alpha, reference.c)
        ref = reference(rule, planned, d_in)
        layers.append(LintLayer(module, layer_type(module), d_in, d_out, r, alpha, scale, rule, ref, ref / scale))
    if not layers:
        raise ConfigError("adapter_dir", "adapter_model.safetensors holds no linear (2-D) LoRA factors",
                          "check an adapter of linear layers: embedding and convolution adapters are not checked")
    unmatched = {which: sorted(set(p) - used[which]) for which, p in (("rank_pattern", rank_pattern), ("alpha_pattern", alpha_pattern))
                 if set(p) - used[which]}
    judged = judged_by_scale(cfg) and converted is None
    groups = _groups(layers, rslora, judged)
    fix = _fix(layers, rslora, skipped) if judged else {}
    if skipped:
        notes.append(f"not judged: the LoRA factors of {', '.join(sorted(skipped))} (embedding or convolution layers);"
                     " the fix keeps their lora_alpha")
    report = LintReport(str(root), rslora, judged, reference.label, layers, groups, None if converted else preset_name(cfg),
                        notes + config_notes(cfg) + ([converted] if converted else []), unmatched, fix)
    report.verdict = _verdict(report)
    return report


def _resolve(pattern: dict, module: str, used: set) -> str:
    from peft.utils.other import get_pattern_key

    key = get_pattern_key(list(pattern), module)
    if key in pattern:
        used.add(key)
    return key


class _Reference:
    """The rule an adapter is judged against: ``fixed`` (from lorascale.json) for every layer, or per
    layer the principled rule it matches, with LoRA-α Variant I (constant C) for all others."""

    def __init__(self, fixed: tuple[RuleSpec, Init] | None, c: float):
        self.fixed, self.c, self.layers, self.analytic_layers = fixed, c, 0, 0

    @property
    def label(self) -> str:
        if self.fixed is None:
            if self.analytic_layers and self.analytic_layers == self.layers:
                return f"{ANALYTIC}, which every layer matches"
            also = f"; the {self.analytic_layers} layers matching {ANALYTIC} against it" if self.analytic_layers else ""
            return f"LoRA-α (C = {self.c:g}){also}"
        spec, init = self.fixed
        knob = {ScaleRule.LORA_ALPHA: f" (C = {spec.c:g}, α = {spec.alpha:g})", ScaleRule.MUA: f" (γ = {spec.gamma:g})",
                ScaleRule.LORA_ALPHA_ANALYTIC: f" (α = {spec.alpha:g}, init {init.value})"}[spec.rule]
        return f"{spec.rule.value}{knob}, as lorascale.json declares"

    def __call__(self, matched: str, r: int, d_in: int) -> float:
        self.layers += 1
        if self.fixed is not None:
            return effective_scale(self.fixed[0], r, d_in, self.fixed[1])
        if matched == ANALYTIC:
            self.analytic_layers += 1
            return effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), r, d_in, Init.KAIMING)
        return effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, c=self.c), r, d_in)


def _reference(meta: dict | None, c: float | None) -> tuple[_Reference, list[str]]:
    """The reference of an adapter whose lorascale.json says ``meta``, and notes on it. Its C is ``c`` (256 when
    None), except under a declared lora-alpha rule, whose own C it takes."""
    asked = DEFAULT_C if c is None else c
    if meta is None:
        return _Reference(None, asked), []
    try:
        spec = RuleSpec(**{k: meta[k] for k in ("rule", "alpha", "c", "lora_alpha", "gamma") if k in meta})
        init = Init(meta.get("init", Init.KAIMING))
    except (ConfigError, ValueError) as e:  # a hand-edited or foreign file: judge by the tensors alone
        return _Reference(None, asked), [f"lorascale.json is not readable ({e}); judged by the scales alone"]
    notes = [f"lorascale.json: planned with rule {spec.rule.value}"]
    if spec.rule is ScaleRule.LORA_ALPHA:
        if c is not None and c != spec.c:
            notes.append(f"c = {c:g} was asked for, but lorascale.json declares rule lora-alpha with C = {spec.c:g}:"
                         f" scales are judged and named against C = {spec.c:g}")
        return _Reference((spec, init), spec.c), notes
    if spec.rule in PRINCIPLED:
        return _Reference((spec, init), asked), notes
    return _Reference(None, asked), [notes[0] + " (a conventional rule: compared with LoRA-α)"]


def _groups(layers: list[LintLayer], rslora: bool, judged: bool) -> list[LintGroup]:
    buckets: dict[tuple, list[LintLayer]] = {}
    for ly in layers:
        buckets.setdefault((ly.layer_type, ly.rank, ly.d_in, ly.d_out, ly.lora_alpha), []).append(ly)
    groups = []
    for (kind, r, d_in, d_out, alpha), members in buckets.items():
        first = members[0]  # equal rank, d_in and alpha: equal scale and reference
        off = judged and not math.isclose(first.ratio, 1.0, rel_tol=MATCH_TOL)
        fix = peft_lora_alpha(first.reference_scale, r, rslora) if off else None
        groups.append(LintGroup(kind, len(members), d_in, d_out, r, alpha, first.scale, first.rule, first.reference_scale,
                                first.ratio, fix))
    return sorted(groups, key=lambda g: (g.layer_type, g.rank))


def _fix(layers: list[LintLayer], rslora: bool, keep: dict[str, float] | None = None) -> dict:
    """``lora_alpha`` and ``alpha_pattern`` (keys as lorascale plans them) giving every layer its reference s,
    and every module of ``keep`` (name → lora_alpha: layers the report does not judge) its own lora_alpha."""
    if all(math.isclose(ly.ratio, 1.0, rel_tol=MATCH_TOL) for ly in layers):
        return {}
    alphas = {ly.name: peft_lora_alpha(ly.reference_scale, ly.rank, rslora) for ly in layers}
    lora_alpha, pattern = _alpha_pattern({**alphas, **(keep or {})})
    return {"lora_alpha": lora_alpha, "alpha_pattern": pattern}


def _verdict(report: LintReport) -> str:
    if not report.judged:
        msg = "not judged by scale: this init does not start from B = 0 (see notes)"
    else:
        off = [g for g in report.groups if not 1 / NEAR <= g.ratio <= NEAR]
        if not off:
            msg = f"every layer's scale is within {NEAR:g}× of its reference ({report.reference})"
        else:
            msg = "; ".join(_off_line(same) for same in _same_change(off))
            if any(g.ratio > NEAR for g in off):
                msg += (". Under-scaled layers barely learn at the full-finetuning learning rate: raise lora_alpha as"
                        " shown, or expect to need a much larger learning rate")
            else:
                msg += ". Lower lora_alpha as shown (or the learning rate) if training is unstable"
    if report.unmatched_pattern_keys:
        keys = "; ".join(f"{k}: {', '.join(v)}" for k, v in report.unmatched_pattern_keys.items())
        msg += f". Pattern keys that match no module (PEFT ignores them silently): {keys}"
    return msg


def _same_change(groups: list[LintGroup]) -> list[list[LintGroup]]:
    """Groups that need the same change (same rank, alpha and reference), so the verdict says it once."""
    out: dict[tuple, list[LintGroup]] = {}
    for g in groups:
        out.setdefault((g.rank, g.lora_alpha, g.scale, g.reference_scale), []).append(g)
    return list(out.values())


def _off_line(groups: list[LintGroup]) -> str:
    g, count = groups[0], sum(x.count for x in groups)
    where = f"{', '.join(x.layer_type for x in groups)} (r = {g.rank}, {count} layer{'s' if count > 1 else ''})"
    how = f"under-scaled {g.ratio:.3g}×" if g.ratio > 1 else f"over-scaled {1 / g.ratio:.3g}×"
    return f"{where}: s = {g.scale:.4g} where {g.reference_scale:.4g} is due, {how}: lora_alpha {g.lora_alpha:g} → {g.fix_lora_alpha:.6g}"
