"""Turn a scaling rule into a ``peft.LoraConfig``: ``lora_alpha`` plus, per layer, ``alpha_pattern``.

PEFT applies s = lora_alpha / r (or lora_alpha / √r with ``use_rslora``), with r from ``rank_pattern``
where one of its keys matches the module. LoRA-α Variant II gives each layer its own s, and a
``rank_pattern`` gives layers their own r; both are expressed with ``alpha_pattern`` so that each
layer's s follows the rule at its own d_in and its own rank. PEFT silently ignores pattern keys that
match no module and resolves overlapping keys by dict order, so the plan is checked against PEFT's own
resolver (``peft.utils.other.get_pattern_key``) for ranks and alphas before it is returned.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass

from ..errors import ConfigError, ConfigErrors
from ..methods import peft_fields
from ..rules import Init, ScaleRule, effective_scale, peft_lora_alpha, scale_from_peft
from .spec import AdapterSpec, PeftOptions
from .targets import TargetLayer, find_target_layers, layer_type, peft_target_layers

__all__ = ["AdapterSpec", "PeftOptions", "LayerPlan", "LoraPlan", "PlanMismatch", "plan_lora", "plan_for_layers",
           "verify_against_peft", "infer_task_type", "ALL_LINEAR"]

log = logging.getLogger(__name__)

REL_TOL = 1e-9  # plans are exact arithmetic on floats; anything above rounding is a bug
ALL_LINEAR = "all-linear"  # PEFT's shorthand for every linear layer but the output head

# transformers class-name suffix → PEFT task_type. The task type decides PEFT's wrapper class, and
# SEQ_CLS makes PEFT train and save a classification model's freshly initialised head.
_TASK_SUFFIXES = (
    ("ForSequenceClassification", "SEQ_CLS"),
    ("ForCausalLM", "CAUSAL_LM"),
    ("ForConditionalGeneration", None),  # seq2seq or vision-language: PEFT's generic wrapper is the safe choice
    ("ForTokenClassification", "TOKEN_CLS"),
    ("ForQuestionAnswering", "QUESTION_ANS"),
)


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
            "rank_pattern": dict(c.rank_pattern),
            "use_rslora": c.use_rslora,
            "target_modules": sorted(c.target_modules) if not isinstance(c.target_modules, str) else c.target_modules,
            "lora_dropout": c.lora_dropout,
            "bias": c.bias,
            "use_dora": c.use_dora,
            "init_lora_weights": c.init_lora_weights,
            # PEFT's wrapper for the model's task (SEQ_CLS also trains and saves the new head), and any extra
            # modules trained in full: without them a copied config leaves a classifier head frozen
            "task_type": getattr(c.task_type, "value", c.task_type),  # PEFT's TaskType enum or its string
            "modules_to_save": None if c.modules_to_save is None else sorted(c.modules_to_save),
        }


def infer_task_type(model) -> str | None:
    """PEFT's ``task_type`` for a transformers model, from its class name (None: PEFT's generic wrapper)."""
    name = type(model).__name__
    return next((task for suffix, task in _TASK_SUFFIXES if name.endswith(suffix)), None)


def plan_lora(model, spec: AdapterSpec, default_targets: tuple[str, ...] = (), task_type: str | None = None,
              options: PeftOptions | None = None) -> LoraPlan:
    """Plan the LoRA adapters of ``model`` under ``spec``, without touching the model.

    ``task_type`` defaults to the one the model's class implies (a ``...ForSequenceClassification``
    model gets SEQ_CLS, so PEFT trains its new head, and never adds LoRA to it). ``targets="all-linear"`` is
    PEFT's shorthand, expanded by PEFT's own code so the plan covers exactly the layers PEFT will wrap; any
    other string is a regular expression matched against full module names, as in PEFT.
    """
    task_type = task_type or infer_task_type(model)
    targets = spec.targets if spec.targets is not None else default_targets
    save = options.modules_to_save if options else None
    names = [targets] if isinstance(targets, str) else list(targets)
    if any(t.lower() == ALL_LINEAR for t in names):
        if len(names) > 1:
            raise ConfigError("targets", f"{ALL_LINEAR!r} stands for every linear layer and cannot be combined with"
                              f" other names: {names}", f"pass targets={ALL_LINEAR!r} alone, or list module names")
        return plan_for_layers(_all_linear_layers(model, task_type, save), spec, ALL_LINEAR, task_type, options)
    layers = find_target_layers(model, targets, task_type, save)
    return plan_for_layers(layers, spec, targets if isinstance(targets, str) else names, task_type, options)


def plan_for_layers(layers: list[TargetLayer], spec: AdapterSpec, targets, task_type: str | None = None,
                    options: PeftOptions | None = None, existing: bool = False) -> LoraPlan:
    """The plan for ``layers`` (as PEFT will see them): each layer's rank from ``options.rank_pattern``
    through PEFT's resolver, its s from the rule at that rank, and the LoraConfig that yields them.

    ``existing``: the layers are adapters someone already has (a rescale), so a ``rank_pattern`` key that
    matches none of them is PEFT's to ignore, as it did when it built them: logged and kept, not refused."""
    options, errors = _with_method(spec, options or PeftOptions())
    errors += _check_options(spec, options)
    ranks, dead = _layer_ranks(layers, spec.rank, options.rank_pattern)
    if dead and existing:
        log.warning("rank_pattern keys %s match no LoRA layer; PEFT ignores them, and the rescaled config keeps them", dead)
    elif dead:
        errors.append(ConfigError("rank_pattern", f"keys {dead} match no target layer (PEFT would ignore them)",
                                  "use module names or suffixes of the target layers, e.g. 'mlp.down_proj'"))
    too_big = [ly for ly in layers if ranks[ly.name] > min(ly.d_in, ly.d_out)]
    if too_big:
        worst = min(too_big, key=lambda ly: min(ly.d_in, ly.d_out))
        r, cap = ranks[worst.name], min(worst.d_in, worst.d_out)
        field = "rank" if r == spec.rank else "rank_pattern"
        errors.append(ConfigError(field, f"r = {r} exceeds min(d_in, d_out) = {cap} of {worst.name}", f"use rank {cap} or less"))
    _raise_all(errors)

    scales = {ly.name: effective_scale(spec.scaling, ranks[ly.name], ly.d_in, spec.init) for ly in layers}
    use_rslora = spec.scaling.rule is ScaleRule.RSLORA
    if use_rslora:  # s = lora_alpha/√r at every rank: PEFT's own formula, no pattern needed
        lora_alpha, pattern = spec.scaling.lora_alpha, {}
    else:
        lora_alpha, pattern = _alpha_pattern({n: peft_lora_alpha(s, ranks[n]) for n, s in scales.items()})
    config = _lora_config(
        r=spec.rank, lora_alpha=lora_alpha, alpha_pattern=pattern, rank_pattern=dict(options.rank_pattern),
        use_rslora=use_rslora, target_modules=targets, lora_dropout=spec.lora_dropout, bias=options.bias,
        task_type=task_type, use_dora=options.use_dora, init_lora_weights=options.init_lora_weights,
        modules_to_save=list(options.modules_to_save) if options.modules_to_save else None,
    )
    plan = LoraPlan(config, [LayerPlan(ly.name, ly.d_in, ly.d_out, ranks[ly.name], scales[ly.name]) for ly in layers])
    verify_against_peft(plan.config, plan.layers)
    return plan


def _with_method(spec: AdapterSpec, options: PeftOptions) -> tuple[PeftOptions, list[ConfigError]]:
    """``options`` with the PEFT fields ``spec.method`` sets (DoRA: ``use_dora``; PiSSA, OLoRA:
    ``init_lora_weights``); a pass-through option that says otherwise is an error, not overridden."""
    fields = peft_fields(spec.method, spec.pissa_niter)
    clash = [k for k, v in fields.items() if k in options.model_fields_set and getattr(options, k) != v]
    errors = [ConfigError(k, f"method {spec.method.value} sets {k}={fields[k]!r}, but {k}={getattr(options, k)!r} is given",
                          f"drop {k} (method {spec.method.value} sets it), or use method lora") for k in clash]
    return (options.replace(**fields) if fields and not errors else options), errors


def _check_options(spec: AdapterSpec, options: PeftOptions) -> list[ConfigError]:
    errors = []
    if spec.scaling.rule is ScaleRule.LORA_ALPHA_ANALYTIC and options.init_lora_weights is not True:
        errors.append(ConfigError(
            "init_lora_weights", f"LoRA-α analytic takes σ_A from PEFT's kaiming init of A (init_lora_weights=True);"
            f" {options.init_lora_weights!r} draws A differently", "keep init_lora_weights=True, or use rule lora-alpha"))
    if spec.init is not Init.KAIMING and options.changes_base_weights():
        errors.append(ConfigError(
            "init", f"init {spec.init.value} re-draws the factors, but init_lora_weights={options.init_lora_weights!r}"
            " has already folded them into the base weights (W_res = W₀ − s·B·A)", "use one of the two inits"))
    return errors


def _layer_ranks(layers: list[TargetLayer], rank: int, rank_pattern: dict) -> tuple[dict[str, int], list[str]]:
    """Each layer's rank as PEFT resolves ``rank_pattern``, and the keys that match no layer (which PEFT
    ignores silently)."""
    from peft.utils.other import get_pattern_key

    keys = list(rank_pattern)
    ranks, used = {}, set()
    for ly in layers:
        key = get_pattern_key(keys, ly.name)
        if key in rank_pattern:
            used.add(key)
        ranks[ly.name] = rank_pattern.get(key, rank)
    return ranks, [k for k in keys if k not in used]


def _all_linear_layers(model, task_type: str | None, modules_to_save=None) -> list[TargetLayer]:
    """The layers PEFT's ``target_modules="all-linear"`` selects, expanded by PEFT itself, less those it never
    adds LoRA to (``modules_to_save``, a classification task's head)."""
    from peft import LoraConfig

    config = LoraConfig(target_modules=ALL_LINEAR, task_type=task_type, r=1,
                        modules_to_save=list(modules_to_save) if modules_to_save else None)
    layers = peft_target_layers(model, config, "targets")
    if not layers:
        raise ConfigError("targets", f"{ALL_LINEAR!r} selects no linear layer of this model", "list module names instead")
    return layers


def _lora_config(**kwargs):
    """A ``peft.LoraConfig``; PEFT's own validation errors name what to change."""
    from peft import LoraConfig

    try:
        return LoraConfig(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError("lora_config", f"PEFT rejects these LoRA options: {e}", "see peft.LoraConfig's documentation") from None


def _raise_all(errors: list[ConfigError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    ConfigErrors.raise_if_any(errors)


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


def verify_against_peft(config, layers: list[LayerPlan]) -> None:
    """PEFT's resolver gives each layer the planned rank and scale, and every alpha_pattern key is used."""
    from peft.utils.other import get_pattern_key

    alpha_keys, rank_keys = list(config.alpha_pattern), list(config.rank_pattern)
    used = set()
    for ly in layers:
        r = config.rank_pattern.get(get_pattern_key(rank_keys, ly.name), config.r)
        if r != ly.rank:
            raise PlanMismatch(f"rank_pattern resolves {ly.name} to r={r}, planned {ly.rank}")
        key = get_pattern_key(alpha_keys, ly.name)
        if key in config.alpha_pattern:
            used.add(key)
        alpha = config.alpha_pattern.get(key, config.lora_alpha)
        s = scale_from_peft(alpha, r, config.use_rslora)
        if not math.isclose(s, ly.scale, rel_tol=REL_TOL):  # a planning bug: never train with a wrong scale
            raise PlanMismatch(f"alpha_pattern resolves {ly.name} to s={s}, planned {ly.scale}")
    unused = [k for k in alpha_keys if k not in used]
    if unused:
        raise PlanMismatch(f"alpha_pattern keys match no module: {unused}")


class PlanMismatch(RuntimeError):
    """lorascale's plan and PEFT's resolution of it disagree: a bug in lorascale, raised even under ``python -O``."""
