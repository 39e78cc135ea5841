"""lorascale demo: standard LoRA vs LoRA-α at the full-finetuning learning rate (the README's main job)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError, ConfigErrors, collecting
from ..outputs import check_output_dir
from ..demo import DemoRequest
from ..vocabulary import Task
from .common import print_json, request_with_names, table
from .flags import add_settings_args


def register(sub) -> None:
    p = sub.add_parser("demo", help="standard LoRA (α = r) vs LoRA-α at η_FFT on an embedded model; table + PNG")
    add_settings_args(p, DemoRequest)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..demo import demo_plot_info, read_demo, render_demo, run_demo

    errors, req = [], None
    with collecting(errors):
        req = request_with_names(DemoRequest, args)  # a misspelt --model with the other flags' problems
    out = getattr(args, "out", None)
    if getattr(args, "report_only", False) and out is None:
        errors.append(ConfigError("out", "report_only reads an earlier demo's folder", "give that folder as `out`"))
    out = Path(out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")  # each `make demo` its own folder
    if not getattr(args, "report_only", False):
        with collecting(errors):
            check_output_dir(out, "out", fresh=True, what="demo")
    ConfigErrors.raise_if_any(errors)
    if req.report_only:
        result = read_demo(req.task, req.seeds, req.rank, req.lr, out, **req.overrides())
    else:
        result = run_demo(req.task, req.seeds, req.rank, req.lr, out, progress=not args.quiet, **req.overrides())
    png = render_demo(demo_plot_info(result), out / "loss_curves.png")
    rows = result.rows()
    if args.json:
        print_json({"task": result.task, "lr": result.lr, "rank": result.rank, "rows": rows, "figure": str(png)})
        return 0
    metric = "val accuracy" if req.task == Task.CLASSIFICATION else "val NLL/token"
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
