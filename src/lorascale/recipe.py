"""The μA recipe as keyword arguments of Hugging Face ``TrainingArguments`` (and TRL's ``SFTConfig``,
which extends them): the peak learning rate the rule prescribes, AdamW with μA's β, ε and weight decay,
the global grad-norm clip, 5% warm-up and cosine decay to 0.1× the peak, bf16 on a GPU.

The numbers are :class:`~lorascale.train.config.TrainConfig`'s defaults, read from it, not copied. HF's
``cosine_with_min_lr`` differs from lorascale's schedule (:func:`lorascale.train.schedule.lr_at`) by
its step conventions, which no HF argument changes: its warm-up runs step k at k/W of the peak (the first
step at 0) where lorascale runs (k+1)/W, and its cosine reaches the floor one step after the last.
:func:`lorascale.schedule_callback` makes the trainer follow ``lr_at`` exactly.
"""

from __future__ import annotations

import functools

from .methods import Method
from .rules import DEFAULT_LR_FFT, Init, ScaleRule

__all__ = ["trainer_kwargs", "recipe_args", "checkpointing_arg", "SCHEDULER"]

SCHEDULER = "cosine_with_min_lr"


def trainer_kwargs(rule: str | ScaleRule = ScaleRule.LORA_ALPHA, lr_fft: float = DEFAULT_LR_FFT, *,
                   init: str | Init = Init.KAIMING, gamma: float | None = None, lr: float | None = None,
                   method: str | Method = Method.LORA) -> dict:
    """``TrainingArguments``/``SFTConfig`` keywords for the μA recipe under ``rule``.

    >>> SFTConfig(output_dir="out", **lorascale.trainer_kwargs(rule="lora-alpha", lr_fft=2e-5))

    ``lr`` overrides the rule's learning rate (μA configurations other than Init[B] with α = 1 need
    one: their rate transfers from a tuned point, see ``lorascale transfer``). ``method`` gives a baseline
    its own default rate (PiSSA: η_FFT; docs/baselines.md); LoRA+ needs its optimizer passed to the
    trainer (``optimizers=(lorascale.loraplus_optimizer(model, lr), None)``), which no keyword sets.
    """
    from .train.config import TrainConfig

    given = {"rule": rule, "lr_fft": lr_fft, "init": init, "lr": lr, "method": method}
    if gamma is not None:  # None: the rule's default; given, refused for rules other than mua
        given["gamma"] = gamma
    cfg = TrainConfig.from_sources(None, given)  # every problem at once
    return recipe_args(cfg)


def recipe_args(cfg) -> dict:
    """The ``TrainingArguments`` keywords of one :class:`~lorascale.train.config.TrainConfig`'s recipe."""
    return {
        "learning_rate": cfg.peak_lr(),
        **_warmup(cfg.warmup_frac),
        "lr_scheduler_type": SCHEDULER,
        "lr_scheduler_kwargs": {"min_lr_rate": cfg.min_lr_ratio},
        "optim": "adamw_torch",
        "weight_decay": cfg.weight_decay,
        "adam_beta1": cfg.beta1,
        "adam_beta2": cfg.beta2,
        "adam_epsilon": cfg.eps,
        "max_grad_norm": cfg.grad_clip,
        **_precision(cfg.precision),
    }


def _precision(precision: str) -> dict:
    """``bf16``/``fp16`` flags from lorascale's precision, reconciled with the device and the launcher as a
    lorascale run does (:func:`lorascale.train.precision.mixed_precision`): "auto" trains in bf16 on a GPU
    and fp32 on a CPU (TRL's configs default to bf16 everywhere, which a CPU-only machine refuses)."""
    import torch

    from .train.precision import mixed_precision

    chosen = mixed_precision(precision, torch.cuda.is_available())
    return {"bf16": chosen == "bf16", "fp16": chosen == "fp16"}


def checkpointing_arg(enabled: bool) -> dict:
    """``TrainingArguments``' switch for activation checkpointing: ``activation_checkpointing`` where it
    exists (transformers 5.x, which deprecates ``gradient_checkpointing`` for removal in v6), else
    ``gradient_checkpointing``."""
    name = "activation_checkpointing" if "activation_checkpointing" in _argument_names() else "gradient_checkpointing"
    return {name: enabled}


def _warmup(fraction: float) -> dict:
    """transformers 4.x takes ``warmup_ratio``; 5.x removed it and reads a ``warmup_steps`` below 1 as
    that fraction of the steps. Both give ⌈fraction·T⌉ warm-up steps, as lorascale's schedule does."""
    return {"warmup_ratio": fraction} if "warmup_ratio" in _argument_names() else {"warmup_steps": fraction}


@functools.cache
def _argument_names() -> frozenset[str]:
    """The fields of the installed transformers' ``TrainingArguments`` (they move between releases)."""
    import dataclasses

    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))
