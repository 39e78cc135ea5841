"""Use the diagnostic callbacks with Hugging Face ``Trainer`` (and TRL's trainers built on it).

>>> from lorascale.diagnostics import SignalDriftMonitor, FeatureUpdateMonitor
>>> from lorascale.diagnostics.hf import trainer_callback
>>> trainer = Trainer(model=peft_model, ..., callbacks=[trainer_callback(SignalDriftMonitor(every=10))])

HF's events map onto ours: ``on_pre_optimizer_step`` (gradients clipped, parameters not yet
updated) → ``on_before_optimizer_step``; ``on_step_end`` (``state.global_step`` counts the step) →
``on_step_end``. Each monitored step's numbers are kept in ``callback.history`` (dicts with
``step``), written to ``<output_dir>/metrics.jsonl`` (one training run's records: a new run replaces
them, a run resumed from a checkpoint continues them; so ``lorascale diagnose OUTPUT_DIR`` plots
them) and handed to the trainer's logging:

* with ``log=`` (what :func:`lorascale.attach` passes: ``Trainer.log`` bound to the trainer) each
  monitored step is logged through the trainer, so it lands in ``state.log_history`` and reaches every
  ``report_to`` integration (TensorBoard, W&B, ...) at the step it was measured;
* without it, merged into the next ``on_log``. That reaches only integrations placed after this
  callback, and Trainer places its integrations before user callbacks; ``log_history`` is appended
  before ``on_log`` runs, so it never sees them. Prefer ``lorascale.attach(trainer, *monitors)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..train.callbacks import CallbackList, TrainContext
from ..train.records import json_safe, keep_records_through

__all__ = ["trainer_callback"]


def trainer_callback(*monitors, metrics_path: str | Path | None = "auto", log: Callable[[dict], None] | None = None):
    """A ``transformers.TrainerCallback`` running ``monitors`` (lorascale callbacks) inside HF Trainer.

    ``metrics_path``: "auto" writes ``<args.output_dir>/metrics.jsonl``; None writes nothing.
    ``log``: called with each monitored step's numbers (see the module docs); None merges them into ``on_log``.
    """
    try:
        from transformers import TrainerCallback
    except ImportError as e:  # pragma: no cover - transformers is a core dependency
        raise ImportError("lorascale.diagnostics.hf needs transformers: pip install transformers") from e

    class LorascaleMonitors(TrainerCallback):
        lorascale_monitors = True  # lets lorascale.attach find (and replace) this callback in a trainer

        def __init__(self):
            self.callbacks = CallbackList(monitors)
            self.history: list[dict] = []
            self.ctx: TrainContext | None = None
            self._pending: dict = {}
            self._path: Path | None = None

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            self.end_interrupted_run()
            sharded_or_fused(args)
            out_dir = Path(args.output_dir) if getattr(args, "output_dir", None) else None
            if metrics_path == "auto":
                self._path = out_dir / "metrics.jsonl" if out_dir else None
            else:
                self._path = Path(metrics_path) if metrics_path else None
            if not getattr(state, "is_world_process_zero", True):
                self._path = None  # under DDP every rank measures, only rank 0 writes the file
            if self._path is not None and self._path.exists():
                # one run's records only: a fresh run (step 0) replaces an earlier run's; a run resumed from a
                # checkpoint keeps the records through its step and drops those written past it
                keep_records_through(self._path, state.global_step)
            self.ctx = TrainContext(
                model=model, optimizer=optimizer, config=args, run_dir=out_dir, total_steps=state.max_steps, step=state.global_step
            )
            self.callbacks.on_train_begin(self.ctx)

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.ctx.step = state.global_step  # steps completed before this one
            self.callbacks.on_before_optimizer_step(self.ctx)

        def on_step_end(self, args, state, control, **kwargs):
            self.ctx.step = state.global_step
            logs: dict = {}
            self.callbacks.on_step_end(self.ctx, logs)
            if logs:
                record = {"step": state.global_step, **logs}
                self.history.append(record)
                if log is not None:
                    keep = control.should_log  # Trainer's on_log clears it: the trainer must still log this step's loss
                    log(dict(logs))  # a copy: Trainer.log adds "epoch" to the dict it is given
                    control.should_log = keep
                else:
                    self._pending.update(logs)
                if self._path is not None:
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                    with self._path.open("a") as f:
                        f.write(json.dumps(json_safe(record)) + "\n")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and self._pending:
                logs.update(self._pending)
                self._pending = {}

        def on_train_end(self, args, state, control, **kwargs):
            self.callbacks.on_train_end(self.ctx, {})
            self.ctx = None

        def end_interrupted_run(self):
            """Detach the monitors' hooks if a train() raised (Ctrl-C, OOM) before on_train_end, which HF skips."""
            if self.ctx is not None:
                self.callbacks.on_train_end(self.ctx, {})
                self.ctx = None

    return LorascaleMonitors()


def sharded_or_fused(args) -> None:
    """Refuse DeepSpeed and FSDP: the monitors compare each LoRA factor before and after the optimizer step,
    and DeepSpeed steps inside ``backward`` (the "before" copy would already be updated: every ΔA and ΔB 0)
    while ZeRO-3 and FSDP shard the factors (the copies would not be the matrices)."""
    import os

    from ..errors import ConfigError

    launched = {k: os.environ.get(f"ACCELERATE_USE_{k.upper()}", "false").lower() == "true" for k in ("deepspeed", "fsdp")}
    if getattr(args, "deepspeed", None) or launched["deepspeed"]:  # TrainingArguments, or `accelerate launch` config
        raise ConfigError("deepspeed", "the diagnostic monitors cannot see DeepSpeed's optimizer step (it runs inside"
                          " backward) nor its sharded factors", "monitor a run without DeepSpeed (single device or DDP)")
    if getattr(args, "fsdp", None) or launched["fsdp"]:
        raise ConfigError("fsdp", "the diagnostic monitors read whole LoRA factors, which FSDP shards",
                          "monitor a run without FSDP (single device or DDP)")
