"""Assemble a run from its config: data (checked first), model, adapters, loaders, optimizer groups."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from ..adapters import AdapterSpec, LoraPlan, apply_init, plan_lora
from ..adapters.convert import InitialAdapter, snapshot_initial
from ..data import load_examples, make_loaders, tokenise
from ..data.batches import TokenisedData, contrastive_batch_errors
from ..errors import ConfigError, ConfigErrors, collecting
from ..models import HEAD_NAMES, LoadedModel, init_head, load_model, position_limit
from ..rules import Finetune
from ..schema import leaf_fields
from ..vocabulary import Task
from .config import TrainConfig
from .loraplus import loraplus_lrs

__all__ = ["BuiltRun", "Base", "build_run", "check_run", "load_base", "run_loaders", "plan_adapter", "attach_adapter",
           "param_groups", "HEAD_NAMES", "enable_activation_checkpointing"]


@dataclass
class BuiltRun:
    model: object  # PEFT-wrapped model (LoRA) or the plain model (full finetuning)
    tokenizer: object
    train_loader: object
    val_loader: object
    task: Task
    loaded: LoadedModel
    plan: LoraPlan | None
    label_names: list[str]
    initial_adapter: InitialAdapter | None = None  # PiSSA/OLoRA's initial factors, for saving as plain LoRA


@dataclass
class Base:
    """What runs on the same model and data share: the loaded model and the tokenised examples."""

    loaded: LoadedModel
    task: Task
    data: TokenisedData
    pad_id: int
    label_names: list[str]


def load_base(cfg: TrainConfig, quiet: bool = False) -> Base:
    examples = load_examples(cfg.data, cfg.task)  # bad data fails here, before any model loads
    task = examples.kind.task
    if task is Task.CONTRASTIVE:
        errors = contrastive_batch_errors(cfg.batch_size, cfg.grad_accum)
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    loaded = load_model(cfg.model, task=task, num_labels=max(2, len(examples.label_names)), quiet=quiet)
    if loaded.task is not task:
        raise ConfigError("data", f"{cfg.data} is a {task} dataset but {cfg.model} is a {loaded.task} model",
                          "pick data and a model for the same task")
    check_positions(cfg, loaded)
    cap = None if cfg.max_examples is None else math.ceil(cfg.max_examples / (1 - cfg.val_fraction)) + 8
    data = tokenise(examples, loaded.tokenizer, cfg.seq_len, cap)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    return Base(loaded, task, data, pad, examples.label_names)


def check_run(cfg: TrainConfig, unchecked: Collection[str] = ()) -> Task | None:
    """What :func:`build_run` would refuse about the data, the model and the adapter, every problem at once,
    found without loading weights (the model is built on the meta device): for callers that store or create
    things first. Returns the task the run trains (the data's, when ``cfg.task`` leaves it open).

    ``unchecked``: settings whose values in ``cfg`` only stand in for refused ones (a command reporting every
    problem at once checks the rest of the run this way); the checks that read them are skipped, and the task is
    None when it cannot be known."""
    errors: list[ConfigError] = []
    if {"data", "task"} & set(unchecked):
        return None
    examples = load_examples(cfg.data, cfg.task)  # what the rest is judged against: its problem stops the check
    task = examples.kind.task
    if "model" in unchecked:
        return task
    loaded = load_model(cfg.model, task=task, num_labels=max(2, len(examples.label_names)), quiet=True, weights=False)
    if loaded.task is not task:  # the model's checks below would judge the wrong model
        raise ConfigError("data", f"{cfg.data} is a {task} dataset but {cfg.model} is a {loaded.task} model",
                          "pick data and a model for the same task")
    if "seq_len" not in unchecked:
        with collecting(errors):
            check_positions(cfg, loaded)
    if cfg.finetune is Finetune.LORA and not _ADAPTER_SETTINGS & set(unchecked):
        with collecting(errors):
            plan_lora(loaded.model, cfg.adapter, loaded.default_targets, task_type=task.peft_task_type)
    ConfigErrors.raise_if_any(errors)
    return task


_ADAPTER_SETTINGS = frozenset(leaf_fields(AdapterSpec)) | {"finetune"}  # what plan_lora reads


def check_positions(cfg: TrainConfig, loaded: LoadedModel) -> None:
    """``seq_len`` within the model's positions: an encoder's absolute position table has
    ``max_position_embeddings`` rows, and a longer batch fails at its first forward (after the run began)."""
    limit = position_limit(loaded.model.config.to_dict())
    if limit is not None and cfg.seq_len > limit:
        raise seq_len_error(cfg.seq_len, cfg.model, limit)


def seq_len_error(seq_len: int, model: str, limit: int) -> ConfigError:
    return ConfigError("seq_len", f"{seq_len} tokens exceed {model}'s {limit} positions", f"use `seq_len` {limit} or less")


def run_loaders(cfg: TrainConfig, base: Base):
    """(train, val) loaders: the split is fixed, the training order is the run's ``seed``."""
    return make_loaders(base.data, cfg.batch_size, cfg.val_fraction, cfg.seed, base.pad_id, cfg.max_examples)


def plan_adapter(cfg: TrainConfig, base: Base) -> LoraPlan:
    return plan_lora(base.loaded.model, cfg.adapter, base.loaded.default_targets, task_type=base.task.peft_task_type)


def build_run(cfg: TrainConfig, quiet: bool = False) -> BuiltRun:
    base = load_base(cfg, quiet)
    train_loader, val_loader = run_loaders(cfg, base)
    model, plan, initial = base.loaded.model, None, None
    if base.task is Task.CLASSIFICATION:
        init_head(model, cfg.seed)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model, frozen_base=cfg.finetune is Finetune.LORA)
    if cfg.finetune is Finetune.LORA:
        model, plan = attach_adapter(model, cfg, base.loaded.default_targets, base.task)
        initial = snapshot_initial(model)
    return BuiltRun(model, base.loaded.tokenizer, train_loader, val_loader, base.task, base.loaded, plan, base.label_names,
                    initial)


def attach_adapter(model, cfg: TrainConfig, default_targets, task: Task):
    """``model`` wrapped by PEFT with the planned adapter, initialised by the config's init and seed."""
    import torch
    from peft import get_peft_model

    plan = plan_lora(model, cfg.adapter, default_targets, task_type=task.peft_task_type)
    torch.manual_seed(cfg.seed)  # PEFT's kaiming init of A draws from the global generator
    model = get_peft_model(model, plan.config)
    apply_init(model, cfg.adapter.init, seed=cfg.seed)
    return model, plan


def enable_activation_checkpointing(model, frozen_base: bool) -> None:
    """The model's own activation (gradient) checkpointing: each layer's forward runs again in the
    backward pass instead of keeping its activations. Non-reentrant ``torch.utils.checkpoint``, as torch
    recommends. With a frozen base (LoRA) the embeddings' output must require grad, or a checkpointed
    segment whose inputs need no grad would return none (``enable_input_require_grads``, as PEFT's
    ``prepare_model_for_kbit_training`` does); transformers 5 already does that, 4.x does not."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if frozen_base and getattr(model, "_require_grads_hook", None) is None:
        model.enable_input_require_grads()


def param_groups(model, cfg: TrainConfig, adapter: str | None = None) -> list[dict]:
    """AdamW groups: backbone/adapters at the peak lr, a fresh classification head at ``head_lr``.

    μA (App. B.1) fixes the head's learning rate at 1e-3 and sweeps only the adapter/backbone rate;
    both groups follow the same warm-up/cosine shape. Weight decay 0.01 applies to every group. Under
    LoRA+ (``adapter.loraplus_ratio()``) the body splits as PEFT's ``create_loraplus_optimizer`` splits it
    (:mod:`.loraplus`): B factors and 1-D parameters at ratio × the peak lr.
    Each group carries the config's AdamW settings, so one optimizer can hold several runs' groups.
    ``adapter`` keeps the parameters of one PEFT adapter (a member of a pack, :mod:`.members`);
    None keeps every trainable parameter (a separate run has one adapter).
    """
    body, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and (adapter is None or f".{adapter}." in f".{name}."):
            (head if any(f".{h}." in f".{name}." for h in HEAD_NAMES) else body).append(p)
    if not body:
        raise RuntimeError(f"no trainable backbone/adapter parameters{f' of adapter {adapter}' if adapter else ''}:"
                           " the adapter was not applied")
    adamw = {"betas": (cfg.beta1, cfg.beta2), "eps": cfg.eps, "weight_decay": cfg.weight_decay}
    peak = cfg.peak_lr()
    ratio = cfg.adapter.loraplus_ratio() if cfg.finetune is Finetune.LORA else None
    if ratio is None:
        groups = [{"params": body, "lr": peak, "peak_lr": peak, "name": "body", **adamw}]
    else:  # LoRA+: PEFT's assignment of each parameter's rate; the first group is A's (at the peak lr)
        lrs = loraplus_lrs(model, peak, ratio)
        by_lr: dict[float, list] = {peak: []}
        for p in body:
            by_lr.setdefault(lrs[id(p)], []).append(p)
        names = {peak: "body", peak * ratio: "body_B"}  # anything else: LoRA on embeddings, at PEFT's fixed rate
        groups = [{"params": ps, "lr": lr, "peak_lr": lr, "name": names.get(lr, "body_embedding"), **adamw}
                  for lr, ps in by_lr.items() if ps]
    if head:
        groups.append({"params": head, "lr": cfg.head_lr, "peak_lr": cfg.head_lr, "name": "head", **adamw})
    return groups
