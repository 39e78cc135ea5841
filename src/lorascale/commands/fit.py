"""lorascale fit: η* per configuration and rank, slopes against μA, LoRA-α paths and α*(r), from a stored sweep."""

from __future__ import annotations

from ..errors import ConfigError, ConfigErrors, collecting
from ..sweep.fit import FitSettings
from .common import print_json, table
from .flags import flags_in_text
from .flags import add_settings_args, given


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit η* per rank, the rank slope vs μA, the FFT gap and LoRA-α's α*(r) from a sweep")
    add_study_args(p)
    add_settings_args(p, FitSettings)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def add_study_args(p) -> None:
    p.add_argument("--storage", required=True, help="Optuna storage URL: sqlite:///FILE.db, journal:FILE.log, ...")
    p.add_argument("--study", help="study name, i.e. the spec's name (default: the only study in the storage)")


def load_records(args):
    """(name, the stored records, how many points are still queued or running) of ``--study`` (the
    storage's only study when not given), read-only."""
    from ..sweep.storage import SweepStore, study_names

    name = args.study
    if name is None:
        names = study_names(args.storage)
        if len(names) != 1:
            raise ConfigError("study", f"the storage holds {len(names)} studies ({', '.join(names) or 'none'})",
                              "name one with --study")
        name = names[0]
    store = SweepStore.open(args.storage, name)
    return name, store.records(), store.pending()


def run(args) -> int:
    from ..sweep.fit import fit
    from ..sweep.report import fit_tables, fit_to_dict

    errors, settings, records, pending = [], None, None, 0
    with collecting(errors):
        settings = FitSettings(**given(args, FitSettings))
    with collecting(errors):  # the storage's problems with the flags' (one error list)
        name, records, pending = load_records(args)
    ConfigErrors.raise_if_any(errors)
    if not records:
        raise ConfigError("study", f"study {name!r} has no finished runs yet", "run `lorascale sweep` first")
    rep = fit(records, settings.metric, n_boot=settings.bootstrap, pending=pending)
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
        print(f"note: {flags_in_text(note, getattr(args, 'parser', None))}")
    return 0
