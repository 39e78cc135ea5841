"""lorascale recommend: per-layer scales, the exact LoraConfig, and the learning rate for a rule."""

from __future__ import annotations

from .common import add_lr_fft_arg, add_rule_args, check_lr, finish, print_json, rule_spec_from_args, table


def register(sub) -> None:
    p = sub.add_parser("recommend", help="the LoraConfig and learning rate a scaling rule gives for a model")
    p.add_argument("--model", "-m", default="smollm2-135m", help="smollm2-135m, minilm-l6, tiny-llama, tiny-bert or a path")
    add_rule_args(p)
    add_lr_fft_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON (peft_config, lr, layers)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..adapters import AdapterSpec
    from ..recommend import recommend

    errors = []
    spec = rule_spec_from_args(args, errors)
    check_lr("--lr-fft", args.lr_fft, errors)
    finish(errors)
    adapter = AdapterSpec(rank=args.rank, rule=spec, init=args.init, targets=tuple(args.targets) if args.targets else None)
    rec = recommend(args.model, adapter, args.lr_fft, quiet=args.json)
    if args.json:
        print_json(rec.to_dict())
        return 0
    print(f"model {rec.model}   rank {adapter.rank}   rule {spec.rule.value}   init {adapter.init.value}\n")
    rows = [[g["type"], g["count"], g["d_in"], g["d_out"], f"{g['scale']:.4g}", f"{g['lora_alpha']:.4g}"] for g in rec.groups()]
    print(table(rows, ["layer type", "count", "d_in", "d_out", "scale s", "lora_alpha"]))
    kw = rec.plan.peft_kwargs()
    print("\nLoraConfig(")
    for k in ("r", "lora_alpha", "alpha_pattern", "use_rslora", "target_modules", "lora_dropout"):
        print(f"    {k}={kw[k]!r},")
    print(")")
    if adapter.init.value != "kaiming":
        print(f"# then re-initialise: lorascale.adapters.apply_init(peft_model, '{adapter.init.value}')")
    lr = f"{rec.lr:.3g}" if rec.lr is not None else "(needs a tuned reference point)"
    print(f"\nlearning rate: {lr}   # {rec.lr_note}")
    return 0
