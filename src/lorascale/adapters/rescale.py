"""Bring adapters someone already has to a rule: a ``LoraConfig`` (a new one is returned) or a PEFT model
(rescaled in place).

Rescaling never re-wraps a model: ``get_peft_model`` on a ``PeftModel`` nests a second wrapper (saved
keys ``base_model.model.base_model.model...`` that no longer load). In place means the adapter's
``LoraConfig`` (``lora_alpha``, ``alpha_pattern``, ``use_rslora``) and each LoRA layer's ``lora_alpha``
and ``scaling`` dicts, so the model computes W₀x + s·B(Ax) with the rule's s and saves a config that
reloads to the same s. The factors are left as they are.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ConfigError
from ..rules import Init, RuleSpec, ScaleRule, effective_scale, peft_lora_alpha, scale_from_peft
from .init import lora_modules
from .plan import REL_TOL, PlanMismatch, _check_options, _raise_all, plan_for_layers, verify_against_peft
from .spec import AdapterSpec, PeftOptions
from .targets import TargetLayer, peft_target_layers, strip_peft_prefix

__all__ = ["rescale_config", "rescale_model", "has_lora_layers", "active_adapter", "options_of"]


def has_lora_layers(model) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())


def active_adapter(peft_model, adapter: str | None = None) -> str:
    if adapter is not None:
        if adapter not in peft_model.peft_config:
            raise ConfigError("adapter", f"the model has no adapter {adapter!r}", f"use one of {sorted(peft_model.peft_config)}")
        return adapter
    name = peft_model.active_adapter
    if not isinstance(name, str):
        raise ConfigError("adapter", f"several adapters are active ({name})", "name the one to rescale with adapter=...")
    return name


def options_of(config) -> PeftOptions:
    """The pass-through options an existing ``LoraConfig`` carries."""
    return PeftOptions(use_dora=bool(config.use_dora), init_lora_weights=config.init_lora_weights,
                       modules_to_save=tuple(config.modules_to_save) if config.modules_to_save else None,
                       rank_pattern=dict(config.rank_pattern or {}), bias=config.bias)


def rescale_model(peft_model, scaling: RuleSpec, init: Init = Init.KAIMING, adapter: str | None = None):
    """Set every LoRA layer of ``adapter`` (default: the active one) to the rule's s at its own rank and
    d_in, in place; returns the new ``LoraConfig``. Refuses what a rescale cannot keep exact."""
    from peft import PeftModel

    if not isinstance(peft_model, PeftModel):
        raise ConfigError("model", "carries LoRA layers but is not a PeftModel (transformers' add_adapter or"
                          " peft.inject_adapter_in_model): lorascale cannot rescale or re-wrap it",
                          "pass the model before adapters were added, or wrap it with peft.get_peft_model")
    name = active_adapter(peft_model, adapter)
    config = peft_model.peft_config[name]
    if config.peft_type != "LORA":  # PeftType is a str enum
        raise ConfigError("model", f"adapter {name!r} is {config.peft_type}, not LoRA", "lorascale plans LoRA adapters only")
    modules = list(lora_modules(peft_model, name))
    others = _non_linear_lora(peft_model, name)
    if not modules and not others:
        raise ConfigError("model", f"adapter {name!r} has no LoRA layers", "wrap the model with get_peft_model first")
    options = options_of(config)
    problems = []
    if others:  # an embedding's factors are not in lora_A, a convolution's A has fan-in d_in·k²: no rule plans them
        problems.append((f"it has LoRA on layers that are not linear: {', '.join(others[:6])}{' …' if len(others) > 6 else ''}"
                         " (their scale would change with the config's lora_alpha, at no rule's value)",
                         "rescale an adapter of linear layers alone (target them by name)"))
    if any(getattr(m, "merged", False) for _, m in modules):
        problems.append(("its adapters are merged into the base weights", "unmerge first (model.unmerge_adapter())"))
    if options.changes_base_weights():
        problems.append((f"init_lora_weights={config.init_lora_weights!r} folded s into the base weights"
                         " (W_res = W₀ − s·B·A), so a new s changes the model",
                         "plan the rule before wrapping (lorascale.lora_config(..., init_lora_weights=...))"))
    if problems:
        raise ConfigError("model", "; ".join(m for m, _ in problems), "; ".join(f for _, f in problems))

    layers = [TargetLayer(strip_peft_prefix(n), m.in_features, m.out_features) for n, m in modules]
    spec = AdapterSpec(rank=config.r, scaling=scaling, init=init, lora_dropout=config.lora_dropout)
    plan = plan_for_layers(layers, spec, config.target_modules, config.task_type, options, existing=True)
    new = dataclasses.replace(config, lora_alpha=plan.config.lora_alpha, alpha_pattern=dict(plan.config.alpha_pattern),
                              use_rslora=plan.config.use_rslora)
    verify_against_peft(new, plan.layers)
    by_name = {ly.name: ly for ly in plan.layers}
    planned = [(n, m, by_name[strip_peft_prefix(n)]) for n, m in modules]
    for module_name, m, ly in planned:  # every check before the first change
        if m.r[name] != ly.rank:  # PEFT built this layer with another rank than its config resolves to
            raise PlanMismatch(f"{module_name} has r={m.r[name]}, its config resolves r={ly.rank}")
    for module_name, m, ly in planned:
        alpha = peft_lora_alpha(ly.scale, ly.rank, new.use_rslora)
        m.lora_alpha[name] = alpha
        m.use_rslora[name] = new.use_rslora
        m.scaling[name] = scale_from_peft(alpha, ly.rank, new.use_rslora)  # PEFT's own formula, as update_layer
        assert math.isclose(m.scaling[name], ly.scale, rel_tol=REL_TOL), f"{module_name}: s = {m.scaling[name]}, planned {ly.scale}"
    peft_model.peft_config[name] = new
    return new


def _non_linear_lora(peft_model, adapter: str) -> list[str]:
    """The modules whose LoRA for ``adapter`` is not on a linear layer: embeddings (``lora_embedding_A``) and
    convolutions (a convolution as ``lora_A``)."""
    import torch.nn as nn
    from peft.tuners.lora import LoraLayer

    out = []
    for n, m in peft_model.named_modules():
        if isinstance(m, LoraLayer) and (adapter in getattr(m, "lora_embedding_A", {})
                                         or (adapter in m.lora_A and not isinstance(m.lora_A[adapter], nn.Linear))):
            out.append(f"{strip_peft_prefix(n)} ({type(m.get_base_layer()).__name__})")
    return out


def rescale_config(config, scaling: RuleSpec, init: Init = Init.KAIMING, model=None):
    """A copy of the ``LoraConfig`` whose s follows the rule at every rank it names.

    Without ``model``: rules whose s depends only on r (LoRA-α Variant I, μA, α = r, fixed α, rsLoRA) get
    ``lora_alpha`` for ``r`` and one ``alpha_pattern`` entry per ``rank_pattern`` key, in the same order,
    so PEFT resolves both patterns to the same key for every module. With ``model`` (the base model, not
    yet wrapped) the layers are found as PEFT will wrap them and the plan is checked per layer; LoRA-α
    analytic, whose s depends on each layer's d_in, needs it.
    """
    spec = AdapterSpec(rank=config.r, scaling=scaling, init=init, lora_dropout=config.lora_dropout)
    options = options_of(config)
    _raise_all(_check_options(spec, options))
    if model is not None:
        layers = _config_layers(model, config)
        plan = plan_for_layers(layers, spec, config.target_modules, config.task_type, options, existing=True)
        new = dataclasses.replace(config, lora_alpha=plan.config.lora_alpha, alpha_pattern=dict(plan.config.alpha_pattern),
                                  use_rslora=plan.config.use_rslora)
        verify_against_peft(new, plan.layers)
        return new
    if scaling.rule is ScaleRule.LORA_ALPHA_ANALYTIC:
        raise ConfigError("model", "LoRA-α analytic sets each layer's s from its input width d_in, which a LoraConfig"
                          " does not hold", "pass the base model: lorascale.rescale(config, rule, model=model)")
    if scaling.rule is ScaleRule.RSLORA:
        return dataclasses.replace(config, lora_alpha=scaling.lora_alpha, alpha_pattern={}, use_rslora=True)

    def alpha(r: int) -> float:
        return peft_lora_alpha(effective_scale(scaling, r, 1, init), r)  # d_in unused by these rules

    pattern = {key: alpha(r) for key, r in (config.rank_pattern or {}).items()}
    return dataclasses.replace(config, lora_alpha=alpha(config.r), alpha_pattern=pattern, use_rslora=False)


def _config_layers(model, config) -> list[TargetLayer]:
    """The linear layers ``config`` selects in ``model``, matched by PEFT with the config as PEFT completes it
    (so unset ``target_modules``, "all-linear", ``exclude_modules``, ``modules_to_save``, a classification
    head and ``layers_to_transform`` count as PEFT counts them)."""
    if has_lora_layers(model):
        raise ConfigError("model", "already carries LoRA layers", "pass the base model, or rescale the PeftModel itself")
    layers = peft_target_layers(model, config)
    if not layers:
        raise ConfigError("target_modules", f"{config.target_modules} match no linear layer of this model that PEFT would wrap",
                          "name linear layers of this model (lorascale.default_targets(model) gives μA's placement)")
    return layers
