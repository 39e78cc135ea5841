"""Which training configs can be members of one pack (one frozen base, one process).

Members share the frozen base model, the tokenised data and one stacked batch per step, so what
decides the model, the data, the batch shape and the step count must be equal; everything a LoRA
run owns (rank, rule, init, targets, seed, learning rates and schedule, AdamW settings, clipping,
EMA, divergence guard, output directory) may differ. Torch-free: a sweep worker groups its points
by :func:`pack_key` before it loads anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigError, ConfigErrors
from ...rules import Finetune

__all__ = ["PACK_FIELDS", "packable", "pack_key", "pack_errors", "check_pack", "member_names"]

# What members must share. model/data/task: one base and one tokenised data set; steps/epochs: one
# loop; batch_size/grad_accum/seq_len: one stacked batch shape; max_examples/val_fraction: the same
# split (members then differ only in their seed's order); max_val_batches/eval_every: evaluation is
# one stacked pass over the shared validation set; precision: one autocast context.
PACK_FIELDS = (
    "model", "data", "task", "steps", "epochs", "batch_size", "grad_accum", "seq_len", "max_examples",
    "val_fraction", "max_val_batches", "eval_every", "precision",
)


def packable(cfg) -> bool:
    """Whether ``cfg`` can be a member at all: LoRA on a frozen base, with lorascale's own loop (rlvr
    trains inside TRL's GRPOTrainer, which generates with one model at a time)."""
    from ...train.loop import is_rlvr

    return cfg.finetune is Finetune.LORA and not is_rlvr(cfg)


def pack_key(cfg) -> tuple:
    """Configs with equal keys can train as members of one pack. The key holds ``finetune`` too, so a
    full-finetuning config never groups with LoRA ones (and :func:`pack_errors` refuses it alone)."""
    return (("finetune", cfg.finetune),) + tuple((name, getattr(cfg, name)) for name in PACK_FIELDS)


def member_names(k: int) -> list[str]:
    """PEFT adapter names of k members. Equal width, so no name is a substring of another: PEFT
    selects an adapter's tensors by substring (``member1`` would also pick ``member10``'s)."""
    width = max(2, len(str(k - 1)))
    return [f"member{i:0{width}d}" for i in range(k)]


def pack_errors(cfgs: Sequence) -> list[ConfigError]:
    """Every reason ``cfgs`` cannot train as one pack; each error names the config field."""
    if not cfgs:
        return [ConfigError("members", "no configs given; pass at least one TrainConfig")]
    errors: list[ConfigError] = []
    for i, cfg in enumerate(cfgs):
        if cfg.finetune is not Finetune.LORA:
            errors.append(ConfigError("finetune", f"member {i} is full finetuning, which trains the base itself; a pack"
                                                  " shares one frozen base", fix="train it on its own with train()"))
        elif not packable(cfg):
            errors.append(ConfigError("task", f"member {i} is an rlvr run, which trains inside TRL's GRPOTrainer",
                                      fix="train it on its own with train()"))
    first = cfgs[0]
    for name in PACK_FIELDS:
        odd = [i for i, cfg in enumerate(cfgs) if getattr(cfg, name) != getattr(first, name)]
        if odd:
            errors.append(ConfigError(name, f"members must share {name}: member 0 has {getattr(first, name)!r}, member"
                                            f" {odd[0]} has {getattr(cfgs[odd[0]], name)!r}",
                                      fix="group configs by lorascale.train.members.pack_key"))
    dirs = [str(cfg.out_dir) for cfg in cfgs if cfg.out_dir]
    twice = sorted({d for d in dirs if dirs.count(d) > 1})
    if twice:
        errors.append(ConfigError("out_dir", f"members would share the run directory {twice[0]}",
                                  fix="give each member its own out_dir (or none for a fresh one)"))
    return errors


def check_pack(cfgs: Sequence) -> None:
    """Raise :class:`ConfigErrors` listing every problem with the pack at once."""
    ConfigErrors.raise_if_any(pack_errors(cfgs))
