"""Assemble a pack: one base model and data set, one PEFT adapter (and head) per member.

Each member is created and initialised by the same calls, with the same seed, as a separate run's
:func:`lorascale.train.build.build_run`: ``torch.manual_seed(seed)`` right before PEFT adds its adapter
(PEFT's kaiming init of A draws from the global generator, layer by layer in module order), then
:func:`~lorascale.adapters.apply_init` with the member's seed, and a head from :func:`init_head` with
its seed. Its factors and head therefore start bit for bit where a separate run's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...adapters import LoraPlan, apply_init
from ...models import head_module, init_head
from ...vocabulary import Task
from ..build import Base, enable_activation_checkpointing, load_base, plan_adapter, run_loaders
from ..config import TrainConfig
from .pack import check_pack, member_names

__all__ = ["Pack", "build_pack"]


@dataclass
class Pack:
    cfgs: list[TrainConfig]
    names: list[str]  # PEFT adapter name of each member
    model: object  # PeftModel holding every member's adapter (and head copy)
    base: Base
    train_loaders: list  # one per member: its seed's order over the shared training split
    val_loader: object  # shared: the split and the validation order do not depend on the seed
    plans: list[LoraPlan]

    @property
    def task(self) -> Task:
        return self.base.task


def build_pack(cfgs: Sequence[TrainConfig], quiet: bool = False) -> Pack:
    import torch
    from peft import get_peft_model

    cfgs = list(cfgs)
    check_pack(cfgs)
    base = load_base(cfgs[0], quiet)
    loaders = [run_loaders(cfg, base) for cfg in cfgs]
    plans = [plan_adapter(cfg, base) for cfg in cfgs]  # planned on the bare model, as a separate run's
    names = member_names(len(cfgs))
    model = base.loaded.model
    if cfgs[0].gradient_checkpointing:  # as build_run, before PEFT wraps the base
        enable_activation_checkpointing(model, frozen_base=True)
    for k, (cfg, plan, name) in enumerate(zip(cfgs, plans, names)):
        torch.manual_seed(cfg.seed)  # as build_run: PEFT's kaiming init of A draws from the global generator
        if k == 0:
            model = get_peft_model(model, plan.config, adapter_name=name)
        else:
            model.add_adapter(name, plan.config)
        apply_init(model, cfg.adapter.init, seed=cfg.seed, adapter=name)
    if base.task is Task.CLASSIFICATION:  # PEFT gave each member a copy of the head: draw each from its seed
        hf = model.get_base_model()
        wrapper = head_module(hf)
        for cfg, name in zip(cfgs, names):
            init_head(hf, cfg.seed, head=wrapper.modules_to_save[name])
    # PEFT trains only its active adapter; a pack trains them all
    for pname, p in model.named_parameters():
        if any(f".{name}." in f".{pname}." for name in names):
            p.requires_grad_(True)
    return Pack(cfgs, names, model, base, [tr for tr, _ in loaders], loaders[0][1], plans)
