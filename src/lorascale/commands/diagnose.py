"""lorascale diagnose RUN_DIR: plot a run's diagnostic traces; --lanczos: curvature of its adapter."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigErrors, collecting
from ..outputs import check_output_dir, only_named
from ..diagnostics.run import CurvatureSettings
from .common import print_json, table
from .flags import add_settings_args, given

PREFIXES = {"sd": "signal/drift (LoRA-α Prop. 1–2)", "fu": "feature updates (μA eq. 1)"}
FIGURES = {prefix: f"{prefix}_traces.png" for prefix in PREFIXES}  # what it writes into --out


def register(sub) -> None:
    p = sub.add_parser("diagnose", help="plot a run's signal/drift and feature-update traces; --lanczos: Hessian extremes and trace")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with metrics.jsonl (lorascale train, or HF Trainer with our callback)")
    p.add_argument("--out", default=None, help="folder for the figures (default RUN_DIR/diagnostics)")
    p.add_argument("--lanczos", action="store_true", help="estimate λ_max, λ_min (Lanczos) and the trace (Hutchinson) of H_LoRA and H_signal")
    add_settings_args(p, CurvatureSettings, title="--lanczos")
    p.add_argument("--json", action="store_true", help="print the per-layer-type summary (and curvature) as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..diagnostics.run import read_metrics

    errors, settings, records = [], None, None
    with collecting(errors):
        settings = CurvatureSettings(**given(args, CurvatureSettings))
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "diagnostics"
    with collecting(errors):  # before any plot or Hessian: the figures must have somewhere to go (RUN_DIR's own problems come below)
        if args.out or run_dir.is_dir():
            check_output_dir(out, "out", fresh=True, what="figures", own=only_named(FIGURES.values()))  # never over other files
    with collecting(errors):  # RUN_DIR's problems with the flags'
        records = read_metrics(run_dir)
    ConfigErrors.raise_if_any(errors)

    from ..diagnostics.plots import render_traces, trace_info, trace_summary
    from ..diagnostics.run import run_curvature

    result: dict = {"run_dir": str(run_dir), "steps_logged": len(records), "files": {}, "summary": {}}
    for prefix, title in PREFIXES.items():
        info = trace_info(records, prefix)
        if info.series:
            result["files"][prefix] = str(render_traces(info, out / FIGURES[prefix], title))
            result["summary"][prefix] = trace_summary(info)
    if args.lanczos:
        result["curvature"] = run_curvature(
            run_dir, settings.lanczos_steps, settings.hutchinson_samples, settings.batch_size, progress=not args.json
        )
    if args.json:
        print_json(result)
        return 0
    _print_readable(result)
    return 0


def _print_readable(result: dict) -> None:
    if not result["summary"]:
        print(f"{result['run_dir']}: no diagnostics in metrics.jsonl ({result['steps_logged']} records);"
              " train with --diagnostics signal-drift feature-updates")
    for prefix, kinds in result["summary"].items():
        metrics = sorted({m for v in kinds.values() for m in v})
        rows = [[kind] + [f"{kinds[kind][m]['median']:.3g}" if m in kinds[kind] else "-" for m in metrics] for kind in sorted(kinds)]
        print(f"{PREFIXES[prefix]}: median over logged steps")
        print(table(rows, ["layer type"] + metrics) + "\n")
    if "curvature" in result:
        c = result["curvature"]
        rows = [[f"H_{p}", f"{c[p]['lambda_max']:.4g}", f"{c[p]['lambda_min']:.4g}", f"{c[p]['trace']:.4g} ± {c[p]['trace_stderr']:.2g}"]
                for p in ("lora", "signal")]
        print(f"curvature on {c['batch_size']} validation examples ({c['dim']} adapter parameters, loss {c['loss']:.4g}):")
        print(table(rows, ["Hessian", "λ_max", "λ_min", "trace (Hutchinson)"]))
    for f in result["files"].values():
        print(f"wrote {f}")
