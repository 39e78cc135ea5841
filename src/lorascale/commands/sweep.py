"""lorascale sweep SPEC.yaml: run every point of a sweep spec into Optuna storage; re-running resumes."""

from __future__ import annotations

import sys

from ..errors import ConfigErrors, collecting
from ..sweep.run_settings import SweepRunSettings
from .flags import add_settings_args, given


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep spec (μA lr grids, LoRA-α paths) into Optuna storage; re-run to resume")
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec, e.g. configs/sweep-tiny.yaml")
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///FILE.db, journal:FILE.log, postgresql://... "
                   "(default: SQLite next to the spec)")
    add_settings_args(p, SweepRunSettings, title="how the sweep runs")
    p.add_argument("--extend-study", action="store_true",
                   help="add this spec's points to an existing study of the same name that holds another spec's"
                        " points (refused without this flag, so that two specs are never mixed by accident)")
    p.add_argument("--dry-run", action="store_true", help="validate the spec and show what would run; store nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..interrupts import describe, exit_code
    from ..sweep.executors import plan_sweep, run_sweep
    from ..sweep.inputs import check_inputs
    from ..sweep.spec import load_spec
    from ..sweep.backends import check_url
    from ..sweep.storage import default_storage_url

    errors, run_settings = [], None
    with collecting(errors):
        run_settings = SweepRunSettings(**given(args, SweepRunSettings))
    spec = None
    with collecting(errors):
        spec = load_spec(args.spec)
    url = args.storage or (default_storage_url(args.spec) if spec is not None else None)
    with collecting(errors):  # a storage that cannot be created or is not Optuna's is refused before anything is stored
        if url is not None:
            check_url(url)
    ConfigErrors.raise_if_any(errors)
    if args.dry_run:
        check_inputs(spec)
        plan = plan_sweep(spec, url, extend_study=args.extend_study)
        print(f"study {spec.name} in {url}: {plan.points} points, {plan.done} done, {plan.queued} queued or running,"
              f" {plan.to_run} to enqueue")
        for p in spec.points[:20]:
            rank = "FFT" if p.rank is None else f"r={p.rank}"
            path = " ".join(f"{k}-path m={m:g}" for k, m in p.paths)
            print(f"  {p.key}  {p.label:<24} {rank:<6} log2 η={p.log2_lr:+.2f}  α×{p.alpha_mult:g}  seed {p.seed}  {path}")
        if len(spec.points) > 20:
            print(f"  ... {len(spec.points) - 20} more")
        return 0
    try:
        r = run_settings
        res = run_sweep(spec, url, workers=r.workers, backend=r.backend, address=r.address, members=r.members,
                        progress=not args.quiet, cpus=r.cpus_per_trial, gpus=r.gpus_per_trial, extend_study=args.extend_study)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: running trials were recorded interrupted
        print(f"\nlorascale sweep: interrupted by {describe(e)}; finished points are stored in {url}."
              " Run the same command to resume.", file=sys.stderr)
        return exit_code(e)
    c = res.by_point
    print(f"study {res.study} in {res.storage}: {res.points} points; {res.done_before} were done, {res.ran} ran now")
    print(f"points: {c['finished']} finished (diverged runs included), {c['failed']} failed or interrupted"
          f" (re-run to retry), {c['queued'] + c['missing']} still queued or running")
    print(f"next: lorascale fit --storage {res.storage} --study {res.study}")
    return 0
