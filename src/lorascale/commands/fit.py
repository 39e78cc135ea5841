"""lorascale fit: η* per configuration and rank, slopes against μA, LoRA-α paths and α*(r), from a stored sweep."""

from __future__ import annotations

from ..errors import ConfigError, ConfigErrors
from ..sweep.optima import FIT_METRICS
from .common import print_json, table


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit η* per rank, the rank slope vs μA, the FFT gap and LoRA-α's α*(r) from a sweep")
    add_study_args(p)
    p.add_argument("--metric", default="ema", help="what optima are selected on: "
                   + "; ".join(f"{k}: {v}" for k, v in FIT_METRICS.items()) + " (default ema)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over seeds for the CIs (default 1000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


MAX_BOOTSTRAP = 100_000  # a CI's Monte Carlo error is ~1/√B: 1e5 resamples is far past useful


def bootstrap_errors(n: int) -> list[ConfigError]:
    if 0 <= n <= MAX_BOOTSTRAP:
        return []
    return [ConfigError("bootstrap", f"must be in [0, {MAX_BOOTSTRAP}], got {n}", "1000 resamples give CIs to ~3%")]


def add_study_args(p) -> None:
    p.add_argument("--storage", required=True, help="Optuna storage URL: sqlite:///FILE.db, journal:FILE.log, ...")
    p.add_argument("--study", help="study name, i.e. the spec's name (default: the only study in the storage)")


def load_records(args):
    """The stored records of ``--study`` (the storage's only study when not given), read-only."""
    from ..sweep.storage import SweepStore, study_names

    name = args.study
    if name is None:
        names = study_names(args.storage)
        if len(names) != 1:
            raise ConfigError("study", f"the storage holds {len(names)} studies ({', '.join(names) or 'none'})",
                              "name one with --study")
        name = names[0]
    return name, SweepStore.open(args.storage, name).records()


def run(args) -> int:
    from ..sweep.fit import fit
    from ..sweep.report import fit_tables, fit_to_dict

    errors = []
    if args.metric not in FIT_METRICS:
        errors.append(ConfigError("metric", f"must be one of {', '.join(FIT_METRICS)}, got {args.metric!r}",
                                  "ema selects like μA; val_loss on the held-out set"))
    errors += bootstrap_errors(args.bootstrap)
    ConfigErrors.raise_if_any(errors)
    name, records = load_records(args)
    if not records:
        raise ConfigError("study", f"study {name!r} has no finished runs yet", "run `lorascale sweep` first")
    rep = fit(records, args.metric, n_boot=args.bootstrap)
    if args.json:
        print_json({"study": name, **fit_to_dict(rep)})
        return 0
    print(f"study {name}: {rep.counts['complete']} complete, {rep.counts['diverged']} diverged,"
          f" {rep.counts['failed']} failed, {rep.counts['interrupted']} interrupted runs\n")
    for title, headers, rows in fit_tables(rep):
        print(title)
        print(table(rows, headers))
        print()
    for note in rep.notes:
        print(f"note: {note}")
    return 0
