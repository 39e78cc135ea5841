"""The papers' experiments, runnable end to end (``lorascale repro ...``).

* :func:`mlp_dynamics` — LoRA-α App. E / Fig. 2: η-scaling against α-scaling on a SiLU MLP.
* :func:`mlp_spectra` — LoRA-α App. E / Fig. 8: exact Hessian spectra, Prop. 3 traces, Prop. 4 growth.

Each runs, writes PNG figures and tables (markdown, CSV, JSON) to ``out`` and returns the summary
that ``--json`` prints.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["mlp_dynamics", "mlp_spectra"]


def mlp_dynamics(out: str | Path, seeds=(0, 1, 2), setup=None, eta_grid=None, alpha_grid=None, extend: bool = True, progress: bool = True) -> dict:
    from .dynamics import ALPHA_GRID, ETA_GRID, PAPER_ALPHA, PAPER_ETA, run_dynamics
    from .mlp import MLPSetup
    from .plots import fig2_info, render_fig2, render_sweep, sweep_info
    from .report import dynamics_findings, jsonable, write_dynamics

    setup = setup or MLPSetup()
    out = Path(out)
    t0 = time.perf_counter()
    res = run_dynamics(setup, list(seeds), eta_grid or ETA_GRID, alpha_grid or ALPHA_GRID, extend=extend, progress=progress)
    seconds = time.perf_counter() - t0
    findings = dynamics_findings(res)
    files = write_dynamics(res, out, findings, seconds)
    files["fig2"] = render_fig2(fig2_info(res.configs, PAPER_ETA, PAPER_ALPHA), out / "fig2_dynamics.png")
    files["sweep"] = render_sweep(sweep_info(res.configs, res.path("base")[0].mean_final), out / "sweep.png")
    summary = res.to_dict()
    return jsonable({
        "eta": {k: summary["paths"]["eta"][k] for k in ("best_loss", "best_multiplier")},
        "alpha": {k: summary["paths"]["alpha"][k] for k in ("best_loss", "best_multiplier")},
        "base_loss": summary["base_loss"],
        "seeds": res.seeds,
        "seconds": round(seconds, 1),
        "findings": findings,
        "files": {k: str(v) for k, v in files.items()},
    })


def mlp_spectra(out: str | Path, seeds=(0, 1, 2), setup=None, ranks=None, alphas=None, progress: bool = True) -> dict:
    from .mlp import MLPSetup
    from .plots import fig8_info, render_fig8
    from .report import jsonable, spectra_findings, write_spectra
    from .spectra import ALPHAS, RANKS, run_spectra

    setup = setup or MLPSetup(d=32)
    out = Path(out)
    t0 = time.perf_counter()
    res = run_spectra(setup, list(seeds), ranks or RANKS, alphas or ALPHAS, progress=progress)
    seconds = time.perf_counter() - t0
    findings = spectra_findings(res)
    files = write_spectra(res, out, findings, seconds)
    files["fig8"] = render_fig8(fig8_info(res), out / "fig8_spectra.png")
    return jsonable({
        "trace_pairs": res.trace_pairs(),
        "growth_exponents": res.growth(),
        "seeds": res.seeds,
        "seconds": round(seconds, 1),
        "findings": findings,
        "files": {k: str(v) for k, v in files.items()},
    })

