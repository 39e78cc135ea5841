"""lorascale transfer: μA learning-rate transfer across rank, width, and to full finetuning."""

from __future__ import annotations

from ..errors import ConfigError
from .common import check_lr, finish, print_json

CONFIGS = {
    "A": ("lora", "A"),
    "B": ("lora", "B"),
    "fft": ("full", "B"),
}


def register(sub) -> None:
    p = sub.add_parser("transfer", help="predict the learning rate at another rank/width/config from a tuned one (μA)")
    p.add_argument("--lr", type=float, required=True, help="the learning rate tuned at the reference point")
    p.add_argument("--from-rank", type=int, help="rank of the reference run")
    p.add_argument("--to-rank", type=int, help="rank to predict for (default: same)")
    p.add_argument("--from-width", type=int, required=True, help="width n of the reference model (hidden size)")
    p.add_argument("--to-width", type=int, help="width to predict for (default: same)")
    p.add_argument("--init", default="B", help="reference config: A, B (LoRA init) or fft")
    p.add_argument("--to", dest="to_init", default=None, help="target config: A, B or fft (default: same)")
    p.add_argument("--gamma", type=float, default=0.0, help="μA exponent of the multiplier α = r^-γ (both sides)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..rules import MuAConfig, RuleError, mua_lr_exponents, transfer_lr
    from .common import rule_error_to_config

    errors: list[ConfigError] = []
    check_lr("--lr", args.lr, errors)
    to_init = args.to_init or args.init
    for flag, v in (("--init", args.init), ("--to", to_init)):
        if v not in CONFIGS:
            errors.append(ConfigError(flag, f"unknown configuration {v!r}; choose A, B or fft"))
    for flag, v in (("--from-rank", args.from_rank), ("--to-rank", args.to_rank), ("--from-width", args.from_width), ("--to-width", args.to_width)):
        if v is not None and v <= 0:
            errors.append(ConfigError(flag, f"must be a positive integer, got {v}"))
    if args.init != "fft" and args.from_rank is None and not errors:
        errors.append(ConfigError("--from-rank", "a LoRA reference needs its rank; pass --from-rank R"))
    finish(errors)
    try:
        src = MuAConfig(*CONFIGS[args.init], gamma=args.gamma)
        dst = MuAConfig(*CONFIGS[to_init], gamma=args.gamma)
        r1 = args.to_rank if args.to_rank is not None else args.from_rank
        n1 = args.to_width or args.from_width
        lr1 = transfer_lr(args.lr, n0=args.from_width, r0=args.from_rank, n1=n1, r1=r1, src=src, dst=dst)
        exps = mua_lr_exponents(n1, r1 or 1, dst)
    except RuleError as e:
        finish([rule_error_to_config(e)])
        raise AssertionError("unreachable")
    out = {
        "from": {"config": src.label, "rank": args.from_rank, "width": args.from_width, "lr": args.lr},
        "to": {"config": dst.label, "rank": r1, "width": n1, "lr": lr1},
        "exponents": {"width": exps[0], "rank": exps[1]},
    }
    if args.json:
        print_json(out)
    else:
        print(f"{src.label} at r={args.from_rank}, n={args.from_width}: η = {args.lr:.4g}")
        print(f"{dst.label} at r={r1}, n={n1}: η = {lr1:.4g}   (η ∝ n^{exps[0]:g} · r^{exps[1]:g})")
    return 0
