"""The README's main job: standard LoRA (α = r, s = 1) vs LoRA-α (Variant I, s = 256·√r/r), both at
the full-finetuning learning rate, same budget, same seeds, same held-out set.

LoRA-α's claim (§4–5): with α at its principled scale, LoRA trains well at η_FFT, where the
conventional α = r barely moves. This command measures that on an embedded model.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .train import RunResult, TrainConfig, train

__all__ = ["DemoArm", "DemoResult", "demo_configs", "run_demo", "render_demo"]

ARMS = (("standard LoRA (α = r)", "alpha-r"), ("LoRA-α (C = 256)", "lora-alpha"))

PRESETS = {
    # ~3.4 s/step on 2 CPU cores at 4×128 tokens: 2 arms × 24 steps ≈ 3 minutes with evaluation
    "lm": dict(model="smollm2-135m", data="shakespeare", steps=24, batch_size=4, seq_len=128, max_val_batches=4),
    # MiniLM is ~0.2 s/step at 16×64: 2 arms × 80 steps ≈ 1 minute
    "classification": dict(model="minilm-l6", data="shakespeare-genre", steps=80, batch_size=16, seq_len=64, max_val_batches=8),
}


@dataclass
class DemoArm:
    label: str
    rule: str
    results: list[RunResult] = field(default_factory=list)

    def stat(self, attr: str) -> tuple[float, float]:
        """Mean and std over the seeds that completed; a diverged run's pre-divergence loss is no result."""
        xs = [getattr(r, attr) for r in self.results if r.status == "complete" and getattr(r, attr) is not None]
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


def run_demo(task: str = "lm", seeds: int = 1, rank: int = 16, lr: float = 2e-5, out: Path = Path("runs/demo"),
             progress: bool = True, **overrides) -> DemoResult:
    arms = [DemoArm(label, rule) for label, rule in ARMS]
    for seed in range(seeds):
        for arm, cfg in zip(arms, demo_configs(task, rank, lr, seed, out, **overrides)):
            arm.results.append(train(cfg, progress=progress))
    return DemoResult(task, arms, lr, rank)


def render_demo(result: DemoResult, path: Path) -> Path:
    """EMA training-loss curves per arm (each seed a thin line, their mean thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for arm, color in zip(result.arms, ("tab:gray", "tab:red")):
        for i, r in enumerate(arm.results):
            steps, ema = zip(*r.ema_curve) if r.ema_curve else ((), ())
            ax.plot(steps, ema, color=color, lw=2 if i == 0 else 1, alpha=1 if i == 0 else 0.5,
                    label=arm.label if i == 0 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (EMA, β = 0.1)")
    ax.set_title(f"{result.task}: rank {result.rank}, both at η = {result.lr:g} (full-finetuning LR)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
