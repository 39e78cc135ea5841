"""lorascale check ADAPTER_DIR: lint a saved PEFT LoRA adapter's scale, per layer type, against its reference rule."""

from __future__ import annotations

import json

from ..errors import collecting
from ..rules import RuleSpec
from .common import print_json, table
from .flags import add_settings_args, given


def register(sub) -> None:
    p = sub.add_parser("check", help="lint a PEFT adapter: scale per layer type, the rule it matches, distance from LoRA-α")
    p.add_argument("adapter_dir", metavar="ADAPTER_DIR")
    # the LoRA-α constant C the adapter is judged against; shown in --help: a declared lora-alpha rule's C wins
    add_settings_args(p, RuleSpec, only=("c",), defaults={"c": "256; a lorascale.json declaring rule lora-alpha brings"
                                                               " its own C, which is used instead"})
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..adapters.lint import lint_adapter
    from ..errors import ConfigErrors

    errors, c, flags = [], None, given(args, RuleSpec)  # no --c: C = 256, or the one the adapter's lorascale.json declares
    with collecting(errors):
        c = RuleSpec(**flags).c if flags else None
    with collecting(errors):  # the folder is checked too (without --c when the flag is bad): every problem at once
        report = lint_adapter(args.adapter_dir, c=c)
    ConfigErrors.raise_if_any(errors)
    if args.json:
        print_json(report.to_dict())
        return 0
    rows = [
        [g.layer_type, g.count, g.d_in, g.d_out, g.rank, f"{g.lora_alpha:g}", f"{g.scale:.4g}", g.rule,
         f"{g.reference_scale:.4g}", _ratio(g.ratio) if report.judged else "not judged"]
        for g in report.groups
    ]
    print(table(rows, ["layer type", "layers", "d_in", "d_out", "r", "lora_alpha", "scale", "matches", "reference s", "vs reference"]))
    print(f"\nreference: {report.reference}")
    print(f"use_rslora: {report.use_rslora}")
    if report.preset:
        print(f"preset: {report.preset}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"verdict: {report.verdict}")
    if report.fix:
        print(f"fix (adapter_config.json / LoraConfig fields): {json.dumps(report.fix)}")
    return 0


def _ratio(x: float) -> str:
    return f"under-scaled {x:.3g}×" if x > 1.0001 else (f"over-scaled {1 / x:.3g}×" if x < 0.9999 else "matches")
