"""A lean training loop with callbacks, on 🤗 accelerate (so `accelerate launch`/`torchrun` run it on
several GPUs unchanged). The recipe is μA's: AdamW, global grad-norm clip, warm-up + cosine.

With ``save_every``, a checkpoint every k steps lets an interrupted run continue where it stopped
(``train(..., resume=True)``, :func:`resume_run`; :mod:`.checkpoint`), as if it had never stopped.

Outcomes are recorded, not raised: a diverging run ends with status ``diverged``; Ctrl-C (and SIGTERM
under the CLI, :mod:`lorascale.interrupts`) leaves a consistent run directory marked ``interrupted``
(and re-raises, so sweeps stop); any other error marks the run ``failed`` before propagating.
"""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..adapters import AdapterMetadata, save_adapter
from ..errors import ConfigError
from ..outputs import check_output_dir
from ..rules import Finetune
from ..vocabulary import RunStatus, Task
from .build import BuiltRun, build_run, param_groups
from .callbacks import Callback, CallbackList, TrainContext
from .checkpoint import load_checkpoint, resume_config, save_checkpoint, skip_batches
from .config import TrainConfig
from .evaluate import accumulation_weights, batch_loss, evaluate
from .monitor import DivergenceGuard, Ema
from .precision import fresh_accelerate_state, mixed_precision
from .records import RunWriter, default_run_dir, outcome_of
from .schedule import ceil_of_share, lr_at

logger = logging.getLogger(__name__)

__all__ = ["train", "resume_run", "RunResult", "total_steps", "make_accelerator", "run_summary", "step_logs", "should_log",
           "adapter_metadata", "is_rlvr"]


@dataclass
class RunResult:
    status: RunStatus
    final_ema_loss: float
    eval_metric: str
    eval_value: float | None
    val_loss: float | None
    wall_time: float
    ema_curve: list[tuple[int, float]] = field(default_factory=list)
    run_dir: Path | None = None
    message: str = ""
    summary: dict = field(default_factory=dict)

    @classmethod
    def from_summary(cls, summary: dict, curve: list, run_dir: Path | None, message: str) -> "RunResult":
        metric = summary["eval_metric"]
        return cls(RunStatus(summary["status"]), summary["final_ema_loss"], metric, summary[metric], summary["val_loss"],
                   summary["wall_time"], curve, run_dir, message, summary)


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.steps is not None:
        return cfg.steps
    return max(1, ceil_of_share(cfg.epochs, batches_per_epoch, cfg.grad_accum))


def make_accelerator(cfg: TrainConfig):
    """The GPU if there is one, else the CPU, at the run's precision (:func:`.precision.mixed_precision`)."""
    import torch
    from accelerate import Accelerator

    use_cuda = torch.cuda.is_available()
    wanted = mixed_precision(cfg.precision, use_cuda)
    fresh_accelerate_state(wanted)
    return Accelerator(mixed_precision=wanted, cpu=not use_cuda)


def run_summary(status: str, message: str, ctx: TrainContext, ema: Ema, metric: str, last_eval: dict, cfg: TrainConfig,
                started: float, pack: str | None = None) -> dict:
    """summary.json of a run (and of a member of the pack with id ``pack``, :mod:`.members`: its
    ``wall_time`` counts from the pack's start, so the pack's time is its members' largest)."""
    return {
        "status": status, "message": message, "steps_done": ctx.step, "total_steps": ctx.total_steps,
        "final_ema_loss": _finite_or_inf(ema.value), "final_loss": ctx.loss,
        "eval_metric": metric, metric: last_eval.get(metric), "val_loss": last_eval.get("val_loss"),
        "peak_lr": cfg.peak_lr(), "wall_time": time.time() - started, "pack": pack,
        "peak_memory_mb": _peak_memory_mb(),
    }


def step_logs(ctx: TrainContext, grad_norm: float, step_time: float, tokens_per_s: float) -> dict:
    """One optimizer step's line of metrics.jsonl (after ``ctx`` counts the step)."""
    return {"step": ctx.step, "loss": ctx.loss, "ema_loss": ctx.ema_loss, "lr": ctx.lr, "grad_norm": grad_norm,
            "step_time": step_time, "tokens_per_s": tokens_per_s}


def should_log(cfg: TrainConfig, step: int, steps: int, measured: bool) -> bool:
    # a step a monitor measured is always written, whatever log_every says
    return step % cfg.log_every == 0 or step == steps or measured


def _batches(loader):
    while True:  # a new epoch reshuffles with the loader's seeded generator
        yield from loader


def resume_run(run_dir: str | Path, callbacks: list[Callback] | tuple = (), progress: bool = True) -> RunResult:
    """Continue an interrupted (or failed) run from its last checkpoint, with its own config."""
    return train(resume_config(run_dir), callbacks, progress, resume=True)


def train(cfg: TrainConfig, callbacks: list[Callback] | tuple = (), progress: bool = True, built: BuiltRun | None = None,
          resume: bool = False) -> RunResult:
    """One run of ``cfg``; ``resume``: continue the run in ``cfg.out_dir`` from its last checkpoint."""
    if is_rlvr(cfg):
        if resume:
            raise ConfigError("resume", "an rlvr run trains inside TRL's GRPOTrainer, which lorascale does not checkpoint",
                              "start the run again")
        from ..rlvr.train import train_rlvr

        return train_rlvr(cfg, callbacks, progress)
    import torch
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    started = time.time()
    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg)
    run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir(cfg)
    ckpt = load_checkpoint(run_dir) if resume else None  # before the model loads: a run that cannot resume fails fast
    writer = RunWriter(run_dir, enabled=accelerator.is_main_process)
    if writer.enabled and not resume:  # before the model loads: a folder we may not write is refused at once
        check_output_dir(run_dir, "out_dir", fresh=True, what="run")
    built = built or build_run(cfg, quiet=not progress)
    kept = writer.start(cfg.to_flat(), resume_step=ckpt.step if ckpt else None)
    # from here on the run's folder says "running": whatever fails (out of memory in prepare, a checkpoint
    # that does not fit the model) must be recorded as failed, so the setup is inside the try below
    # until prepare says how the loader splits, each of P processes is taken to read 1/P of an epoch's batches
    first_guess = total_steps(cfg, math.ceil(len(built.train_loader) / accelerator.num_processes))
    ctx = TrainContext(model=built.model, optimizer=None, config=cfg, run_dir=run_dir, total_steps=first_guess,
                       step=ckpt.step if ckpt else 0)
    ema, guard = Ema(cfg.ema_beta), DivergenceGuard(cfg.diverge_factor, cfg.diverge_patience)
    if ckpt is not None:  # a resume that fails before its restore still reports the checkpoint's EMA, not inf
        ema.value = ctx.ema_loss = ckpt.ema
        started -= ckpt.elapsed  # wall_time: the checkpointed steps' time plus this attempt's, not the time a stop lost
    metric = built.task.eval_metric
    status, message = RunStatus.COMPLETE, ""
    curve = [(r["step"], r["ema_loss"]) for r in kept if "ema_loss" in r]  # a resumed run's records so far
    last_eval = next(({k: v for k, v in r.items() if k.startswith("val_")} for r in reversed(kept) if "val_loss" in r), {})
    bar = None

    def summary_dict(st: RunStatus) -> dict:
        return run_summary(st, message, ctx, ema, metric, last_eval, cfg, started)

    try:
        groups = param_groups(built.model, cfg)
        optimizer = torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
        model, optimizer, train_loader = accelerator.prepare(built.model, optimizer, built.train_loader)
        val_loader = built.val_loader  # not sharded: every process count evaluates the same batches (held_out.py)
        steps = total_steps(cfg, len(train_loader))  # after prepare: each of P processes reads 1/P of an epoch's batches
        model.train()
        cbs = CallbackList(callbacks)
        ctx.model, ctx.optimizer, ctx.total_steps = model, optimizer, steps
        batches = _batches(train_loader)
        if ckpt is not None:
            if callbacks:
                logger.warning("resuming at step %d: callbacks' own state is not checkpointed, so monitors start afresh"
                               " (a new feature-update probe, a new token sample) and their records from here differ from"
                               " the uninterrupted run's; training itself does not", ckpt.step)
            skip_batches(batches, ckpt.step * cfg.grad_accum)  # the data position; draws from the loader's generator only
            ckpt.restore(accelerator.unwrap_model(model), optimizer, ema, guard, accelerator.scaler)
            ctx.ema_loss = ema.value
        first_step = ctx.step
        bar = tqdm(total=steps, initial=first_step, desc=f"train {cfg.model}",
                   disable=not (progress and accelerator.is_main_process), dynamic_ncols=True)
        cbs.on_train_begin(ctx)
        for step in range(first_step, steps):
            factor = lr_at(step, steps, 1.0, cfg.warmup_frac, cfg.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["peak_lr"] * factor
            ctx.lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            loss_sum, tokens = torch.zeros((), device=accelerator.device), 0
            micro = [next(batches) for _ in range(cfg.grad_accum)]
            for batch, weight in zip(micro, accumulation_weights(micro, accelerator)):  # = one batch of all the targets
                micro_loss = batch_loss(model, batch, built.task, cfg.temperature)
                accelerator.backward(micro_loss * weight)
                loss_sum += micro_loss.detach().float() * weight
                tokens += int(batch["attention_mask"].sum())
            ctx.batch = batch
            loss = float(accelerator.reduce(loss_sum, "mean"))
            ctx.loss = loss
            if guard.check(step + 1, loss):
                status, message = RunStatus.DIVERGED, guard.reason
                optimizer.zero_grad(set_to_none=True)
                writer.log({"step": step + 1, "loss": loss, "lr": ctx.lr, "diverged": True})
                break
            grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            # fp16's loss scaler skips an overflowing step and lowers its scale: an inf norm there is routine
            if accelerator.scaler is None and guard.check_grad(step + 1, grad_norm):  # no update from this step
                status, message = RunStatus.DIVERGED, guard.reason
                optimizer.zero_grad(set_to_none=True)
                writer.log({"step": step + 1, "loss": loss, "lr": ctx.lr, "grad_norm": grad_norm, "diverged": True})
                break
            cbs.on_before_optimizer_step(ctx)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            ctx.step, ctx.ema_loss = step + 1, ema.update(loss)
            logs = step_logs(ctx, grad_norm, dt, tokens * accelerator.num_processes / dt)
            if cfg.eval_every and ctx.step % cfg.eval_every == 0 and ctx.step < steps:
                last_eval = evaluate(model, val_loader, built.task, cfg.max_val_batches, accelerator, cfg.temperature)
                logs.update(last_eval)
                cbs.on_evaluate(ctx, logs)
            n_base = len(logs)
            cbs.on_step_end(ctx, logs)
            if should_log(cfg, ctx.step, steps, len(logs) > n_base):
                writer.log(logs)
                curve.append((ctx.step, ctx.ema_loss))
            if cfg.save_every and ctx.step % cfg.save_every == 0 and ctx.step < steps and writer.enabled:
                save_checkpoint(run_dir, ctx.step, accelerator.unwrap_model(model), optimizer, ema, guard, accelerator.scaler,
                                elapsed=time.time() - started)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", ema=f"{ctx.ema_loss:.3f}")
            if ctx.stop_reason:
                message = ctx.stop_reason
                break
        if status is RunStatus.COMPLETE:
            last_eval = evaluate(model, val_loader, built.task, cfg.max_val_batches, accelerator, cfg.temperature)
            logs = {"step": ctx.step, **last_eval}
            cbs.on_evaluate(ctx, logs)
            writer.log(logs)
            if cfg.save_model and writer.enabled:
                _save(accelerator.unwrap_model(model), run_dir, cfg, built)
        summary = summary_dict(status)
        cbs.on_train_end(ctx, summary)
        writer.summary(summary)
    except BaseException as e:  # Ctrl-C, SIGTERM under the CLI, or an error: recorded, then raised (sweeps stop)
        status, message = outcome_of(e, ctx.step)
        writer.summary(summary_dict(status))
        raise
    finally:
        if bar is not None:
            bar.close()
        writer.close()
    return RunResult.from_summary(summary, curve, run_dir if writer.enabled else None, message)


def is_rlvr(cfg: TrainConfig) -> bool:
    """RL with verifiable rewards: asked for, or implied by a problem set as the data."""
    from ..rlvr.problems import is_problem_set

    return cfg.task is Task.RLVR or (cfg.task is None and is_problem_set(cfg.data))


def _save(model, run_dir: Path, cfg: TrainConfig, built: BuiltRun) -> None:
    target = run_dir / ("model" if cfg.finetune is Finetune.FULL else "adapter")
    try:
        if cfg.finetune is Finetune.FULL:
            model.save_pretrained(target)
            built.tokenizer.save_pretrained(target)
        else:
            save_adapter(model, target, adapter_metadata(cfg), initial=built.initial_adapter)
    except Exception as e:
        # a half-written adapter is of no use, and on a full disk its space is what lets the run
        # record that it failed
        shutil.rmtree(target, ignore_errors=True)
        os_error = _as_os_error(e, target)
        if os_error is None:
            raise
        raise os_error from e


def _as_os_error(e: Exception, path: Path) -> OSError | None:
    """safetensors reports a failed write as ``SafetensorError("... I/O error: ... (os error 28)")``;
    as an OSError it reads like every other full disk (the CLI reports those without a traceback)."""
    m = None if isinstance(e, OSError) else re.search(r"\(os error (\d+)\)", str(e))
    if m is None:
        return None
    code = int(m.group(1))
    return OSError(code, os.strerror(code), str(path))


def adapter_metadata(cfg: TrainConfig) -> AdapterMetadata:
    return AdapterMetadata(adapter=cfg.adapter, lr=cfg.peak_lr(), model=cfg.model)


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB; process-wide peak RSS
