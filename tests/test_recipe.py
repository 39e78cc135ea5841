"""trainer_kwargs(): the μA recipe as TrainingArguments; with schedule_callback() HF Trainer follows lr_at exactly."""

import pytest
import torch

import lorascale
from lorascale.errors import ConfigErrors
from lorascale.models import load_model
from lorascale.train.config import TrainConfig
from lorascale.train.schedule import lr_at, warmup_steps


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        ids = torch.arange(3, 11) + i
        return {"input_ids": ids, "labels": ids}


def test_kwargs_are_train_configs_recipe():
    kw = lorascale.trainer_kwargs(rule="alpha-r", lr_fft=3e-5)
    d = TrainConfig()
    assert kw["learning_rate"] == pytest.approx(3e-4, rel=1e-12)  # the conventional 10× η_FFT for α = r (rel: rounding only)
    assert (kw["weight_decay"], kw["max_grad_norm"], kw["adam_beta1"], kw["adam_beta2"], kw["adam_epsilon"]) == \
        (d.weight_decay, d.grad_clip, d.beta1, d.beta2, d.eps)
    assert kw["lr_scheduler_type"] == "cosine_with_min_lr" and kw["lr_scheduler_kwargs"] == {"min_lr_rate": d.min_lr_ratio}
    assert kw.get("warmup_ratio", kw.get("warmup_steps")) == d.warmup_frac
    assert lorascale.trainer_kwargs(rule="lora-alpha", lr_fft=3e-5)["learning_rate"] == 3e-5  # LoRA-α: η_FFT
    with pytest.raises(ConfigErrors) as e:  # μA Init[A] transfers from a tuned point: no default rate
        lorascale.trainer_kwargs(rule="mua", init="A")
    assert [x.field for x in e.value.errors] == ["lr"]
    assert lorascale.trainer_kwargs(rule="mua", init="A", lr=1e-3)["learning_rate"] == 1e-3
    # a baseline's own default: PiSSA trains at η_FFT, DoRA at the rule's (docs/baselines.md)
    assert lorascale.trainer_kwargs(rule="alpha-r", lr_fft=3e-5, method="pissa")["learning_rate"] == 3e-5
    # rel=1e-9: float rounding only
    assert lorascale.trainer_kwargs(rule="alpha-r", lr_fft=3e-5, method="dora")["learning_rate"] == pytest.approx(3e-4, rel=1e-9)


def _lrs_in_trainer(tmp_path, callbacks, steps):
    """The learning rate each optimizer step of a real HF Trainer run used."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    seen = []

    class Record(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            seen.append(optimizer.param_groups[0]["lr"])

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=2, save_strategy="no",
                             report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=10**6,
                             **lorascale.trainer_kwargs(rule="lora-alpha", lr_fft=2e-5))
    model = lorascale.apply(load_model("tiny-llama").model, rank=2, targets=["q_proj"])
    Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[Record(), *callbacks]).train()
    return seen


def test_hf_trainer_follows_lr_at_at_every_step(tmp_path, one_thread):
    steps = 45  # ⌈5% of 45⌉ = 3 warm-up steps, then 42 cosine steps
    assert warmup_steps(steps, 0.05) == 3
    expected = [lr_at(k, steps, 2e-5) for k in range(steps)]
    got = _lrs_in_trainer(tmp_path, [lorascale.schedule_callback()], steps)
    assert len(got) == steps
    for k, (a, b) in enumerate(zip(got, expected)):
        # η·f(k) vs lr_at's own η·(k+1)/W: the same numbers multiplied in another order, a few ulps apart
        assert a == pytest.approx(b, rel=1e-12, abs=0), k
    assert got[-1] == pytest.approx(0.1 * 2e-5, rel=1e-12)  # the last step runs at the floor


def test_without_the_callback_hf_runs_its_own_step_convention(tmp_path, one_thread):
    # Why schedule_callback exists: HF's cosine_with_min_lr runs warm-up step k at k/W (step 0 at 0, lr_at:
    # 1/W) and reaches the floor one step after the last. No TrainingArguments value changes that.
    steps = 45
    got = _lrs_in_trainer(tmp_path, [], steps)
    assert got[0] == 0.0 and lr_at(0, steps, 2e-5) == pytest.approx(2e-5 / 3, rel=1e-9)  # float rounding only
    assert got[-1] > 0.1 * 2e-5 * 1.001


def test_schedule_callback_refuses_another_scheduler(tmp_path):
    from transformers import Trainer, TrainingArguments

    from lorascale.errors import ConfigError

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, lr_scheduler_type="linear", report_to=[], use_cpu=True,
                             save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=lorascale.apply(load_model("tiny-llama").model, rank=2, targets=["q_proj"]), args=args,
                      train_dataset=Rows(), callbacks=[lorascale.schedule_callback()])
    with pytest.raises(ConfigError) as e:
        trainer.train()
    assert e.value.field == "lr_scheduler_type" and "trainer_kwargs" in e.value.fix


def test_schedule_callback_refuses_an_absolute_floor(tmp_path):
    from transformers import Trainer, TrainingArguments

    from lorascale.errors import ConfigError

    kw = {**lorascale.trainer_kwargs(rule="lora-alpha"), "lr_scheduler_kwargs": {"min_lr": 1e-6}}  # HF takes either
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, report_to=[], use_cpu=True, save_strategy="no",
                             disable_tqdm=True, **kw)
    trainer = Trainer(model=lorascale.apply(load_model("tiny-llama").model, rank=2, targets=["q_proj"]), args=args,
                      train_dataset=Rows(), callbacks=[lorascale.schedule_callback()])
    with pytest.raises(ConfigError) as e:  # not a TypeError from lr_at(min_ratio=None)
        trainer.train()
    assert e.value.field == "lr_scheduler_kwargs" and "min_lr_rate" in e.value.fix


def test_a_step_the_loss_scaler_skipped_does_not_leave_the_schedule_behind():
    """fp16: HF does not step the scheduler when GradScaler skips a step; the callback puts it back at the step."""
    import functools

    import torch

    from lorascale.integrations.hf import _factor, follow_step
    from lorascale.train.schedule import lr_at

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(_factor, total=10, warmup_frac=0.1, min_ratio=0.1))
    for step in range(1, 10):  # optimizer steps 1 … 9 done; the scaler skipped step 3, so no scheduler step then
        opt.step()
        if step != 3:
            sched.step()
        follow_step(sched, step)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(step, 10, 1.0, 0.1, 0.1), rel=1e-12)  # float rounding
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1, rel=1e-12)  # the last step at the floor, not one step short
