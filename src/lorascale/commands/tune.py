"""lorascale tune: the best α and learning rate for your model, rank and data, at a fraction of a grid's cost."""

from __future__ import annotations

import argparse

from ..errors import ConfigErrors
from ..tune.request import TuneRequest
from .common import print_json, request_with_names, table
from .flags import add_settings_args, describe, given


def register(sub) -> None:
    p = sub.add_parser("tune", help="find α and η for a model/data/rank: LoRA-α's prior, μA's η_FFT transfer, successive"
                                    " halving over members; resumable")
    add_settings_args(p, TuneRequest, exclude=("lr", "out_dir", "save_model"),  # unset, these follow the prior
                      defaults={"alpha": "1; the search's prior for lora-alpha rules",
                                "lora_alpha": "256·√r for fixed-alpha, 256 for rslora, LoRA-α's multiplier; the"
                                              " search's prior for those rules"})
    # not a setting of tune (it searches the rate), but accepted so that TuneRequest refuses it with its fix: any
    # value becomes a rate, which it always refuses (`--lr none` would otherwise unset it, and tune would run)
    p.add_argument("--lr", type=lambda value: 1.0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the answer as JSON (peft_config, lr, recipe, compute)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..tune import tune
    from ..tune.search import destination_errors

    try:
        req = request_with_names(TuneRequest, args)
    except ConfigErrors as e:  # where tune would write, with the flags' problems (tune checks both itself when they pass)
        values, named = given(args, TuneRequest), {x.field for x in e.errors}

        def unrefused(key: str) -> str | None:  # a folder or URL given and not already refused as written
            value = values.get(key)
            return value if isinstance(value, str) and key not in named else None

        raise ConfigErrors(e.errors + destination_errors(unrefused("tune_dir"), unrefused("storage"))) from None
    res = tune(req, progress=not (args.quiet or args.json))
    d = res.to_dict()
    if args.json:
        print_json(d)
        return 0
    c = d["compute"]
    g = c["reference_grid"]
    print(f"η_FFT = {res.lr_fft:.3g} ({res.lr_fft_source})")
    rows = [[f"{x.lr:.3g}", f"{x.alpha:.3g}", x.steps_done, x.pruned_at or "", x.status,
             "" if x.final_ema_loss is None else f"{x.final_ema_loss:.4f}",
             "" if x.mean_ema is None else f"{x.mean_ema:.4f} ({len(x.seed_ema)})", "←" if i == res.search.best else ""]
            for i, x in enumerate(res.search.candidates)]
    print(table(rows, ["lr", "α knob", "steps", "cut at", "status", "EMA loss", "mean over seeds", ""]))
    print(f"\nchosen: lr = {d['lr']:.3g}, {d['rule']} α = {d['alpha']:.3g}; LoraConfig {d['peft_config']}")
    if res.confirm is not None:
        print(f"the finalists were trained again at {len(res.search.chosen.seed_ema) - 1} more seed(s)"
              f" ({c['confirm_member_steps']} member-steps)")
    print(f"selection: {d['selection']}")
    print(f"compute: {c['member_steps']} member-steps = {c['runs_equivalent']:.2f} full runs"
          f" ({d['compute_fraction']:.0%} of the {g['learning_rates']}-rate × {g['seeds']}-seed grid,"
          f" {g['member_steps']} member-steps)")
    print(f"study: {res.storage}   figure: {res.figure}   answer: {res.out_dir / 'tune.json'}")
    for w in res.edges:
        print(f"warning: {describe(w, args.parser)}")
    return 0
