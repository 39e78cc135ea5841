"""lorascale repro mlp-dynamics|mlp-spectra|headline|compare: LoRA-α Appendix E, the headline benchmark and the
methods × tasks comparison, end to end (figures + tables)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, ConfigErrors, collecting
from ..outputs import check_output_dir
from ..repro.compare import CompareRequest
from ..repro.headline import HeadlineRequest
from ..repro.mlp import MLPSetup
from .common import print_json, request_with_names, table
from ..schema import flatten
from .flags import add_settings_args, given, show_default

EXPERIMENTS = ("mlp-dynamics", "mlp-spectra", "headline", "compare")
DEFAULT_D = {"mlp-dynamics": 256, "mlp-spectra": 32}  # App. E: d = 256 for dynamics, 32 for exact spectra
MLP_SEEDS = 3  # App. E averages its curves over seeds; 3 as everywhere in lorascale's benchmarks


def register(sub) -> None:
    p = sub.add_parser("repro", help="reproduce LoRA-α App. E (η- vs α-scaling dynamics, Hessian spectra), the headline"
                                     " benchmark, and the methods × tasks comparison")
    p.add_argument("experiment", metavar="EXPERIMENT", help=" or ".join(EXPERIMENTS))
    shown = defaults_by_experiment()
    seeds = p.add_argument("--seeds", default=argparse.SUPPRESS, help=f"number of seeds to average (default {shown['seeds']})")
    seeds.setting = HeadlineRequest.model_fields["seeds"]  # every experiment's seeds: a positive whole number
    p.add_argument("--out", default=None, help="output folder for figures and tables (default repro-<experiment>)")
    add_settings_args(p, MLPSetup, title="App. E setup (rank and steps also set the headline's and compare's budget)",
                      only=("d", "n", "rank", "steps"), defaults=shown)
    add_settings_args(p, HeadlineRequest, title="headline: every TrainConfig setting, and the sweeps",
                      exclude=("rank", "steps", "seeds", "out", "lr", "out_dir", "save_model"), defaults=shown)
    add_settings_args(p, CompareRequest, title="compare: methods × tasks (rank, steps, seeds and out also apply)",
                      only=("tasks", "methods", "sweep_log2", "base_lr"), defaults=shown)
    p.add_argument("--no-extend", action="store_true", help="mlp-dynamics: do not extend the grids past their edge")
    p.add_argument("--json", action="store_true", help="print the measured numbers as JSON")
    p.set_defaults(run=run)


def defaults_by_experiment() -> dict[str, str]:
    """Each flag's default as --help shows it: the experiments' own settings models disagree (rank 16 in
    App. E and the headline, 8 in compare; the headline's run is MiniLM on genre, not TrainConfig's
    SmolLM2), so a flag whose default differs names each experiment's."""
    mlp = {e: {**flatten(MLPSetup()), "d": d, "seeds": MLP_SEEDS} for e, d in DEFAULT_D.items()}
    per = {**mlp, "headline": flatten(HeadlineRequest()), "compare": flatten(CompareRequest())}
    out = {}
    for name in {k for values in per.values() for k in values}:
        by_value: dict[str, list[str]] = {}  # the shown value → the experiments with it as their default
        for e, values in per.items():
            if values.get(name) is not None:
                by_value.setdefault(show_default(values[name]), []).append(e)
        if name == "steps":
            by_value.setdefault("each task's budget", []).append("compare")
        if len(by_value) == 1:
            out[name] = next(iter(by_value))
        elif by_value:
            out[name] = "; ".join(f"{v} ({', '.join(es)})" for v, es in by_value.items())
    return out


def run(args) -> int:
    errors = []
    if args.experiment not in EXPERIMENTS:
        errors.append(ConfigError("experiment", f"unknown experiment {args.experiment!r}", f"choose {' or '.join(EXPERIMENTS)}"))
    seeds = getattr(args, "seeds", str(MLP_SEEDS))
    if args.experiment not in ("headline", "compare"):  # their requests check their own seeds
        if not seeds.isdigit() or int(seeds) < 1:
            errors.append(ConfigError("seeds", f"must be a whole number ≥ 1, got {seeds!r}", f"the paper-style average uses {MLP_SEEDS}"))
    errors += _flags_of_the_other_experiments(args)
    setup = None
    with collecting(errors):  # report the setup's problems together with the flags' (one error list)
        if args.experiment == "headline":
            setup = request_with_names(HeadlineRequest, args)  # --seeds and --out are its fields too
        elif args.experiment == "compare":
            setup = CompareRequest(**given(args, CompareRequest))
        else:
            setup = MLPSetup(**{"d": DEFAULT_D.get(args.experiment, 32), **given(args, MLPSetup)})
    out = args.out or (setup.out if isinstance(setup, HeadlineRequest) else None) or f"repro-{args.experiment}"
    with collecting(errors):  # before minutes of compute: the results must have somewhere to go
        check_output_dir(out, "out", what="repro")
    ConfigErrors.raise_if_any(errors)
    if args.experiment == "headline":
        from ..repro.headline import run_headline

        result = run_headline(setup, progress=not args.json)
        print_json(result) if args.json else print((Path(result["figure"]).parent / "headline.md").read_text())
        return 0

    if args.experiment == "compare":
        from ..repro.compare import run_compare

        result = run_compare(setup, progress=not args.json)
        print_json(result) if args.json else print((Path(setup.out or "repro-compare") / "compare.md").read_text())
        return 0

    from ..repro import mlp_dynamics, mlp_spectra

    seeds = list(range(int(seeds)))
    if args.experiment == "mlp-dynamics":
        result = mlp_dynamics(out, seeds, setup, extend=not args.no_extend, progress=not args.json)
    else:
        result = mlp_spectra(out, seeds, setup, progress=not args.json)
    if args.json:
        print_json(result)
        return 0
    _print_readable(args.experiment, result)
    return 0


def _flags_of_the_other_experiments(args) -> list[ConfigError]:
    """A flag the chosen experiment does not read is refused rather than silently ignored."""
    reads = {"mlp-dynamics": set(given(args, MLPSetup)), "mlp-spectra": set(given(args, MLPSetup)),
             "headline": set(given(args, HeadlineRequest)), "compare": set(given(args, CompareRequest))}
    if args.experiment not in reads:
        return []
    unused = set().union(*reads.values()) - reads[args.experiment] - {"seeds", "out"}
    errors = []
    for f in sorted(unused):
        owner = " and ".join(e for e, fields in reads.items() if f in fields)
        errors.append(ConfigError(f, f"applies to {owner} only, not to {args.experiment}", f"drop it, or run {owner}"))
    return errors


def _print_readable(experiment: str, result: dict) -> None:
    if experiment == "mlp-dynamics":
        rows = [[p, f"×{result[p]['best_multiplier']:g}", f"{result[p]['best_loss']:.4g}"] for p in ("eta", "alpha")]
        print(table(rows, ["path", "best multiplier", "final loss"]))
        print(f"base (×1): {result['base_loss']:.4g}   seeds {result['seeds']}   {result['seconds']} s")
    else:
        rows = [[p["rank"], f"{p['predicted']:.4g}", f"{p['measured']:.4g}", f"{p['ratio']:.3f}"] for p in result["trace_pairs"]]
        print(table(rows, ["rank", "predicted Tr H_signal", "measured", "ratio"]))
        g = result["growth_exponents"]
        print(f"growth in α: λ_max[H_signal] slope {g['signal_lambda_max']:.2f} (paper 2), "
              f"|λ_min[H_drift]| slope {g['drift_abs_lambda_min']:.2f} (paper 1)   {result['seconds']} s")
    print("\nagainst the paper:")
    for f in result["findings"]:
        print(f"  [{f['verdict']}] {f['claim']}\n      {f['measured']}")
    print("\nwrote " + ", ".join(result["files"].values()))
