"""lorascale check ADAPTER_DIR: lint a saved PEFT LoRA adapter's scale against LoRA-α."""

from __future__ import annotations

from ..errors import ConfigError
from .common import print_json, table


def register(sub) -> None:
    p = sub.add_parser("check", help="lint a PEFT adapter: per-layer scale, the rule it matches, distance from LoRA-α")
    p.add_argument("adapter_dir", metavar="ADAPTER_DIR")
    p.add_argument("--c", type=float, default=256.0, help="LoRA-α constant C to compare against (default 256)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..adapters.lint import lint_adapter

    from ..errors import ConfigErrors
    from ..schema import PositiveFloat, checked

    errors = []
    try:
        checked(PositiveFloat, "c", args.c, "LoRA-α Variant I uses C = 256")
    except ConfigError as e:
        errors.append(e)
    try:
        report = lint_adapter(args.adapter_dir, c=args.c) if not errors else None
    except ConfigError as e:
        errors.append(e)
    ConfigErrors.raise_if_any(errors)
    if args.json:
        print_json(report.to_dict())
        return 0
    rows = [
        [ly.name, ly.d_in, ly.d_out, ly.rank, f"{ly.lora_alpha:g}", f"{ly.scale:.4g}", ly.rule,
         f"{ly.lora_alpha_scale:.4g}", _ratio(ly.ratio_vs_lora_alpha)]
        for ly in report.layers
    ]
    print(table(rows, ["module", "d_in", "d_out", "r", "lora_alpha", "scale", "matches", "LoRA-α scale", "vs LoRA-α"]))
    print(f"\nuse_rslora: {report.use_rslora}")
    print(f"verdict: {report.verdict}")
    return 0


def _ratio(x: float) -> str:
    return f"under-scaled {x:.3g}×" if x > 1.0001 else (f"over-scaled {1 / x:.3g}×" if x < 0.9999 else "matches")
