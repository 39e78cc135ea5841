"""The README's main job: standard LoRA (α = r, s = 1) vs LoRA-α (Variant I, s = 256·√r/r), both at
the full-finetuning learning rate, same budget, same seeds, same held-out set.

LoRA-α's claim (§4–5): with α at its principled scale, LoRA trains well at η_FFT, where the
conventional α = r barely moves. This command measures that on an embedded model.

The figure is computed by :func:`demo_plot_info` (numbers only) and drawn by :func:`render_demo`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import StrictBool, StrictStr

from .adapters.spec import AdapterSpec
from .figures import new_figure, save_figure
from .schema import PositiveFloat, PositiveInt, Settings, same_setting, setting
from .train import RunResult, TrainConfig, train
from .vocabulary import RunStatus, Task

__all__ = ["DemoRequest", "DemoArm", "DemoResult", "demo_configs", "run_demo", "read_demo", "Curve", "ArmCurves", "DemoPlotInfo",
           "mean_curve", "demo_plot_info", "render_demo"]

ARMS = (("standard LoRA (α = r)", "alpha-r"), ("LoRA-α (C = 256)", "lora-alpha"))
ARM_COLORS = ("tab:gray", "tab:red")

PRESETS = {
    # ~3.4 s/step on 2 CPU cores at 4×128 tokens: 2 arms × 24 steps ≈ 3 minutes with evaluation
    Task.LM.value: dict(model="smollm2-135m", data="shakespeare", steps=24, batch_size=4, seq_len=128, max_val_batches=4),
    # MiniLM is ~0.2 s/step at 16×64: 2 arms × 80 steps ≈ 1 minute
    Task.CLASSIFICATION.value: dict(model="minilm-l6", data="shakespeare-genre", steps=80, batch_size=16, seq_len=64, max_val_batches=8),
}


class DemoRequest(Settings):
    """What ``lorascale demo`` is asked: the preset, the seeds, and what overrides it."""

    task: Literal[tuple(PRESETS)] = setting(  # type: ignore[valid-type]
        Task.LM.value, "lm: SmolLM2-135M on Shakespeare; classification: MiniLM on Shakespeare genres")
    seeds: PositiveInt = setting(1, "seeds per arm (their spread is reported)", fix="use 3 to see the seed noise")
    steps: PositiveInt | None = setting(None, "the step budget (default: the preset's)")
    rank: PositiveInt = same_setting(AdapterSpec, "rank")
    lr: PositiveFloat = same_setting(TrainConfig, "lr_fft", description="learning rate of both arms (η_FFT: LoRA-α's)")
    model: StrictStr | None = setting(None, "the model (default: the preset's; tiny-llama for a smoke run)")
    out: StrictStr | None = setting(None, "output folder (default runs/demo-<time>; never overwritten)")
    report_only: StrictBool = setting(False, "read the runs of an earlier demo in `out` back (same settings) and redraw;"
                                      " trains nothing")

    def overrides(self) -> dict:
        """The preset's settings this request replaces."""
        return {k: v for k, v in (("steps", self.steps), ("model", self.model)) if v is not None}


@dataclass
class DemoArm:
    label: str
    rule: str
    results: list[RunResult] = field(default_factory=list)

    def stat(self, attr: str) -> tuple[float, float]:
        """Mean and std over the seeds that completed; a diverged run's pre-divergence loss is no result."""
        xs = [getattr(r, attr) for r in self.results if r.status is RunStatus.COMPLETE and getattr(r, attr) is not None]
        if not xs:
            return float("nan"), float("nan")
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


@dataclass
class DemoResult:
    task: str
    arms: list[DemoArm]
    lr: float
    rank: int

    def rows(self) -> list[dict]:
        out = []
        for arm in self.arms:
            ema, ema_sd = arm.stat("final_ema_loss")
            ev, ev_sd = arm.stat("eval_value")
            t, _ = arm.stat("wall_time")
            out.append({"arm": arm.label, "rule": arm.rule, "ema_loss": ema, "ema_loss_std": ema_sd, "eval": ev,
                        "eval_std": ev_sd, "time_s": t, "seeds": len(arm.results),
                        "statuses": sorted({r.status for r in arm.results})})
        return out


def demo_configs(task: str, rank: int, lr: float, seed: int, out: Path, **overrides) -> list[TrainConfig]:
    base = TrainConfig(**(PRESETS[task] | overrides), rank=rank, lr=lr, seed=seed, save_model=False)
    return [base.replace(rule=rule, out_dir=str(out / f"{rule}-seed{seed}")) for _, rule in ARMS]


def run_demo(task: str = Task.LM.value, seeds: int = 1, rank: int = 16, lr: float = 2e-5, out: Path = Path("runs/demo"),
             progress: bool = True, **overrides) -> DemoResult:
    arms = [DemoArm(label, rule) for label, rule in ARMS]
    for seed in range(seeds):
        for arm, cfg in zip(arms, demo_configs(task, rank, lr, seed, out, **overrides)):
            arm.results.append(train(cfg, progress=progress))
    return DemoResult(task, arms, lr, rank)


def read_demo(task: str = Task.LM.value, seeds: int = 1, rank: int = 16, lr: float = 2e-5, out: Path = Path("runs/demo"),
              **overrides) -> DemoResult:
    """The result of an earlier :func:`run_demo` with these arguments, read back from ``out`` (its runs'
    summaries and EMA curves), training nothing: to redraw its table and figure. ConfigError on ``out``
    when a run is missing, unfinished or of another configuration."""
    import json

    from .errors import ConfigError
    from .repro.runs import finished_run

    more = sorted(p.name for p in Path(out).glob(f"*-seed{seeds}")) if Path(out).is_dir() else []
    if more:  # a 3-seed demo read as 1 seed would report one seed as the result
        raise ConfigError("seeds", f"{out} holds runs past {seeds} seed(s) ({', '.join(more)})",
                          "give the seeds it was run with")
    arms = [DemoArm(label, rule) for label, rule in ARMS]
    for seed in range(seeds):
        for arm, cfg in zip(arms, demo_configs(task, rank, lr, seed, out, **overrides)):
            run = finished_run(cfg, clear=False)
            if run is None:
                raise ConfigError("out", f"{cfg.out_dir} holds no finished run of this demo",
                                  "run the demo without `report_only` (or with the arguments it was run with)")
            try:
                lines = [json.loads(x) for x in (Path(cfg.out_dir) / "metrics.jsonl").read_text().splitlines() if x.strip()]
            except (OSError, ValueError) as e:
                raise ConfigError("out", f"{cfg.out_dir}'s metrics.jsonl cannot be read ({e})",
                                  "run the demo again into a new folder") from None
            run.ema_curve = [(r["step"], r["ema_loss"]) for r in lines if "ema_loss" in r]
            arm.results.append(run)
    return DemoResult(task, arms, lr, rank)


class Curve(NamedTuple):
    steps: tuple[int, ...]
    values: tuple[float, ...]  # EMA training loss


class ArmCurves(NamedTuple):
    label: str  # the legend entry, on the mean
    seeds: tuple[Curve, ...]  # every seed, drawn thin
    mean: Curve  # across the completed seeds, drawn thick


class DemoPlotInfo(NamedTuple):
    title: str
    xlabel: str
    ylabel: str
    arms: tuple[ArmCurves, ...]


def mean_curve(curves: list[Curve]) -> Curve:
    """The step-wise mean of ``curves`` at the steps all of them logged (the same schedule for
    runs of one configuration); empty for no curves."""
    if not curves:
        return Curve((), ())
    common = set(curves[0].steps).intersection(*(c.steps for c in curves[1:]))
    steps = tuple(s for s in curves[0].steps if s in common)
    at = [dict(zip(c.steps, c.values)) for c in curves]
    return Curve(steps, tuple(math.fsum(d[s] for d in at) / len(at) for s in steps))


def demo_plot_info(result: DemoResult) -> DemoPlotInfo:
    """Each arm's EMA curve per seed and their mean. The mean is over the seeds that completed, as in
    the table (:meth:`DemoArm.stat`): a diverged run's pre-divergence curve is no result."""
    arms = []
    for arm in result.arms:
        seeds = [Curve(tuple(s for s, _ in r.ema_curve), tuple(float(v) for _, v in r.ema_curve)) for r in arm.results]
        done = [c for c, r in zip(seeds, arm.results) if r.status == RunStatus.COMPLETE]
        arms.append(ArmCurves(_mean_label(arm.label, len(done), len(seeds)), tuple(seeds), mean_curve(done)))
    return DemoPlotInfo(f"{result.task}: rank {result.rank}, both at η = {result.lr:g} (full-finetuning LR)",
                        "optimizer step", "training loss (EMA, β = 0.1)", tuple(arms))


def _mean_label(label: str, done: int, seeds: int) -> str:
    if done == seeds == 1:
        return label
    if done == 0:
        return f"{label} (no seed completed)"
    return f"{label} (mean of {done} seeds)" if done == seeds else f"{label} (mean of the {done} completed of {seeds} seeds)"


def render_demo(info: DemoPlotInfo, path: Path) -> Path:
    """EMA training-loss curves per arm: each seed a thin line, their mean thick."""
    fig, ((ax,),) = new_figure(width=7.0, height=4.2)
    for arm, color in zip(info.arms, ARM_COLORS):
        for seed in arm.seeds:
            ax.plot(seed.steps, seed.values, color=color, lw=1, alpha=0.5)
        ax.plot(arm.mean.steps, arm.mean.values, color=color, lw=2, label=arm.label)
    ax.set(title=info.title, xlabel=info.xlabel, ylabel=info.ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
