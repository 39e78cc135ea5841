"""Sweeps: μA learning-rate grids and LoRA-α scaling paths, run into Optuna storage, fitted and drawn.

spec       YAML spec → validated points with stable keys
storage    the Optuna study: queue, claims, heartbeats, results (no database layer of our own)
executors  local worker processes or Ray tasks that claim and run points; resume
fit        pure fits: η* per rank, slopes vs μA, FFT gap, LoRA-α paths and α*(r)
plots      figure data (pure) and matplotlib renderers
report     fit tables, JSON, Markdown/HTML report

Importing this package imports neither torch, optuna nor matplotlib. The fit function is
``lorascale.sweep.fit.fit`` (not re-exported: it would shadow its module).
"""

from .executors import SweepResult, plan_sweep, run_sweep, worker_loop
from .fit import FitReport, Record
from .report import fit_to_dict, write_report
from .spec import Point, SweepSpec, load_spec, parse_spec
from .storage import Outcome, SweepStore, default_storage_url

__all__ = [
    "SweepSpec", "Point", "load_spec", "parse_spec",
    "SweepStore", "Outcome", "default_storage_url",
    "run_sweep", "plan_sweep", "worker_loop", "SweepResult",
    "Record", "FitReport",
    "fit_to_dict", "write_report",
]
