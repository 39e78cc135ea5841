"""lorascale coord-check: do μA's feature-update terms stay flat across rank and width? (μP-style check)"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from ..diagnostics.coord_spec import CoordCheckSettings
from ..errors import ConfigErrors, collecting
from .common import dumps, print_json, request_with_names, table
from .flags import add_settings_args

TABLE_TERMS = ("delta1", "delta2", "delta3", "z_b", "update_a", "update_b")
FILES = {"figure": "coord_check.png", "terms_figure": "coord_check_terms.png", "measurements": "measurements.csv",
         "report": "coord_check.json"}  # what it writes into --out


def register(sub) -> None:
    p = sub.add_parser("coord-check", help="train a few steps at several ranks/widths and check that μA's feature-update "
                                           "terms stay flat (a coordinate check, as microsoft/mup does for μP)")
    add_settings_args(p, CoordCheckSettings, defaults={"configs": "all five", "ranks": "4 16 64 256"})  # shown in --help
    p.add_argument("--json", action="store_true", help="print slopes, intervals and verdicts as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..diagnostics.coord_check import coord_check

    from ..outputs import check_output_dir, only_named

    errors, settings, out = [], None, None
    with collecting(errors):
        settings = request_with_names(CoordCheckSettings, args)  # a misspelt --model with the other problems
    with collecting(errors):  # before the runs: their results must have somewhere to go, never over other files than its own
        out = check_output_dir(getattr(args, "out_dir", None) or f"runs/coord-check-{time.strftime('%Y%m%d-%H%M%S')}",
                               "out_dir", fresh=True, what="coord-check", own=only_named(FILES.values()))
    ConfigErrors.raise_if_any(errors)
    result = coord_check(settings)
    report = result.to_dict()
    report["files"] = _write(result, report, out)
    if args.json:
        print_json(report)
        return 0
    _print_readable(report)
    return 0


def _write(result, report: dict, out: Path) -> dict:
    from ..diagnostics.coord_plots import coord_plot_info, render_coord_check, terms_plot_info

    out.mkdir(parents=True, exist_ok=True)
    labels = {c.value: c.label for c in result.settings.configs}
    files = {
        "figure": str(render_coord_check(coord_plot_info(result.measurements, result.fits, "z_b"), out / FILES["figure"],
                                         labels)),
        "terms_figure": str(render_coord_check(terms_plot_info(result.measurements, result.fits, result.settings.steps),
                                               out / FILES["terms_figure"], labels)),
        "measurements": str(out / FILES["measurements"]),
        "report": str(out / FILES["report"]),
    }
    with open(files["measurements"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(result.measurements[0]._fields if result.measurements else [])
        w.writerows(result.measurements)
    Path(files["report"]).write_text(dumps({**report, "files": files}))
    return files


def _print_readable(report: dict) -> None:
    s = report["settings"]
    print(f"coordinate check of {', '.join(report['widths'])}: {report['runs']} runs of {s['steps']} steps "
          f"in {report['seconds']:.1f} s (models loaded in {report['load_seconds']:.1f} s)")
    print(f"learning rates: {s['lr_rule']}"
          + (f", μA anchored at η = {s['ref_lr']:g} (width {report['reference']['width']}, rank {s['ref_rank']})"
             if s["lr_rule"] == "mua" else f", η = {s['ref_lr']:g} for every μA run")
          + f"; LoRA-α at η_FFT = {s['lr_fft']:g}\n")
    for config, entry in report["configs"].items():
        for axis in ("rank", "width"):
            if axis not in entry:
                continue
            a = entry[axis]
            fixed = "width" if axis == "rank" else "rank"
            print(f"{entry['label']} — against {axis} {a['sizes']} at {fixed} {a['at']}, step {a['step']}, "
                  f"η ∝ {axis}^{a['lr_exponent']:+.2f}")
            rows = [[term, *_cells(a["terms"][term])] for term in TABLE_TERMS if term in a["terms"]]
            print(table(rows, ["term", "slope", "95% CI", "verdict", "order in η", "η exponent fix"]) + "\n")
    for name, path in report["files"].items():
        print(f"wrote {path}" if name != "report" else f"wrote {path} (everything above, as JSON)")


def _cells(t: dict) -> list[str]:
    num = lambda v: "-" if v is None else f"{v:+.3f}"  # noqa: E731
    ci = "-" if t["ci"] is None else f"[{t['ci'][0]:+.2f}, {t['ci'][1]:+.2f}]"
    return [num(t["slope"]), ci, t["verdict"], "-" if t["eta_order"] is None else f"{t['eta_order']:.2f}", num(t["correction"])]
