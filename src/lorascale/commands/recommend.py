"""lorascale recommend: per-layer scales, the exact LoraConfig, and the learning rate for a rule."""

from __future__ import annotations

from ..recommend import RecommendRequest
from .common import print_json, request_with_names, table
from .flags import add_settings_args


def register(sub) -> None:
    p = sub.add_parser("recommend", help="the LoraConfig and learning rate a scaling rule gives for a model")
    add_settings_args(p, RecommendRequest)
    p.add_argument("--json", action="store_true", help="print JSON (peft_config, lr, layers)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..recommend import recommend

    req = request_with_names(RecommendRequest, args)  # a misspelt --model with the other flags' problems
    adapter = req.adapter
    rec = recommend(req.model, adapter, req.lr_fft, quiet=args.json)
    if args.json:
        print_json(rec.to_dict())
        return 0
    print(f"model {rec.model}   rank {adapter.rank}   rule {adapter.scaling.rule}   init {adapter.init}"
          f"   method {adapter.method}\n")
    rows = [[g["type"], g["count"], g["d_in"], g["d_out"], f"{g['scale']:.4g}", f"{g['lora_alpha']:.4g}"] for g in rec.groups()]
    print(table(rows, ["layer type", "count", "d_in", "d_out", "scale s", "lora_alpha"]))
    kw = rec.plan.peft_kwargs()
    print("\nLoraConfig(")
    for k in ("r", "lora_alpha", "alpha_pattern", "use_rslora", "target_modules", "lora_dropout"):
        print(f"    {k}={kw[k]!r},")
    for k, default in (("use_dora", False), ("init_lora_weights", True),  # what the method sets
                       ("task_type", None), ("modules_to_save", None)):  # what the model's task sets
        if kw[k] != default:
            print(f"    {k}={kw[k]!r},")
    print(")")
    if adapter.init != "kaiming":
        print(f"# then re-initialise: lorascale.adapters.apply_init(peft_model, '{adapter.init}')")
    lr = f"{rec.lr:.3g}" if rec.lr is not None else "(needs a tuned reference point)"
    print(f"\nlearning rate: {lr}   # {rec.lr_note}")
    if rec.lr_b is not None:
        print(f"B factors (LoRA+): {rec.lr_b:.3g}   # peft.optimizers.create_loraplus_optimizer(model, AdamW, lr={rec.lr:.3g},"
              f" loraplus_lr_ratio={adapter.loraplus_ratio():g}), or lorascale.loraplus_optimizer(model, {rec.lr:.3g})")
    if rec.scale_note:
        print(f"scale: {rec.scale_note}")
    return 0
