"""Which training configs can be members of one pack (one frozen base, one process).

Members share the frozen base model, the tokenised data and one stacked batch per step, so what
decides the model, the data, the batch shape and the step count must be equal; everything a LoRA
run owns (rank, rule, init, targets, seed, learning rates and schedule, LoRA+'s ratio, AdamW settings,
clipping, EMA, divergence guard, output directory) may differ. Configs the batched engine cannot compute
(full finetuning, DoRA, PiSSA, OLoRA, LoRA dropout) train alone: :func:`solo_reason` says why. Torch-free: a sweep worker groups its points
by :func:`pack_key` before it loads anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigError, ConfigErrors
from ...methods import PACKABLE_METHODS, Method
from ...rules import Finetune

__all__ = ["PACK_FIELDS", "packable", "pack_key", "pack_errors", "check_pack", "member_names", "solo_reason"]

# What members must share. model/data/task: one base and one tokenised data set; steps/epochs: one
# loop; batch_size/grad_accum/seq_len: one stacked batch shape; max_examples/val_fraction: the same
# split (members then differ only in their seed's order); max_val_batches/eval_every: evaluation is
# one stacked pass over the shared validation set; precision: one autocast context; gradient_checkpointing:
# the base's layers recompute their forward in the backward pass, for every member at once.
PACK_FIELDS = (
    "model", "data", "task", "steps", "epochs", "batch_size", "grad_accum", "seq_len", "max_examples",
    "val_fraction", "max_val_batches", "eval_every", "precision", "gradient_checkpointing",
)


def solo_reason(cfg) -> tuple[str, str, str] | None:
    """(field, why, fix) when ``cfg`` must train as a separate run, never as a member; None when it may.

    Members share one frozen, unchanged base and compute plain LoRA's ΔY = s·B·A·x batched
    (:mod:`.batched_lora`). Full finetuning trains the base; DoRA rescales each output column by its
    magnitude over ‖W₀ + s·B·A‖; PiSSA and OLoRA rewrite the base weights per adapter (W₀ − s·B₀·A₀).
    LoRA+ only changes the optimizer's groups and packs like plain LoRA.
    """
    if cfg.finetune is not Finetune.LORA:
        return ("finetune", "full finetuning trains the base itself; a pack shares one frozen base",
                "train it on its own with train()")
    from ...train.loop import is_rlvr

    if is_rlvr(cfg):
        return ("task", "an rlvr run trains inside TRL's GRPOTrainer, which generates with one model at a time",
                "train it on its own with train() (sweeps do so by themselves)")
    method = cfg.adapter.method
    if method not in PACKABLE_METHODS:
        why = ("DoRA rescales each output column by its magnitude over ‖W₀ + s·B·A‖" if method is Method.DORA else
               f"{method.value} rewrites the base weights for its adapter (W₀ − s·B₀·A₀)")
        return ("method", f"method {method.value} cannot be a member: {why}, and members share one unchanged base"
                          " with plain LoRA's ΔY = s·B·A·x", "train it on its own with train() (sweeps do so by themselves)")
    if cfg.adapter.lora_dropout > 0:
        return ("lora_dropout", f"lora_dropout {cfg.adapter.lora_dropout:g} draws a mask per adapter input, which the batched"
                " forward does not", "train it on its own with train() (sweeps do so by themselves), or set lora_dropout 0")
    return None


def packable(cfg) -> bool:
    """Whether ``cfg`` can be a member of a pack (:func:`solo_reason` says why not)."""
    return solo_reason(cfg) is None


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
        return [ConfigError("members", "no configs given", "pass at least one TrainConfig")]
    errors: list[ConfigError] = []
    for i, cfg in enumerate(cfgs):
        reason = solo_reason(cfg)
        if reason is not None:
            field, why, fix = reason
            errors.append(ConfigError(field, f"member {i}: {why}", fix=fix))
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
