"""lorascale inside Hugging Face ``Trainer`` and TRL's trainers built on it.

>>> trainer = SFTTrainer(model=model, peft_config=lorascale.lora_config(model, 16, "lora-alpha"),
...                      args=SFTConfig(output_dir="out", **lorascale.trainer_kwargs(rule="lora-alpha")),
...                      callbacks=[lorascale.schedule_callback(), lorascale.metadata_callback("lora-alpha")], ...)
>>> lorascale.attach(trainer, SignalDriftMonitor(every=10))   # diagnostics logged through the trainer
>>> trainer.train()

* :func:`schedule_callback`: the trainer's learning rate follows :func:`lorascale.train.schedule.lr_at`
  exactly (see :mod:`lorascale.recipe` for how HF's built-in schedule differs).
* :func:`metadata_callback`: ``lorascale.json`` beside every checkpoint and in ``output_dir``, after
  checking at the start that the adapters' scales follow the declared rule.
* :func:`attach`: the diagnostics monitors, their numbers logged through ``Trainer.log``.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

from ..errors import ConfigError
from ..rules import DEFAULT_C, Init, RuleSpec, ScaleRule, effective_scale

__all__ = ["attach", "schedule_callback", "metadata_callback"]

SCALE_TOL = 1e-9  # a PEFT scaling is lora_alpha/r computed once: only rounding separates it from the rule's s


def attach(trainer, *monitors, metrics_path: str | Path | None = "auto"):
    """Run lorascale ``monitors`` (e.g. ``SignalDriftMonitor()``) in ``trainer``, their numbers logged
    through the trainer: into ``trainer.state.log_history`` and every ``report_to`` integration.

    A callback cannot do this through ``on_log``: Trainer appends ``log_history`` before calling
    ``on_log``, and calls its integrations, which it places before user callbacks, first. So the
    monitors' callback calls ``Trainer.log`` itself at each measured step. Monitors passed to the
    trainer earlier as ``callbacks=[trainer_callback(...)]`` are taken out (``pop_callback``) and run
    here too, so nothing is measured twice. Returns the callback (its ``history`` holds every record).
    """
    from transformers import Trainer

    from ..diagnostics.hf import trainer_callback

    earlier = [cb for cb in trainer.callback_handler.callbacks if getattr(cb, "lorascale_monitors", False)]
    for cb in earlier:
        trainer.pop_callback(cb)
        cb.end_interrupted_run()
    monitors = [m for cb in earlier for m in cb.callbacks.callbacks] + list(monitors)
    if not monitors:
        raise ConfigError("monitors", "nothing to attach", "pass monitors, e.g. attach(trainer, SignalDriftMonitor(every=10))")
    # Trainer.log itself, not a subclass's: TRL's SFTTrainer.log also flushes its running token metrics
    callback = trainer_callback(*monitors, metrics_path=metrics_path, log=functools.partial(Trainer.log, trainer))
    trainer.add_callback(callback)
    return callback


def schedule_callback():
    """A ``TrainerCallback`` that makes the trainer's learning rate follow lorascale's μA schedule exactly.

    At ``on_train_begin`` it gives the trainer's ``LambdaLR`` the factor ``lr_at(k, T, 1, w, m)``, with
    T the trainer's total steps, w its warm-up fraction and m the ``min_lr_rate`` of
    ``lr_scheduler_kwargs``: the arguments :func:`lorascale.trainer_kwargs` wrote, read back from the
    trainer so the two cannot disagree. Steps already taken (a resumed run) keep their place.
    """
    from transformers import TrainerCallback

    class MuASchedule(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            from torch.optim.lr_scheduler import LambdaLR

            from ..recipe import SCHEDULER

            sched = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
            if args.lr_scheduler_type != SCHEDULER or not isinstance(sched, LambdaLR):  # SchedulerType is a str enum
                raise ConfigError("lr_scheduler_type", f"the μA schedule replaces {SCHEDULER}'s factor; the trainer uses"
                                  f" {args.lr_scheduler_type}", "build the arguments with lorascale.trainer_kwargs(...)")
            min_ratio = (args.lr_scheduler_kwargs or {}).get("min_lr_rate")
            if min_ratio is None:  # cosine_with_min_lr also takes an absolute min_lr; the μA floor is a ratio
                raise ConfigError("lr_scheduler_kwargs", f"the μA schedule's floor is a fraction of the peak; the trainer"
                                  f" has {args.lr_scheduler_kwargs!r} and no min_lr_rate",
                                  "set lr_scheduler_kwargs={'min_lr_rate': 0.1}, as lorascale.trainer_kwargs(...) does")
            factor = functools.partial(_factor, total=state.max_steps, warmup_frac=_warmup_fraction(args), min_ratio=min_ratio)
            sched.lr_lambdas = [factor] * len(sched.optimizer.param_groups)
            sched.last_epoch -= 1
            _step_quietly(sched)  # the current learning rates again, from the new factor at the same step

        def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
            follow_step(getattr(lr_scheduler, "scheduler", lr_scheduler), state.global_step)

    return MuASchedule()


def follow_step(sched, global_step: int) -> None:
    """Put ``sched`` (a LambdaLR) at ``global_step`` when it fell behind: with fp16 the trainer does not step
    the scheduler for a step the loss scaler skipped, and from then on every rate would lag lr_at by one."""
    if sched is None or sched.last_epoch == global_step:
        return
    sched.last_epoch = global_step - 1
    _step_quietly(sched)


def _step_quietly(sched) -> None:
    """``sched.step()`` outside the trainer's order, without torch's warning that no optimizer step came first."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        sched.step()


def _factor(step: int, *, total: int, warmup_frac: float, min_ratio: float) -> float:
    """lr_at's multiplier of the peak. LambdaLR also evaluates step T after the last optimizer step
    (Trainer steps the scheduler once more); no optimizer step uses that value, so it is clamped."""
    from ..train.schedule import lr_at

    return lr_at(min(step, total - 1), total, 1.0, warmup_frac, min_ratio)


def _warmup_fraction(args) -> float:
    """The warm-up fraction in ``args``: ``warmup_ratio`` (transformers 4.x) or a ``warmup_steps`` below 1 (5.x)."""
    ratio = getattr(args, "warmup_ratio", None)
    if ratio:
        return float(ratio)
    steps = float(args.warmup_steps)
    if steps < 1:
        return steps
    raise ConfigError("warmup_steps", f"the μA schedule warms up over a fraction of the steps; got {steps:g} steps",
                      "use the warm-up of lorascale.trainer_kwargs(...)")


def metadata_callback(rule: str | ScaleRule = ScaleRule.LORA_ALPHA, *, alpha: float = 1.0, c: float = DEFAULT_C,
                      lora_alpha: float = 16.0, gamma: float = 0.0, init: str | Init = Init.KAIMING,
                      model_name: str | None = None):
    """A ``TrainerCallback`` writing ``lorascale.json`` (the rule the adapters were planned with, the peak
    learning rate, LoRA+'s ratio where the optimizer has one, the model) into each checkpoint folder
    (``on_save``) and ``output_dir`` at the end (``trainer.save_model`` calls no callback). Give it the rule ``lora_config``/``apply`` used: at the
    start it checks every LoRA layer's s against that rule, so the file cannot claim another one."""
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from ..adapters.spec import AdapterSpec
    from ..schema import validate

    # checked before anything else, every bad setting at once: init "kaimnig" is an error on init naming the choices
    spec = validate(AdapterSpec, {"scaling": {"rule": rule, "alpha": alpha, "c": c, "lora_alpha": lora_alpha, "gamma": gamma},
                                  "init": init})
    scaling, init = spec.scaling, spec.init

    class LorascaleMetadata(TrainerCallback):
        rates: tuple[float | None, float | None] = (None, None)  # (peak lr, LoRA+ ratio) read from the optimizer

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            _check_scales(model, scaling, init)
            self.rates = _optimizer_rates(model, optimizer)

        def on_save(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero:
                _write(model, args, Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}", scaling, init,
                       model_name, self.rates)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero:
                _write(model, args, Path(args.output_dir), scaling, init, model_name, self.rates)

    return LorascaleMetadata()


def _check_scales(model, scaling: RuleSpec, init: Init) -> None:
    from ..adapters import lora_modules

    if not hasattr(model, "peft_config"):
        raise ConfigError("model", "the trainer's model has no PEFT adapters", "metadata_callback is for LoRA training")
    adapter = _adapter(model)
    modules = list(lora_modules(model, adapter))
    if not modules:
        raise ConfigError("model", f"no LoRA layer of the trainer's model carries adapter {adapter!r}",
                          "train a model with LoRA adapters (lorascale.apply, get_peft_model or add_adapter)")
    wrong = []
    for name, m in modules:
        r = m.r[adapter]
        due = effective_scale(scaling, r, m.in_features, init)
        if not math.isclose(m.scaling[adapter], due, rel_tol=SCALE_TOL):
            wrong.append(f"{name} has s = {m.scaling[adapter]:.6g}, {scaling.rule.value} gives {due:.6g} at r = {r}")
    if wrong:
        raise ConfigError("rule", f"the adapters do not follow rule {scaling.rule.value}: {wrong[0]}"
                          f"{f' (and {len(wrong) - 1} more)' if len(wrong) > 1 else ''}",
                          "pass metadata_callback the rule (and knobs) the adapters were planned with")
    _check_init(modules, adapter, init)


def _check_init(modules, adapter: str, init: Init) -> None:
    """Before the first step the factors show their draw: B = 0 for PEFT's kaiming and μA's Init[A], A = 0 for
    Init[B] (``init_after_wrap``). The file must not claim the other one (``check`` judges by it)."""
    zero_a = [n for n, m in modules if not m.lora_A[adapter].weight.count_nonzero()]
    zero_b = [n for n, m in modules if not m.lora_B[adapter].weight.count_nonzero()]
    if init is Init.B and zero_b:
        raise ConfigError("init", f"metadata_callback was told Init[B], but {len(zero_b)} layers (e.g. {zero_b[0]}) start"
                          " with B = 0, which is PEFT's kaiming or μA's Init[A]",
                          "pass the init the adapters were drawn with, or call lorascale.init_after_wrap(trainer, 'B')")
    if init is not Init.B and zero_a and len(zero_a) == len(modules):
        raise ConfigError("init", f"the adapters start with A = 0 in every layer ({len(modules)}), μA's Init[B], but"
                          f" metadata_callback was told {init.value}", "pass init='B' to metadata_callback")


def _adapter(model) -> str:
    """The adapter being trained: a PeftModel's ``active_adapter``; on a transformers model given adapters by
    ``add_adapter`` (where ``active_adapter`` is a method), what its adapter layers have active."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    active = getattr(model, "active_adapter", None)
    if isinstance(active, str):
        return active
    layer = next((m for m in model.modules() if isinstance(m, BaseTunerLayer)), None)
    names = ["default"] if layer is None else [layer.active_adapter] if isinstance(layer.active_adapter, str) \
        else list(layer.active_adapter)
    if len(names) != 1:
        raise ConfigError("adapter", f"the model has {len(names)} active adapters ({', '.join(names)})",
                          "train one adapter at a time (model.set_adapter(name))")
    return names[0]


def _optimizer_rates(model, optimizer) -> tuple[float | None, float | None]:
    """(A's peak learning rate, B's ÷ A's when they differ) in the optimizer passed to the trainer
    (``Trainer(optimizers=(opt, None))``: the one callbacks are shown). A LoRA+ optimizer
    (``lorascale.loraplus_optimizer``, PEFT's ``create_loraplus_optimizer``) was built with its own ``lr``, which
    the trainer's ``learning_rate`` does not set, and B trains at λ × it: the file must say both. The peak is
    a group's ``initial_lr`` (the scheduler keeps it; ``lr`` is already the warm-up's first, scaled value).
    (None, None), and the file takes ``learning_rate`` and no ratio, where the trainer builds its own optimizer
    (callbacks see None: one made in an overridden ``create_optimizer`` is not seen either), where A's (or B's)
    factors sit at several rates (an optimizer grouped per layer), or at a rate ≤ 0 (frozen)."""
    from ..adapters import lora_modules

    if optimizer is None:
        return None, None
    adapter = _adapter(model)
    peak = {id(p): float(g["initial_lr"] if "initial_lr" in g else g["lr"]) for g in optimizer.param_groups
            for p in g["params"]}
    modules = [m for _, m in lora_modules(model, adapter)]
    rates_a = {peak.get(id(m.lora_A[adapter].weight)) for m in modules}
    rates_b = {peak.get(id(m.lora_B[adapter].weight)) for m in modules}
    if len(rates_a) != 1 or len(rates_b) != 1 or None in rates_a | rates_b or min(rates_a | rates_b) <= 0:
        return None, None
    (lr_a,), (lr_b,) = rates_a, rates_b
    # λ·η is one product: the quotient carries only its rounding, which 12 digits drop (so 16 reads as 16)
    return lr_a, None if math.isclose(lr_b, lr_a, rel_tol=SCALE_TOL) else float(f"{lr_b / lr_a:.12g}")


def _write(model, args, folder: Path, scaling: RuleSpec, init: Init, model_name: str | None,
           rates: tuple[float | None, float | None] = (None, None)) -> None:
    from ..adapters.io import AdapterMetadata, write_metadata
    from ..adapters.spec import AdapterSpec
    from ..methods import Method, method_of

    config = model.peft_config[_adapter(model)]
    targets = config.target_modules
    method, niter = method_of(config.use_dora, config.init_lora_weights) or (Method.LORA, None)  # DoRA, PiSSA, OLoRA
    spec = AdapterSpec(rank=config.r, scaling=scaling, init=init, lora_dropout=config.lora_dropout,
                       targets=targets if isinstance(targets, str) else tuple(sorted(targets)),  # a string: PEFT's regex
                       method=method, pissa_niter=niter, loraplus_lr_ratio=rates[1])  # a ratio with lora: loraplus
    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model  # add_adapter: no wrapper
    base = getattr(getattr(base_model, "config", None), "_name_or_path", None)
    folder.mkdir(parents=True, exist_ok=True)
    lr = args.learning_rate if rates[0] is None else rates[0]
    write_metadata(folder, AdapterMetadata(adapter=spec, lr=lr, model=model_name or base or None))
