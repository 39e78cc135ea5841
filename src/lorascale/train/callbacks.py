"""The training loop's extension point: small callbacks, not flags (minGPT's add_callback).

A callback sees a :class:`TrainContext` at fixed points of each step. Diagnostics (signal/drift,
feature-update terms) attach here; :mod:`lorascale.diagnostics.hf` adapts them to
``transformers.TrainerCallback`` for HF Trainer / TRL users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainContext", "Callback", "CallbackList"]


@dataclass
class TrainContext:
    model: Any  # the (PEFT-wrapped) torch module being trained
    optimizer: Any
    config: Any  # TrainConfig
    run_dir: Path | None
    total_steps: int
    step: int = 0  # optimizer steps completed
    lr: float = 0.0
    loss: float = float("nan")  # this step's training loss (mean over micro-batches)
    ema_loss: float = float("nan")
    batch: Any = None  # the last micro-batch (dict of tensors)
    stop_reason: str | None = None  # a callback may set this to end training cleanly
    extra: dict = field(default_factory=dict)  # callbacks may share state here


class Callback:
    """Override what you need. Hooks run in list order. ``logs`` dicts are merged into metrics.jsonl."""

    def on_train_begin(self, ctx: TrainContext) -> None: ...

    def on_before_optimizer_step(self, ctx: TrainContext) -> None:
        """Gradients of this step are final (accumulated and clipped); parameters not yet updated."""

    def on_step_end(self, ctx: TrainContext, logs: dict) -> None:
        """Parameters are updated; ``ctx.step`` counts this step; add entries to ``logs`` to record them."""

    def on_evaluate(self, ctx: TrainContext, logs: dict) -> None: ...

    def on_train_end(self, ctx: TrainContext, summary: dict) -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)

    def on_train_begin(self, ctx):
        for cb in self.callbacks:
            cb.on_train_begin(ctx)

    def on_before_optimizer_step(self, ctx):
        for cb in self.callbacks:
            cb.on_before_optimizer_step(ctx)

    def on_step_end(self, ctx, logs):
        for cb in self.callbacks:
            cb.on_step_end(ctx, logs)

    def on_evaluate(self, ctx, logs):
        for cb in self.callbacks:
            cb.on_evaluate(ctx, logs)

    def on_train_end(self, ctx, summary):
        for cb in self.callbacks:
            cb.on_train_end(ctx, summary)
