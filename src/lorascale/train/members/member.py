"""One member's own run inside a pack: its run directory, schedule, EMA, divergence guard, callbacks
and outcome — the bookkeeping :func:`lorascale.train.train` does for a separate run, record for record."""

from __future__ import annotations

from pathlib import Path

from ...adapters import save_adapter
from ...vocabulary import RunStatus
from ..callbacks import Callback, CallbackList, TrainContext
from ..config import TrainConfig
from ..loop import RunResult, _batches, adapter_metadata, run_summary, should_log, step_logs
from ..monitor import DivergenceGuard, Ema
from ..records import RunWriter, default_run_dir, outcome_of
from ..schedule import lr_at

__all__ = ["Member"]


class Member:
    """Member ``name`` of a pack, trained under ``cfg``. ``groups`` are its AdamW param groups in the
    pack's optimizer (body, then head); ``loader`` its own training order."""

    def __init__(self, name: str, cfg: TrainConfig, loader, total_steps: int, callbacks: list[Callback] | tuple,
                 metric: str, writer_enabled: bool, started: float, pack: str | None = None):
        self.name, self.cfg, self.metric, self.started = name, cfg, metric, started
        self.pack = pack  # the pack's id: its members' wall times all count from the pack's start
        self.run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir(cfg)
        self.writer = RunWriter(self.run_dir, enabled=writer_enabled)
        self.batches = _batches(loader)
        self.cbs = CallbackList(callbacks)
        self.ema, self.guard = Ema(cfg.ema_beta), DivergenceGuard(cfg.diverge_factor, cfg.diverge_patience)
        self.status, self.message, self.last_eval, self.curve = RunStatus.RUNNING, "", {}, []
        self.groups: list[dict] = []
        self._params: list = []
        self.ctx = TrainContext(model=None, optimizer=None, config=cfg, run_dir=self.run_dir, total_steps=total_steps)
        self.result: RunResult | None = None

    @property
    def running(self) -> bool:
        return self.status is RunStatus.RUNNING

    @property
    def params(self) -> list:
        """Its parameters in the model's order, as a separate run's ``model.parameters()`` lists them: the
        grad-norm clip sums the squares in this order (LoRA+'s A/B groups would reorder them)."""
        return self._params

    def begin(self, model, optimizer, groups: list[dict]) -> None:
        self.groups = groups
        order = {id(p): i for i, p in enumerate(model.parameters())}
        self._params = sorted((p for g in groups for p in g["params"]), key=lambda p: order[id(p)])
        self.ctx.model, self.ctx.optimizer = model, optimizer
        # callbacks see the pack's model and optimizer; these say which parts are this member's
        self.ctx.extra.update(adapter=self.name, param_groups=groups)
        self.cbs.on_train_begin(self.ctx)

    def set_lr(self, step: int) -> None:
        cfg = self.cfg
        factor = lr_at(step, self.ctx.total_steps, 1.0, cfg.warmup_frac, cfg.min_lr_ratio)
        for g in self.groups:
            g["lr"] = g["peak_lr"] * factor
        self.ctx.lr = self.groups[0]["lr"]

    def check_divergence(self, step: int, loss: float, batch: dict) -> bool:
        """Record this step's loss; True (and the run recorded as diverged) when the guard trips."""
        self.ctx.batch, self.ctx.loss = batch, loss
        if not self.guard.check(step + 1, loss):
            return False
        self.message = self.guard.reason
        self.writer.log({"step": step + 1, "loss": loss, "lr": self.ctx.lr, "diverged": True})
        self.end(RunStatus.DIVERGED)
        return True

    def check_gradient(self, step: int, grad_norm: float) -> bool:
        """True (its gradients dropped, the run recorded as diverged) when the clipped norm is not finite."""
        if not self.guard.check_grad(step + 1, grad_norm):
            return False
        for p in self.params:  # no update from this step, as a separate run that stops here
            p.grad = None
        self.message = self.guard.reason
        self.writer.log({"step": step + 1, "loss": self.ctx.loss, "lr": self.ctx.lr, "grad_norm": grad_norm, "diverged": True})
        self.end(RunStatus.DIVERGED)
        return True

    def step_done(self, step: int, grad_norm: float, step_time: float, tokens: int, evals: dict | None) -> None:
        ctx = self.ctx
        ctx.step, ctx.ema_loss = step + 1, self.ema.update(ctx.loss)
        logs = step_logs(ctx, grad_norm, step_time, tokens / step_time)
        if evals is not None:
            self.last_eval = evals
            logs.update(evals)
            self.cbs.on_evaluate(ctx, logs)
        n_base = len(logs)
        self.cbs.on_step_end(ctx, logs)
        if should_log(self.cfg, ctx.step, ctx.total_steps, len(logs) > n_base):
            self.writer.log(logs)
            self.curve.append((ctx.step, ctx.ema_loss))
        if ctx.stop_reason:
            self.message = ctx.stop_reason

    def complete(self, evals: dict, peft_model) -> None:
        """The final evaluation, the adapter (this member's, from the pack's model) and the summary."""
        self.last_eval = evals
        logs = {"step": self.ctx.step, **evals}
        self.cbs.on_evaluate(self.ctx, logs)
        self.writer.log(logs)
        if self.cfg.save_model and self.writer.enabled:
            save_adapter(peft_model, self.run_dir / "adapter", adapter_metadata(self.cfg), adapter=self.name)
        self.end(RunStatus.COMPLETE)

    def end(self, status: RunStatus) -> None:
        """Its summary, through its callbacks, to disk. Whatever stops that (a callback that raises, a full
        disk, a stop signal) records the member as a separate run records itself: failed or interrupted."""
        summary = self._summary(status)
        try:
            self.cbs.on_train_end(self.ctx, summary)
            self.writer.summary(summary)
        except BaseException as e:
            self.abort(*outcome_of(e, self.ctx.step))
            raise
        self.status = status
        self._close(summary)

    def abort(self, status: RunStatus, message: str) -> None:
        """Interrupted or failed while running: a consistent record, no callbacks (as a separate run). It
        ends the member even when its summary cannot be written."""
        self.status, self.message = status, message
        summary = self._summary(status)
        try:
            self.writer.summary(summary)
        finally:
            self._close(summary)

    def _summary(self, status: RunStatus) -> dict:
        return run_summary(status.value, self.message, self.ctx, self.ema, self.metric, self.last_eval, self.cfg, self.started,
                           self.pack)

    def _close(self, summary: dict) -> None:
        self.writer.close()
        self.result = RunResult.from_summary(summary, self.curve, self.run_dir if self.writer.enabled else None, self.message)
