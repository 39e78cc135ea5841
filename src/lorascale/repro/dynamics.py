"""``lorascale repro mlp-dynamics``: LoRA-α App. E / Fig. 2, η-scaling against α-scaling.

From the base (η₀ = 1e-4, α₀ = 1, r = 16, d = 256) the paper scales η by {16, 32, 64, 128} at α₀
and α by {32, 64, 128, 256} at η₀ (Adam, 100 steps) and reports: η×64 and α×128 converge alike at
first but η oscillates; η×128 diverges while α×256 stays stable and fits deeper (Fig. 2a); η-scaling
amplifies the drift (2b); α-scaling keeps a higher signal-to-drift ratio (2c). We run each path
over a wider grid, and extend it by doublings while the best multiplier sits on its upper edge,
so each path's optimum shows; the drift and the ratio come from :class:`SignalDriftMonitor`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .mlp import MLPSetup, build_model, make_data, single_thread, train

__all__ = ["PAPER_ETA", "PAPER_ALPHA", "ETA_GRID", "ALPHA_GRID", "ConfigResult", "DynamicsResult", "run_dynamics"]

PAPER_ETA = (16, 32, 64, 128)
PAPER_ALPHA = (32, 64, 128, 256)
ETA_GRID = (8, 16, 32, 64, 128, 256, 512, 1024)
ALPHA_GRID = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MAX_EXTENSIONS = 4  # doublings past the grid while the optimum is on its edge


@dataclass
class ConfigResult:
    path: str  # "base", "eta" or "alpha"
    multiplier: float
    lr: float
    alpha: float
    final_losses: list[float] = field(default_factory=list)  # per seed; inf if diverged
    losses: list[list[float]] = field(default_factory=list)  # per seed, per step (+ final)
    drift: list[list[float]] = field(default_factory=list)  # per seed: sd/all/drift_norm per step
    ratio: list[list[float]] = field(default_factory=list)  # per seed: sd/all/ratio per step (NaN if undefined)

    @property
    def diverged(self) -> int:
        return sum(not math.isfinite(v) for v in self.final_losses)

    @property
    def mean_final(self) -> float:
        """Mean over seeds of the final loss; inf if any seed diverged (a diverging setting is not usable)."""
        return math.inf if self.diverged else statistics.fmean(self.final_losses)

    @property
    def std_final(self) -> float:
        return statistics.stdev(self.final_losses) if len(self.final_losses) > 1 and not self.diverged else 0.0

    def summary(self) -> dict:
        return {
            "path": self.path, "multiplier": self.multiplier, "lr": self.lr, "alpha": self.alpha,
            "mean_final_loss": self.mean_final, "std_final_loss": self.std_final,
            "diverged_seeds": self.diverged, "seeds": len(self.final_losses),
        }


@dataclass
class DynamicsResult:
    setup: MLPSetup
    seeds: list[int]
    configs: list[ConfigResult]

    def path(self, name: str) -> list[ConfigResult]:
        return sorted((c for c in self.configs if c.path == name), key=lambda c: c.multiplier)

    def get(self, path: str, multiplier: float) -> ConfigResult | None:
        return next((c for c in self.configs if c.path == path and c.multiplier == multiplier), None)

    def best(self, path: str) -> ConfigResult:
        return min(self.path(path), key=lambda c: c.mean_final)

    def to_dict(self) -> dict:
        return {
            "setup": self.setup.model_dump(),
            "seeds": self.seeds,
            "paths": {
                p: {"best_multiplier": self.best(p).multiplier, "best_loss": self.best(p).mean_final,
                    "multipliers": [c.multiplier for c in self.path(p)]}
                for p in ("eta", "alpha")
            },
            "base_loss": self.path("base")[0].mean_final,
            "configs": [c.summary() for c in self.configs],
        }


def run_dynamics(
    setup: MLPSetup = MLPSetup(),
    seeds: list[int] = (0, 1, 2),
    eta_grid=ETA_GRID,
    alpha_grid=ALPHA_GRID,
    extend: bool = True,
    monitor_every: int = 1,
    progress: bool = True,
) -> DynamicsResult:
    """Train every (path, multiplier, seed) and collect losses, drift and signal-to-drift traces."""
    with single_thread():
        return _run_dynamics(setup, list(seeds), eta_grid, alpha_grid, extend, monitor_every, progress)


def _run_dynamics(setup, seeds, eta_grid, alpha_grid, extend, monitor_every, progress) -> DynamicsResult:
    data = {s: make_data(setup, s) for s in seeds}
    configs: list[ConfigResult] = []
    bar = tqdm(total=(1 + len(eta_grid) + len(alpha_grid)) * len(seeds), desc="mlp-dynamics", disable=not progress)

    def run(path: str, mult: float) -> ConfigResult:
        lr = setup.lr0 * (mult if path == "eta" else 1.0)
        alpha = setup.alpha0 * (mult if path == "alpha" else 1.0)
        cfg = ConfigResult(path, mult, lr, alpha)
        for seed in seeds:
            cfg_trace = _one_run(setup, data[seed], lr, alpha, seed, monitor_every)
            cfg.final_losses.append(cfg_trace[0])
            cfg.losses.append(cfg_trace[1])
            cfg.drift.append(cfg_trace[2])
            cfg.ratio.append(cfg_trace[3])
            bar.update(1)
        configs.append(cfg)
        return cfg

    run("base", 1.0)
    for path, grid in (("eta", eta_grid), ("alpha", alpha_grid)):
        for mult in grid:
            run(path, float(mult))
        for _ in range(MAX_EXTENSIONS if extend else 0):
            ran = sorted((c for c in configs if c.path == path), key=lambda c: c.multiplier)
            best = min(ran, key=lambda c: c.mean_final)
            if best is not ran[-1] and best is not ran[0]:
                break  # the loss already degrades past the optimum on both sides
            bar.total += len(seeds)
            run(path, ran[-1].multiplier * 2 if best is ran[-1] else ran[0].multiplier / 2)
    bar.close()
    return DynamicsResult(setup, seeds, configs)


def _one_run(setup: MLPSetup, data, lr: float, alpha: float, seed: int, monitor_every: int):
    from ..diagnostics.signal_drift import SignalDriftMonitor

    x, y = data
    model = build_model(setup, alpha, seed)
    trace = train(model, x, y, lr, setup.steps, callbacks=[SignalDriftMonitor(every=monitor_every, seed=seed)])
    nan = float("nan")
    drift = [r.get("sd/all/drift_norm", nan) for r in trace.records]
    ratio = [r.get("sd/all/ratio", nan) for r in trace.records]
    return trace.final_loss, trace.losses, drift, ratio
