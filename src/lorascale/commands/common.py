"""Flags shared by several commands, and their conversion to typed specs (all errors at once)."""

from __future__ import annotations

import argparse
import json
import math

from ..errors import ConfigError, ConfigErrors
from ..rules import DEFAULT_C, DEFAULT_LR_FFT, Init, RuleError, RuleSpec, ScaleRule

RULE_CHOICES = [r.value for r in ScaleRule]
INIT_CHOICES = [i.value for i in Init]


def add_rule_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scaling rule")
    g.add_argument("--rank", "-r", type=int, default=16, help="LoRA rank r (default 16)")
    g.add_argument("--rule", default=ScaleRule.LORA_ALPHA.value, help=f"one of: {', '.join(RULE_CHOICES)}")
    g.add_argument("--alpha", type=float, default=1.0, help="LoRA-α knob α (default 1)")
    g.add_argument("--c", type=float, default=DEFAULT_C, help="LoRA-α Variant I constant C (default 256)")
    g.add_argument("--lora-alpha", type=float, default=16.0, help="lora_alpha for fixed-alpha and rslora (default 16)")
    g.add_argument("--gamma", type=float, default=0.0, help="μA multiplier exponent: α = r^-γ (rule mua)")
    g.add_argument("--init", default=Init.KAIMING.value, help=f"adapter init: {', '.join(INIT_CHOICES)}")
    g.add_argument("--targets", nargs="+", default=None, help="target module names (default: μA Table 3 placement)")


def rule_spec_from_args(args, errors: list[ConfigError]) -> RuleSpec | None:
    if args.rule not in RULE_CHOICES:
        errors.append(ConfigError("--rule", f"unknown rule {args.rule!r}; choose one of {', '.join(RULE_CHOICES)}"))
    if args.init not in INIT_CHOICES:
        errors.append(ConfigError("--init", f"unknown init {args.init!r}; choose one of {', '.join(INIT_CHOICES)}"))
    for flag, value in (("--alpha", args.alpha), ("--c", args.c), ("--lora-alpha", args.lora_alpha)):
        if not (math.isfinite(value) and value > 0):
            errors.append(ConfigError(flag, f"must be a finite number > 0, got {value!r}"))
    if not (0.0 <= args.gamma <= 1.0):
        errors.append(ConfigError("--gamma", f"must be in [0, 1], got {args.gamma!r}; μA uses 0, 0.5 or 1"))
    if args.rank is not None and args.rank <= 0:
        errors.append(ConfigError("--rank", f"must be a positive integer, got {args.rank}; typical ranks are 8 to 256"))
    if errors:
        return None
    try:
        return RuleSpec(rule=args.rule, alpha=args.alpha, c=args.c, lora_alpha=args.lora_alpha, gamma=args.gamma)
    except RuleError as e:
        errors.append(rule_error_to_config(e))
        return None


def rule_error_to_config(e: RuleError) -> ConfigError:
    field, _, msg = str(e).partition(": ")
    return ConfigError("--" + field.replace("_", "-"), msg)


def add_lr_fft_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr-fft", type=float, default=DEFAULT_LR_FFT, help="full-finetuning learning rate (default 2e-5)")


def check_lr(flag: str, value: float, errors: list[ConfigError]) -> None:
    if not (math.isfinite(value) and value > 0):
        errors.append(ConfigError(flag, f"must be a finite number > 0, got {value!r}; e.g. 2e-5"))


def finish(errors: list[ConfigError]) -> None:
    ConfigErrors.raise_if_any(errors)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if hasattr(o, "value"):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def table(rows: list[list], headers: list[str]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])
