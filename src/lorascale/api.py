"""One-call API for people with their own trainer (HF Trainer, TRL, a custom loop).

>>> peft_model = lorascale.apply(model, rank=16, rule="lora-alpha")          # wrap (or rescale a PeftModel)
>>> config = lorascale.lora_config(model, rank=16, rule="lora-alpha")       # for TRL's peft_config=
>>> config = lorascale.rescale(my_lora_config, "lora-alpha")                # a LoraConfig you already have
>>> lr = lorascale.recommend_lr("lora-alpha", lr_fft=2e-5)

>>> peft_model = lorascale.apply(model, rank=16, rule="lora-alpha", method="dora")   # LoRA-α + DoRA
>>> opt = lorascale.loraplus_optimizer(peft_model, lr=2e-5)                     # LoRA+ (B at 16 × lr)

``method`` (lora, loraplus, dora, pissa, olora) is lorascale's name for the baselines PEFT builds
(docs/baselines.md). PEFT's own options (``use_dora``, ``init_lora_weights``, ``modules_to_save``,
``rank_pattern``, ``bias``) pass through ``apply`` and ``lora_config`` as keywords; ``targets="all-linear"``
is PEFT's shorthand.
"""

from __future__ import annotations

import logging

from .adapters import AdapterSpec, apply_init, lora_modules, plan_lora
from .adapters.rescale import active_adapter, has_lora_layers, rescale_config, rescale_model
from .adapters.spec import PeftOptions
from .errors import ConfigError, ConfigErrors, collecting
from .methods import LORAPLUS_LR_RATIO, Method, method_of
from .models import default_targets_for as default_targets  # μA Table 3 placement; public name
from .rules import DEFAULT_LR_FFT, LR_FFT_FIX, Init, ScaleRule, recommended_lr, unread_knobs, with_unread
from .schema import PositiveFloat, checked, validate

__all__ = ["apply", "lora_config", "rescale", "init_after_wrap", "recommend_lr", "loraplus_optimizer", "default_targets"]

log = logging.getLogger(__name__)


def apply(
    model,
    rank: int | None = None,
    rule: str | ScaleRule = ScaleRule.LORA_ALPHA,
    *,
    alpha: float | None = None,
    c: float | None = None,
    lora_alpha: float | None = None,
    gamma: float | None = None,
    init: str | Init = Init.KAIMING,
    targets: str | tuple[str, ...] | list[str] | None = None,
    task_type: str | None = None,
    lora_dropout: float | None = None,
    method: str | Method = Method.LORA,
    pissa_niter: int | None = None,
    loraplus_lr_ratio: float | None = None,
    seed: int = 0,
    **peft_options,
):
    """Wrap ``model`` with LoRA adapters whose scale follows ``rule`` (rank 16 unless given); returns the PEFT model.

    ``method`` picks the LoRA variant PEFT builds (``dora``, ``pissa``, ``olora``; docs/baselines.md), composed
    with any rule. LoRA+ (``loraplus``) is an optimizer: the adapters are LoRA's, and
    :func:`loraplus_optimizer` builds its AdamW.

    ``alpha``, ``c``, ``lora_alpha`` and ``gamma`` are the rule's knobs (docs/rules.md); None takes RuleSpec's
    default, and a knob the rule does not read is refused, not ignored.

    Given a ``PeftModel``, its LoRA adapters are rescaled in place to the rule (each layer at its own
    rank) instead of being wrapped a second time; options that would need new adapters (another rank,
    targets, PEFT options) are refused, all at once. ``init`` A or B re-draws the factors (μA Def. 3.2),
    which is refused for adapters that have been trained.
    """
    scaling = _rule(rule, alpha, c, lora_alpha, gamma)  # validated with the other settings, every problem at once
    method_given = {"method": method, "pissa_niter": pissa_niter, "loraplus_lr_ratio": loraplus_lr_ratio}
    if has_lora_layers(model):
        new_adapters = method not in (Method.LORA, Method.LORAPLUS)  # LoRA+ is an optimizer: nothing to rebuild
        given = {"rank": rank, "targets": targets, "task_type": task_type, "lora_dropout": lora_dropout, **peft_options,
                 "method": method if new_adapters else None, "pissa_niter": pissa_niter}
        errors = _new_adapter_options(model, {k: v for k, v in given.items() if v is not None})
        with collecting(errors):
            spec = validate(AdapterSpec, {"scaling": scaling, "init": init})  # analytic needs σ_A > 0
        ConfigErrors.raise_if_any(_with_unread(errors, scaling))  # every kind of problem together
        init = spec.init
        if init is not Init.KAIMING:
            _check_redraw(model, None)  # refuse before anything changes
        rescale_model(model, spec.scaling, init)
        if init is not Init.KAIMING:
            init_after_wrap(model, init, seed=seed)
        return model
    from peft import get_peft_model

    spec, options = _spec(rank, scaling, init, targets, lora_dropout, peft_options, method_given)
    plan = plan_lora(model, spec, default_targets(model), task_type=task_type, options=options)
    peft_model = get_peft_model(model, plan.config)
    apply_init(peft_model, spec.init, seed=seed)
    if spec.loraplus_ratio() is not None:
        log.info("LoRA+ is an optimizer: train with lorascale.loraplus_optimizer(model, lr, loraplus_lr_ratio=%g)",
                 spec.loraplus_ratio())
    return peft_model


def lora_config(
    model,
    rank: int = 16,
    rule: str | ScaleRule = ScaleRule.LORA_ALPHA,
    *,
    alpha: float | None = None,
    c: float | None = None,
    lora_alpha: float | None = None,
    gamma: float | None = None,
    init: str | Init = Init.KAIMING,
    targets: str | tuple[str, ...] | list[str] | None = None,
    task_type: str | None = None,
    lora_dropout: float | None = None,
    method: str | Method = Method.LORA,
    pissa_niter: int | None = None,
    **peft_options,
):
    """The ``peft.LoraConfig`` that makes ``model``'s adapters follow ``rule`` (for TRL's ``peft_config=``,
    ``get_peft_model`` or ``model.add_adapter``), planned and checked against PEFT's resolver.
    (transformers 5.x's ``add_adapter`` needs PEFT ≥ 0.22, newer than lorascale's tested range: use
    ``get_peft_model`` with PEFT 0.18–0.21.)

    μA's Init[A]/Init[B] cannot be written in a LoraConfig: pass ``init`` here (LoRA-α analytic's s
    depends on it) and re-draw the factors after wrapping with :func:`init_after_wrap`.

    ``alpha``, ``c``, ``lora_alpha`` and ``gamma`` are the rule's knobs (docs/rules.md); None takes RuleSpec's
    default, and a knob the rule does not read is refused, not ignored.
    """
    if has_lora_layers(model):
        raise ConfigError("model", "already carries LoRA adapters; a config for it would nest a second set",
                          "rescale them with lorascale.rescale(model, rule), or pass the base model")
    spec, options = _spec(rank, _rule(rule, alpha, c, lora_alpha, gamma), init, targets, lora_dropout, peft_options,
                          {"method": method, "pissa_niter": pissa_niter})
    if spec.init is not Init.KAIMING:
        log.info("init %s cannot be written in a LoraConfig: after wrapping, call lorascale.init_after_wrap(trainer_or_model,"
                 " %r, seed=...)", spec.init.value, spec.init.value)
    return plan_lora(model, spec, default_targets(model), task_type=task_type, options=options).config


def rescale(
    config_or_model,
    rule: str | ScaleRule = ScaleRule.LORA_ALPHA,
    *,
    model=None,
    alpha: float | None = None,
    c: float | None = None,
    lora_alpha: float | None = None,
    gamma: float | None = None,
    init: str | Init = Init.KAIMING,
    adapter: str | None = None,
):
    """Bring adapters you already have to ``rule``, each layer at its own rank.

    A ``LoraConfig``: returns a new config (``model=`` the base model checks it layer by layer and is
    needed for LoRA-α analytic). A ``PeftModel``: rescales its adapter in place and returns the model.

    ``alpha``, ``c``, ``lora_alpha`` and ``gamma`` are the rule's knobs (docs/rules.md); None takes RuleSpec's
    default, and a knob the rule does not read is refused, not ignored.
    """
    from peft import LoraConfig

    scaling = _rule(rule, alpha, c, lora_alpha, gamma)
    errors, spec = [], None
    with collecting(errors):
        spec = validate(AdapterSpec, {"scaling": scaling, "init": init})
    ConfigErrors.raise_if_any(_with_unread(errors, scaling))  # all at once
    scaling, init = spec.scaling, spec.init
    if isinstance(config_or_model, LoraConfig):
        return rescale_config(config_or_model, scaling, init, model=model)
    if has_lora_layers(config_or_model):
        rescale_model(config_or_model, scaling, init, adapter=adapter)
        return config_or_model
    raise ConfigError("config_or_model", f"got a {type(config_or_model).__name__} without LoRA adapters",
                      "pass a peft.LoraConfig or a PeftModel; to add adapters use lorascale.apply or lora_config")


def init_after_wrap(trainer_or_model, init: str | Init, seed: int = 0, adapter: str | None = None) -> int:
    """Re-draw the LoRA factors with μA's Init[A] or Init[B] after PEFT (or TRL) wrapped the model.

    >>> trainer = SFTTrainer(model=model, peft_config=lorascale.lora_config(model, 16, "mua", init="B"), ...)
    >>> lorascale.init_after_wrap(trainer, "B", seed=0)   # before trainer.train()

    Returns the number of layers re-drawn. Refused when the adapters have been trained or when PEFT's
    init already folded them into the base weights (PiSSA, OLoRA, ...).
    """
    init = checked(Init, "init", init, "choose kaiming, A or B")  # a misspelt init before anything is looked at
    model = trainer_or_model.model if hasattr(trainer_or_model, "callback_handler") else trainer_or_model
    name = _check_redraw(model, adapter)
    return apply_init(model, init, seed=seed, adapter=name)


def _check_redraw(model, adapter: str | None) -> str:
    """The adapter whose factors may be re-drawn; refuses trained adapters and base-changing inits."""
    from peft import PeftModel

    if not has_lora_layers(model):
        raise ConfigError("model", "has no LoRA layers yet", "wrap it first (get_peft_model, or construct the trainer)")
    is_peft = isinstance(model, PeftModel)
    name = active_adapter(model, adapter) if is_peft else (adapter or "default")
    config = (getattr(model, "peft_config", None) or {}).get(name)  # transformers' add_adapter keeps one too
    if config is not None and PeftOptions(init_lora_weights=config.init_lora_weights).changes_base_weights():
        raise ConfigError("init", f"init_lora_weights={config.init_lora_weights!r} folded the factors into the base"
                          " weights (W_res = W₀ − s·B·A); re-drawing them would change the model", "use one of the two inits")
    trained = [n for n, m in lora_modules(model, name)
               if m.lora_A[name].weight.count_nonzero() and m.lora_B[name].weight.count_nonzero()]
    if trained:
        raise ConfigError("init", f"{len(trained)} layers (e.g. {trained[0]}) have A ≠ 0 and B ≠ 0: the adapter has been"
                          " trained, and re-drawing it would discard that", "re-initialise only freshly created adapters")
    return name


def recommend_lr(rule: str | ScaleRule = ScaleRule.LORA_ALPHA, lr_fft: float = DEFAULT_LR_FFT, *,
                 init: str | Init = Init.KAIMING, gamma: float | None = None, method: str | Method = Method.LORA) -> float:
    """The learning rate the rule prescribes from the full-finetuning one (LoRA-α: η_FFT itself;
    μA Init[B] with α = 1: η_FFT too), or the ``method``'s own (PiSSA: η_FFT). Other μA configurations
    raise: use ``lorascale transfer``."""
    scaling = {"rule": rule, **({"gamma": gamma} if gamma is not None else {})}
    errors, spec = [], None
    with collecting(errors):
        checked(PositiveFloat, "lr_fft", lr_fft, LR_FFT_FIX)
    with collecting(errors):
        spec = validate(AdapterSpec, {"scaling": scaling, "init": init, "method": method})
    ConfigErrors.raise_if_any(_with_unread(errors, scaling))
    return recommended_lr(spec.scaling, lr_fft, spec.init, spec.method)


def loraplus_optimizer(model, lr: float, loraplus_lr_ratio: float = LORAPLUS_LR_RATIO, *, weight_decay: float = 0.01,
                       betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
    """LoRA+'s AdamW (Hayou et al. 2024) for a PEFT model, built by PEFT's ``create_loraplus_optimizer``:
    A at ``lr``, B factors and 1-D parameters at ``loraplus_lr_ratio`` × ``lr``, with the μA recipe's AdamW
    settings (PEFT's own default weight decay is 0). For ``Trainer(optimizers=(opt, None))``.

    "1-D parameters" is PEFT's rule, and it reaches past the adapters: every trainable bias (``bias="all"``,
    a ``modules_to_save`` head's bias) and DoRA's magnitude vectors also train at λ·``lr``, while a head's
    weight matrix stays at ``lr``."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    checked(PositiveFloat, "lr", lr, "give the peak learning rate, e.g. 2e-5")
    checked(PositiveFloat, "loraplus_lr_ratio", loraplus_lr_ratio, f"Hayou et al. 2024 recommend {LORAPLUS_LR_RATIO:g}")
    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=loraplus_lr_ratio,
                                     loraplus_weight_decay=weight_decay, betas=betas, eps=eps)


def _rule(rule, alpha, c, lora_alpha, gamma) -> dict:
    """The scaling settings as given (a knob left None takes RuleSpec's default): validated inside AdapterSpec,
    with the adapter's own, so a bad rule and a bad init are reported together."""
    given = {"alpha": alpha, "c": c, "lora_alpha": lora_alpha, "gamma": gamma}
    return {"rule": rule, **{k: v for k, v in given.items() if v is not None}}


def _spec(rank, scaling, init, targets, lora_dropout, peft_options, method: dict) -> tuple[AdapterSpec, PeftOptions]:
    """AdapterSpec and PeftOptions from keyword arguments; every bad value of both at once."""
    errors, spec, options = [], None, None
    with collecting(errors):
        spec = AdapterSpec(rank=16 if rank is None else rank, scaling=scaling, init=init,
                           targets=targets, lora_dropout=0.0 if lora_dropout is None else lora_dropout, **method)
    with collecting(errors):
        options = PeftOptions(**peft_options)
    ConfigErrors.raise_if_any(_with_unread(errors, scaling))
    return spec, options


def _with_unread(errors: list[ConfigError], scaling: dict) -> list[ConfigError]:
    """``errors`` plus the knobs ``scaling``'s rule ignores (:func:`~lorascale.rules.unread_knobs`), each the only
    error about its knob (its one fix is to drop it: its value does not matter); none when the rule is refused."""
    if "rule" in {e.field for e in errors}:
        return errors
    return with_unread(errors, unread_knobs(scaling))


def _new_adapter_options(model, given: dict) -> list[ConfigError]:
    """apply() on a model with adapters rescales them; the options that describe other adapters, refused."""
    from peft import PeftModel

    config = model.peft_config[active_adapter(model)] if isinstance(model, PeftModel) else None
    # the method PEFT built them with (None: no single one), so method="dora" on DoRA adapters asks only for a rescale
    built = method_of(config.use_dora, config.init_lora_weights) if config is not None else None
    same = {"rank": getattr(config, "r", None), "task_type": getattr(config, "task_type", None),
            "lora_dropout": getattr(config, "lora_dropout", None), "method": built and built[0], "pissa_niter": built and built[1]}
    fix = "drop it to rescale the existing adapters, or pass the base model (peft_model.unload()) for new ones"
    errors = [ConfigError(k, f"the model already has LoRA adapters (r = {same['rank']}); {k}={v!r} describes new ones", fix)
              for k, v in given.items() if not (k in same and same[k] == v)]
    return errors
