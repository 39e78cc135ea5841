"""The rlvr task: GRPO through TRL's ``GRPOTrainer`` with μA's RLVR setup (§5.3, App. B.4).

* Problems: generated with exact answers (:mod:`.problems`), a fixed held-out split.
* Reward: +1 for the right answer (read from the tags, or with ``answer_match`` last-number the last
  number), +``format_reward`` for ``<think>…</think><answer>…</answer>`` (:mod:`.reward`), summed;
  rewards standardised within each prompt's group.
* Sampling: ``num_generations`` completions per prompt at ``generation_temperature``, top-p 1, top-k off,
  repetition penalty 1; the DAPO token-level loss; no KL term (β = 0) and so no reference model.
* The recipe is lorascale's everywhere: the rule's learning rate, AdamW, clip, warm-up + cosine to the
  floor (TRL's trainer follows :func:`lorascale.train.schedule.lr_at` through ``schedule_callback``).
  μA sets weight decay to 0 for RL (it "strongly degraded performance"); lorascale keeps the setting the
  user gives (``--weight-decay 0`` reproduces μA).

``batch_size`` counts prompts per micro-batch: an optimizer step takes ``batch_size × grad_accum`` distinct
prompts (TRL's sampler draws them as one generation batch) and ``num_generations`` completions of each. The run directory is lorascale's (config.json, metrics.jsonl, summary.json, adapter/).
Its training "loss" is the negative mean reward of the step (GRPO's surrogate loss is ≈ 0 by
construction), so the EMA(0.1) that sweeps select on is μA's EMA-smoothed training reward, negated:
lower is better for every task.

A step whose every group scored its completions alike (TRL's ``frac_reward_zero_std`` 1; its
``reward_std`` is the whole batch's spread since TRL 1.0, the mean of the groups' before) has all-zero
advantages, so no gradient: the run counts such steps (``no_signal_steps`` in the summary) and warns when the first
``NO_SIGNAL_WARN_AFTER`` steps all had none. SmolLM2-135M-Instruct on ``math`` is such a policy: a
3-step run logged reward 0 and ``reward_std`` 0 at every step (docs/results/compare.md, "Not run").
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

from ..errors import ConfigError, collecting
from ..models import load_model
from ..rules import Finetune
from ..vocabulary import RunStatus, Task

__all__ = ["train_rlvr", "check_rlvr"]

log = logging.getLogger(__name__)
TRL_HINT = "pip install 'lorascale[rl]'  (TRL's GRPOTrainer)"
NO_SIGNAL_WARN_AFTER = 3  # steps without any reward variance before the run warns that GRPO has nothing to learn from


def check_rlvr(cfg) -> tuple[list, list]:
    """The problems (train, held-out) and every setting problem, before any model loads."""
    from .problems import split_problems

    errors, train_p, val_p = [], [], []
    with collecting(errors):
        train_p, val_p = split_problems(cfg.data, cfg.rl.train_problems, cfg.rl.val_problems)
    if cfg.save_every:
        errors.append(ConfigError("save_every", "an rlvr run trains inside TRL's GRPOTrainer, which lorascale does not"
                                  " checkpoint", "leave `save_every` at 0"))
    if cfg.eval_every:
        errors.append(ConfigError("eval_every", "an rlvr run samples its held-out problems once, at the end",
                                  "leave `eval_every` at 0"))
    if cfg.log_every != 1:
        errors.append(ConfigError("log_every", "an rlvr run records every GRPO step (TRL logs each one)",
                                  "leave `log_every` at 1"))
    if cfg.steps is None:
        errors.append(ConfigError("epochs", "an rlvr run counts optimizer steps (GRPO samples its prompts anew at every"
                                  " step)", "give `steps` instead"))
    per_step = cfg.batch_size * cfg.grad_accum
    if train_p and len(train_p) < per_step:  # TRL's sampler drops an incomplete chunk: no batch at all, no step
        errors.append(ConfigError("batch_size", f"{len(train_p)} training problems cannot fill a step of {per_step} distinct"
                                  f" prompts (batch_size {cfg.batch_size} × grad_accum {cfg.grad_accum})",
                                  "lower `batch_size` or `grad_accum`, or raise `train_problems`"))
    if errors:
        from ..errors import ConfigErrors

        raise ConfigErrors(errors)
    return train_p, val_p


def train_rlvr(cfg, callbacks=(), progress: bool = True):
    """Train ``cfg`` (task rlvr) with GRPO; a :class:`~lorascale.train.RunResult` like every other run."""
    if callbacks:
        raise ConfigError("callbacks", "the rlvr task trains inside TRL's GRPOTrainer",
                          "attach monitors with lorascale.attach(trainer, ...) on a GRPOTrainer you build yourself")
    try:
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as e:
        raise ConfigError("task", f"the rlvr task needs TRL ({e})", f"run: {TRL_HINT}") from None
    import torch
    from datasets import Dataset
    from tqdm.auto import tqdm
    from transformers.trainer_callback import PrinterCallback

    from ..integrations.hf import schedule_callback
    from ..recipe import checkpointing_arg, recipe_args
    from ..adapters.convert import snapshot_initial
    from ..outputs import check_output_dir
    from ..train.build import attach_adapter, param_groups
    from ..train.loop import RunResult
    from ..train.monitor import Ema
    from ..train.records import RunWriter, default_run_dir, outcome_of
    from .evaluate import evaluate_rlvr
    from .problems import prompt_text
    from .reward import trl_reward_functions

    started = time.time()
    train_p, val_p = check_rlvr(cfg)
    run_dir = Path(cfg.out_dir) if cfg.out_dir else default_run_dir(cfg)
    check_output_dir(run_dir, "out_dir", fresh=True, what="run")  # as train's, before the model loads: a new or empty folder
    loaded = load_model(cfg.model, task=Task.LM, quiet=not progress)
    if loaded.task is not Task.LM:
        raise ConfigError("model", f"{cfg.model} is not a causal LM; rlvr generates text", "use e.g. smollm2-135m")
    tok = loaded.tokenizer
    model, initial = loaded.model, None
    torch.manual_seed(cfg.seed)
    if cfg.finetune is Finetune.LORA:
        model, _ = attach_adapter(model, cfg, loaded.default_targets, Task.RLVR)
        initial = snapshot_initial(model)  # PiSSA/OLoRA: saved as plain LoRA on the original base
    writer = RunWriter(run_dir)
    writer.start(cfg.to_flat())
    # from here on the run's folder says "running": whatever fails while TRL's trainer is built (its argument
    # checks, out of memory) must be recorded as failed, so the setup is inside the try below
    recorder = _Recorder(writer, Ema(cfg.ema_beta), tqdm(total=cfg.steps, desc=f"grpo {cfg.model}", disable=not progress,
                                                          dynamic_ncols=True))
    status, message, last_eval = RunStatus.COMPLETE, "", {}
    G, rl = cfg.rl.num_generations, cfg.rl

    def summary(st) -> dict:
        return {"status": st, "message": message, "steps_done": recorder.step, "total_steps": cfg.steps,
                "final_ema_loss": recorder.ema.value if math.isfinite(recorder.ema.value) else math.inf,
                "final_loss": recorder.loss, "final_reward": recorder.reward, "no_signal_steps": recorder.no_signal,
                "eval_metric": Task.RLVR.eval_metric,
                **{k: last_eval.get(k) for k in ("val_reward", "val_accuracy", "val_format", "val_completion_length")},
                "val_loss": None, "peak_lr": cfg.peak_lr(), "wall_time": time.time() - started, "pack": None}

    def prompt(q: str):
        text = prompt_text(q, cfg.rl.answer_match)  # TRL applies the chat template to conversational prompts itself
        return [{"role": "user", "content": text}] if getattr(tok, "chat_template", None) else text

    try:
        data = Dataset.from_list([{"prompt": prompt(p.question), "answer": p.answer} for p in train_p])
        cuda = torch.cuda.is_available()
        # GRPOConfig sets up its device afresh (transformers resets accelerate's state there), so a run at another
        # precision than this process's last one needs nothing more
        args = GRPOConfig(
            output_dir=str(run_dir / "grpo"), max_steps=cfg.steps, **recipe_args(cfg),
            per_device_train_batch_size=cfg.batch_size * G, gradient_accumulation_steps=cfg.grad_accum,
            num_generations=G, max_completion_length=rl.max_completion_length, temperature=rl.generation_temperature,
            top_p=1.0, top_k=0, repetition_penalty=1.0, loss_type="dapo", beta=0.0, scale_rewards="group",
            logging_steps=1, save_strategy="no", report_to="none", seed=cfg.seed, data_seed=cfg.seed, use_cpu=not cuda,
            disable_tqdm=True, remove_unused_columns=False,  # its bar prints every log dict; the recorder has its own
            **checkpointing_arg(cfg.gradient_checkpointing))
        args.learning_rate = cfg.peak_lr()
        optimizer = torch.optim.AdamW(param_groups(model, cfg))  # lorascale's groups: LoRA+'s B rate, the recipe's AdamW
        with _quiet_transformers():
            trainer = GRPOTrainer(model=model, reward_funcs=trl_reward_functions(fmt=rl.format_reward, match=rl.answer_match),
                                  args=args,
                                  train_dataset=data, processing_class=tok, callbacks=[schedule_callback(), recorder],
                                  optimizers=(optimizer, None))
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; metrics.jsonl and the recorder's bar carry them
        with _quiet_transformers():
            trainer.train()
        if recorder.diverged:
            status, message = RunStatus.DIVERGED, recorder.diverged
        elif recorder.step < cfg.steps:  # TRL ended early without an error (e.g. an empty loader): not a finished run
            status, message = RunStatus.FAILED, f"TRL's trainer stopped after {recorder.step} of {cfg.steps} steps"
            log.error("rlvr: %s", message)
        else:
            last_eval = evaluate_rlvr(trainer.model, tok, val_p, [prompt_text(p.question, rl.answer_match) for p in val_p],
                                      generations=rl.eval_generations, max_new_tokens=rl.max_completion_length,
                                      temperature=rl.generation_temperature, format_reward=rl.format_reward, seed=cfg.seed,
                                      match=rl.answer_match)
            writer.log({"step": recorder.step, **last_eval})
            if cfg.save_model:
                _save(trainer.model, tok, run_dir, cfg, initial)
        result = summary(status)
        writer.summary(result)
    except BaseException as e:  # Ctrl-C, SIGTERM under the CLI, or an error: recorded, then raised
        status, message = outcome_of(e, recorder.step)
        writer.summary(summary(status))
        raise
    finally:
        recorder.bar.close()
        writer.close()
    return RunResult.from_summary(result, recorder.curve, run_dir, message)


class _quiet_transformers(warnings.catch_warnings):
    """transformers 5 warns that TRL still calls its gradient-checkpointing names; nothing a user can act on."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        return out


def _save(model, tok, run_dir: Path, cfg, initial) -> None:
    from ..adapters import save_adapter
    from ..train.loop import adapter_metadata

    if cfg.finetune is Finetune.FULL:
        model.save_pretrained(run_dir / "model")
        tok.save_pretrained(run_dir / "model")
    else:
        save_adapter(model, run_dir / "adapter", adapter_metadata(cfg), initial=initial)


def _recorder_base():
    from transformers import TrainerCallback

    return TrainerCallback


class _Recorder(_recorder_base()):
    """One metrics.jsonl line per GRPO step: the negative mean reward as the loss, its EMA, the rest of
    TRL's logs (reward, reward_std, completion lengths, grad norm, lr). A reward is bounded, so the loss
    blow-up rule of the other tasks does not apply: a non-finite reward, loss or gradient is divergence."""

    def __init__(self, writer, ema, bar):
        self.writer, self.ema, self.bar = writer, ema, bar
        self.step, self.loss, self.reward, self.curve, self.diverged = 0, math.nan, math.nan, [], ""
        self.no_signal = 0  # steps whose groups all scored their completions alike: zero advantages, no gradient

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs:
            return
        self.step, self.reward = state.global_step, float(logs["reward"])
        self.loss = -self.reward
        grad = float(logs.get("grad_norm", 0.0) or 0.0)
        if not math.isfinite(self.reward) or not math.isfinite(grad) or not math.isfinite(float(logs.get("loss", 0.0))):
            self.diverged = f"non-finite reward, loss or gradient at step {self.step}"
            control.should_training_stop = True
        if _no_signal(logs):
            self.no_signal += 1
            if self.no_signal == self.step == NO_SIGNAL_WARN_AFTER:
                log.warning("rlvr: in each of the first %d steps every completion of a prompt scored the same reward"
                            " (mean %.3g): GRPO's advantages are 0 and no gradient flows. The policy does not yet"
                            " solve or format any problem at this temperature: use easier problems (data sums, which"
                            " holds 420: train_problems + val_problems at most that; or your own JSONL), answer_match last-number, a larger format_reward, more"
                            " num_generations, or a stronger model", self.step, self.reward)
        ema = self.ema.update(self.loss)
        self.curve.append((self.step, ema))
        self.bar.update(1)
        self.bar.set_postfix(reward=f"{self.reward:.3f}", ema=f"{ema:.3f}")
        self.writer.log({"step": self.step, "loss": self.loss, "ema_loss": ema, "reward": self.reward,
                         "reward_std": logs.get("reward_std"), "frac_reward_zero_std": logs.get("frac_reward_zero_std"),
                         "policy_loss": logs.get("loss"), "lr": logs.get("learning_rate"),
                         "grad_norm": grad, "completion_length": logs.get("completions/mean_length"),
                         "clipped_ratio": logs.get("completions/clipped_ratio")})


def _no_signal(logs: dict) -> bool:
    """Whether every group of the step scored its completions alike (zero advantages, no gradient): TRL's
    ``frac_reward_zero_std`` (the fraction of groups with no spread) is 1. Without it, ``reward_std`` 0, which
    before TRL 1.0 was the mean of the groups' spreads (since 1.0 it is the whole batch's: a batch whose
    groups each agree but differ from each other has spread there and still no gradient)."""
    zero = logs.get("frac_reward_zero_std")
    if zero is not None and math.isfinite(float(zero)):
        return float(zero) == 1.0
    spread = logs.get("reward_std")
    return spread is not None and math.isfinite(float(spread)) and float(spread) == 0.0
