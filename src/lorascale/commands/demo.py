"""lorascale demo: standard LoRA vs LoRA-α at the full-finetuning learning rate (the README's main job)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError, ConfigErrors
from ..outputs import check_output_dir
from .common import print_json, table


def register(sub) -> None:
    p = sub.add_parser("demo", help="standard LoRA (α = r) vs LoRA-α at η_FFT on an embedded model; table + PNG")
    p.add_argument("--task", choices=["lm", "classification"], default="lm",
                   help="lm: SmolLM2-135M on Shakespeare (default); classification: MiniLM on Shakespeare genres")
    p.add_argument("--seeds", type=int, default=1, help="seeds per arm (spread is reported; default 1)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's step budget")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5, help="learning rate for both arms (default η_FFT = 2e-5)")
    p.add_argument("--model", default=None, help="override the preset model (e.g. tiny-llama for a smoke run)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/demo-<time>; never overwritten)")
    p.add_argument("--report-only", action="store_true",
                   help="read the runs of an earlier demo in --out back (same arguments) and redraw; trains nothing")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..demo import demo_plot_info, read_demo, render_demo, run_demo

    errors = []
    if args.seeds < 1:
        errors.append(ConfigError("seeds", f"must be ≥ 1, got {args.seeds}", "use 1 or more seeds"))
    if args.steps is not None and args.steps < 1:
        errors.append(ConfigError("steps", f"must be ≥ 1, got {args.steps}", "use 1 or more steps"))
    if not args.lr > 0:
        errors.append(ConfigError("lr", "must be > 0", "LoRA-α uses the full-finetuning learning rate, e.g. 2e-5"))
    if args.report_only and args.out is None:
        errors.append(ConfigError("out", "report_only reads an earlier demo's folder", "give it as --out"))
    elif args.out is None:  # each `make demo` gets its own folder, so running it twice just works
        args.out = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.report_only:
        try:
            check_output_dir(args.out, "out", fresh=True, what="demo")
        except ConfigError as e:
            errors.append(e)
    ConfigErrors.raise_if_any(errors)
    overrides = {k: v for k, v in (("steps", args.steps), ("model", args.model)) if v is not None}
    if args.report_only:
        result = read_demo(args.task, args.seeds, args.rank, args.lr, args.out, **overrides)
    else:
        result = run_demo(args.task, args.seeds, args.rank, args.lr, args.out, progress=not args.quiet, **overrides)
    png = render_demo(demo_plot_info(result), args.out / "loss_curves.png")
    rows = result.rows()
    if args.json:
        print_json({"task": result.task, "lr": result.lr, "rank": result.rank, "rows": rows, "figure": str(png)})
        return 0
    metric = "val accuracy" if args.task == "classification" else "val NLL/token"
    print()
    print(table([[r["arm"], _pm(r["ema_loss"], r["ema_loss_std"], r["seeds"]), _pm(r["eval"], r["eval_std"], r["seeds"]),
                  f"{r['time_s']:.0f}s", ",".join(r["statuses"])] for r in rows],
                ["arm", "EMA train loss", metric, "time/run", "status"]))
    print(f"\nboth arms at η = {result.lr:g}, rank {result.rank}, {rows[0]['seeds']} seed(s); curves: {png}")
    if rows[0]["seeds"] == 1:
        print("one seed: differences below ~0.1 in loss are within seed noise; use --seeds 3 to see the spread", file=sys.stderr)
    return 0


def _pm(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f}" if n == 1 else f"{mean:.4f} ± {std:.4f}"
