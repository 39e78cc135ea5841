"""lorascale sweep SPEC.yaml: run every point of a sweep spec into Optuna storage; re-running resumes."""

from __future__ import annotations

import math
import sys

from ..errors import ConfigError, ConfigErrors

BACKENDS = ("local", "ray")


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep spec (μA lr grids, LoRA-α paths) into Optuna storage; re-run to resume")
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec, e.g. configs/sweep-tiny.yaml")
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///FILE.db, journal:FILE.log, postgresql://... "
                   "(default: SQLite next to the spec)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes; they split the CPU cores (default 1)")
    p.add_argument("--members", default="1", metavar="K|auto",
                   help="train up to K compatible points at once on one frozen base (auto: as many as fit in memory;"
                        " default 1). Results equal separate runs")
    p.add_argument("--backend", default="local", help="local (default) or ray")
    p.add_argument("--address", help="Ray cluster address for --backend ray (default: start a local Ray)")
    p.add_argument("--cpus-per-trial", type=float, help="Ray: CPUs per trial (default: the spec's resources.cpus)")
    p.add_argument("--gpus-per-trial", type=float, help="Ray: GPUs per trial (default: the spec's resources.gpus)")
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

    from ..sweep.packs import parse_members

    errors = _flag_errors(args)
    try:
        args.members = parse_members(args.members)
    except ConfigError as e:
        errors.append(e)
    spec = None
    try:
        spec = load_spec(args.spec)
    except ConfigErrors as e:
        errors += e.errors
    except ConfigError as e:
        errors.append(e)
    url = args.storage or (default_storage_url(args.spec) if spec is not None else None)
    try:  # a storage that cannot be created or is not Optuna's is refused before anything is stored
        if url is not None:
            check_url(url)
    except ConfigError as e:
        errors.append(e)
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
        res = run_sweep(spec, url, workers=args.workers, backend=args.backend, address=args.address, members=args.members,
                        progress=not args.quiet, cpus=args.cpus_per_trial, gpus=args.gpus_per_trial,
                        extend_study=args.extend_study)
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


def _flag_errors(args) -> list[ConfigError]:
    e = []
    if args.workers < 1:
        e.append(ConfigError("workers", f"must be ≥ 1, got {args.workers}", "use 1 or more workers"))
    if args.backend not in BACKENDS:
        e.append(ConfigError("backend", f"unknown backend {args.backend!r}", "choose local or ray"))
    if args.address and args.backend != "ray":
        e.append(ConfigError("address", "only applies to the ray backend", "drop it, or set `backend` to ray"))
    if args.backend == "ray" and args.workers != 1:
        e.append(ConfigError("workers", "Ray schedules one task per trial by its resources",
                             "set `cpus_per_trial` / `gpus_per_trial` instead of `workers`"))
    for flag, v in (("--cpus-per-trial", args.cpus_per_trial), ("--gpus-per-trial", args.gpus_per_trial)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            e.append(ConfigError(flag.lstrip("-").replace("-", "_"), f"must be ≥ 0, got {v}", "use 0 or more"))
    return e
