"""Sweeps: μA learning-rate grids and LoRA-α scaling paths, run into Optuna storage, fitted and drawn.

spec       YAML spec → validated points with stable keys
records    the stored schema: a record = point coordinates + run outcome
storage    the Optuna study: queue, claims, results (no database layer of our own)
backends   storage URLs opened to read (changing nothing), write or create
liveness   heartbeats and stale workers (Optuna's for RDB, an attr for the journal)
executors  local worker processes or Ray tasks that claim and run points; resume
fit        pure fits: η* per rank, slopes vs μA, FFT gap (optima: the shared grid machinery)
fit_paths  pure fits: LoRA-α scaling paths and α*(r) = C·r^p
plots      figure data (pure) and matplotlib renderers
report     fit tables, JSON, Markdown/HTML report

Importing this package imports neither torch, optuna nor matplotlib. The fit function is
``lorascale.sweep.fit.fit`` (not re-exported: it would shadow its module).
"""

from .executors import SweepResult, plan_sweep, run_sweep, worker_loop
from .fit import FitReport
from .records import Outcome, PointCoords, Record
from .report import fit_to_dict, write_report
from .spec import Point, SweepSpec, load_spec, parse_spec
from .storage import SweepStore, default_storage_url

__all__ = [
    "SweepSpec", "Point", "load_spec", "parse_spec",
    "SweepStore", "Outcome", "default_storage_url",
    "run_sweep", "plan_sweep", "worker_loop", "SweepResult",
    "Record", "PointCoords", "FitReport",
    "fit_to_dict", "write_report",
]
