"""lorascale report: the papers' figures and fit tables from a stored sweep, as Markdown (and HTML)."""

from __future__ import annotations

from ..errors import ConfigError, ConfigErrors, collecting
from ..outputs import check_output_dir
from ..sweep.fit import FitSettings
from .fit import add_study_args, load_records
from .flags import add_settings_args, given


def register(sub) -> None:
    p = sub.add_parser("report", help="draw μA Figs 2–5 and LoRA-α Fig. 1b–c from a stored sweep, with the fit tables")
    add_study_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for report.md, report.html and the PNGs")
    add_settings_args(p, FitSettings, only=("bootstrap",))  # every selection is drawn: no --metric
    p.add_argument("--no-html", action="store_true", help="write report.md only")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..sweep.report import write_report

    errors, settings = [], None
    with collecting(errors):
        settings = FitSettings(**given(args, FitSettings))
    with collecting(errors):
        check_output_dir(args.out, "out", what="report")
    with collecting(errors):
        name, records, pending = load_records(args)
    ConfigErrors.raise_if_any(errors)
    if not records:
        raise ConfigError("study", f"study {name!r} has no finished runs yet", "run `lorascale sweep` first")
    md = write_report(records, args.out, name, n_boot=settings.bootstrap, html_too=not args.no_html, pending=pending)
    print(f"wrote {md}" + ("" if args.no_html else f" and {md.with_suffix('.html')}"))
    return 0
