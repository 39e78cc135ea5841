"""Assemble a run from its config: data (checked first), model, adapters, loaders, optimizer groups."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..adapters import LoraPlan, apply_init, plan_lora
from ..data import load_examples, make_loaders, tokenise
from ..errors import ConfigError
from ..models import LoadedModel, load_model
from ..rules import Finetune
from ..vocabulary import Task
from .config import TrainConfig

__all__ = ["BuiltRun", "build_run", "param_groups", "HEAD_NAMES"]

# Parameters of a freshly initialised classification head (BERT: classifier, Llama: score).
HEAD_NAMES = ("classifier", "score")


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


def build_run(cfg: TrainConfig, quiet: bool = False) -> BuiltRun:
    import torch

    examples = load_examples(cfg.data, cfg.task)  # bad data fails here, before any model loads
    task = examples.kind.task
    loaded = load_model(cfg.model, task=task, num_labels=max(2, len(examples.label_names)), seed=cfg.seed, quiet=quiet)
    if loaded.task is not task:
        raise ConfigError("data", f"{cfg.data} is a {task} dataset but {cfg.model} is a {loaded.task} model",
                          "pick data and a model for the same task")
    cap = None if cfg.max_examples is None else math.ceil(cfg.max_examples / (1 - cfg.val_fraction)) + 8
    data = tokenise(examples, loaded.tokenizer, cfg.seq_len, cap)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    train_loader, val_loader = make_loaders(data, cfg.batch_size, cfg.val_fraction, cfg.seed, pad, cfg.max_examples)

    model, plan = loaded.model, None
    if cfg.finetune is Finetune.LORA:
        from peft import get_peft_model

        plan = plan_lora(loaded.model, cfg.adapter, loaded.default_targets, task_type=task.peft_task_type)
        torch.manual_seed(cfg.seed)  # PEFT's kaiming init of A draws from the global generator
        model = get_peft_model(loaded.model, plan.config)
        apply_init(model, cfg.adapter.init, seed=cfg.seed)
    return BuiltRun(model, loaded.tokenizer, train_loader, val_loader, task, loaded, plan, examples.label_names)


def param_groups(model, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: backbone/adapters at the peak lr, a fresh classification head at ``head_lr``.

    μA (App. B.1) fixes the head's learning rate at 1e-3 and sweeps only the adapter/backbone rate;
    both groups follow the same warm-up/cosine shape. Weight decay 0.01 applies to every group.
    """
    body, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if any(f".{h}." in f".{name}." for h in HEAD_NAMES) else body).append(p)
    if not body:
        raise RuntimeError("no trainable backbone/adapter parameters: the adapter was not applied")
    groups = [{"params": body, "lr": cfg.peak_lr(), "peak_lr": cfg.peak_lr(), "name": "body"}]
    if head:
        groups.append({"params": head, "lr": cfg.head_lr, "peak_lr": cfg.head_lr, "name": "head"})
    return groups
