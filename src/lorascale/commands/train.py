"""lorascale train: fine-tune with LoRA (any rule, Init[A]/Init[B]) or fully, on the μA recipe.

Configuration comes from --config YAML and flags; flags override the file; every error is
reported at once before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

# flag -> (TrainConfig field, type, help); defaults live in TrainConfig, not here
FLAGS = {
    "--model": ("model", str, "smollm2-135m, minilm-l6, tiny-llama[@W], tiny-bert[@W] or a local HF folder"),
    "--data": ("data", str, "shakespeare, shakespeare-genre, kjv, dialogues, fine-foods, or a .jsonl/.csv/.txt/saved-dataset path"),
    "--task": ("task", str, "lm or classification (default: from the data)"),
    "--finetune": ("finetune", str, "lora (default) or full"),
    "--rank": ("rank", int, "LoRA rank"),
    "--rule": ("rule", str, "scaling rule (see `lorascale recommend --help`)"),
    "--alpha": ("alpha", float, "LoRA-α knob α (default 1)"),
    "--c": ("c", float, "LoRA-α Variant I constant C (default 256)"),
    "--lora-alpha": ("lora_alpha", float, "lora_alpha for fixed-alpha/rslora"),
    "--gamma": ("gamma", float, "μA exponent γ of α = r^-γ (rule mua)"),
    "--init": ("init", str, "kaiming (PEFT default), A or B (μA)"),
    "--lr": ("lr", float, "peak learning rate (default: the rule's, from --lr-fft)"),
    "--lr-fft": ("lr_fft", float, "full-finetuning learning rate the rules start from (default 2e-5)"),
    "--head-lr": ("head_lr", float, "classification head learning rate (default 1e-3, as μA)"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay (default 0.01)"),
    "--grad-clip": ("grad_clip", float, "global grad-norm clip (default 1.0)"),
    "--warmup-frac": ("warmup_frac", float, "linear warm-up fraction (default 0.05)"),
    "--min-lr-ratio": ("min_lr_ratio", float, "cosine floor as a fraction of the peak (default 0.1)"),
    "--steps": ("steps", int, "optimizer steps (default 100)"),
    "--epochs": ("epochs", float, "epochs instead of --steps"),
    "--batch-size": ("batch_size", int, "micro-batch size (default 8)"),
    "--grad-accum": ("grad_accum", int, "gradient accumulation steps (default 1)"),
    "--seq-len": ("seq_len", int, "sequence length / LM block size (default 128)"),
    "--max-examples": ("max_examples", int, "cap on training examples/blocks"),
    "--val-fraction": ("val_fraction", float, "held-out fraction (default 0.05)"),
    "--max-val-batches": ("max_val_batches", int, "validation batches per evaluation (default 8)"),
    "--eval-every": ("eval_every", int, "evaluate every k steps (default 0: at the end)"),
    "--log-every": ("log_every", int, "write metrics every k steps (default 1)"),
    "--seed": ("seed", int, "random seed (default 0)"),
    "--precision": ("precision", str, "auto (bf16 on GPU, fp32 on CPU), fp32 or bf16"),
    "--out": ("out_dir", str, "run directory (default runs/<time>-<model>-<rule>-...)"),
}


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model with LoRA (any rule/init) or fully, on the μA recipe")
    add_train_args(p)
    p.set_defaults(run=run)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of TrainConfig keys; flags override it")
    for flag, (name, typ, help_) in FLAGS.items():
        p.add_argument(flag, dest=name, type=typ, default=argparse.SUPPRESS, help=help_)
    p.add_argument("--targets", nargs="+", default=argparse.SUPPRESS, help="target module names")
    p.add_argument("--no-save", dest="save_model", action="store_false", default=argparse.SUPPRESS, help="don't save the adapter/model")
    p.add_argument("--diagnostics", nargs="+", default=None, metavar="NAME", help="attach monitors: signal-drift, feature-updates")
    p.add_argument("--diag-every", type=int, default=1, help="monitor every k steps (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args, base=None):
    from ..errors import ConfigError, ConfigErrors
    from ..train.config import TrainConfig, config_from_mapping, load_yaml

    from_file = load_yaml(args.config) if getattr(args, "config", None) else {}
    from_flags = {name: getattr(args, name) for name, _, _ in FLAGS.values() if name in vars(args)}
    from_flags |= {name: getattr(args, name) for name in ("targets", "save_model") if name in vars(args)}
    # steps and epochs are one budget choice: the source with the higher precedence that sets either decides
    budget_source = from_flags if {"steps", "epochs"} & set(from_flags) else from_file
    mapping = from_file | from_flags
    if "epochs" in budget_source and "steps" not in budget_source:
        mapping["steps"] = None
    elif "steps" in budget_source and "epochs" not in budget_source:
        mapping["epochs"] = None
    try:
        cfg = config_from_mapping(mapping, base or TrainConfig())
    except TypeError as e:
        raise ConfigError("--config", str(e)) from None
    ConfigErrors.raise_if_any([_as_flag(e) for e in cfg.errors()])
    return cfg


FIELD_TO_FLAG = {name: flag for flag, (name, _, _) in FLAGS.items()}


def _as_flag(e):
    """Name both the flag and the YAML key (``--batch-size (batch_size)``): the value may come from either."""
    from ..errors import ConfigError

    flag = FIELD_TO_FLAG.get(e.field)
    return ConfigError(f"{flag} ({e.field})" if flag else e.field, e.message)


def make_diagnostics(args) -> list:
    if not args.diagnostics:
        return []
    from ..diagnostics import make_callbacks

    return make_callbacks(args.diagnostics, every=args.diag_every)


def run(args) -> int:
    from ..train import train

    cfg = config_from_args(args)
    callbacks = make_diagnostics(args)
    try:
        result = train(cfg, callbacks, progress=not args.quiet)
    except KeyboardInterrupt:
        print("\nlorascale train: interrupted; the run directory is marked interrupted", file=sys.stderr)
        return 130
    metric = f"{result.eval_metric} {result.eval_value:.4f}" if result.eval_value is not None else "no eval"
    print(f"{result.status}: EMA loss {result.final_ema_loss:.4f}, {metric}, {result.wall_time:.1f}s -> {result.run_dir}")
    if result.status == "diverged":
        print(f"lorascale train: run diverged: {result.message}", file=sys.stderr)
    return 0
