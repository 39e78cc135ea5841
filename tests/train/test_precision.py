"""precision, the launcher's --mixed_precision and the device, reconciled (never overridden silently)."""

import pytest

from lorascale.errors import ConfigError
from lorascale.train import TrainConfig
from lorascale.train.loop import make_accelerator
from lorascale.train.precision import LAUNCHER_ENV, mixed_precision


@pytest.mark.parametrize("precision, cuda, launcher, expected", [
    ("auto", False, "", "no"), ("auto", True, "", "bf16"),  # no launcher: bf16 on a GPU, fp32 on the CPU
    ("fp32", True, "", "no"), ("bf16", False, "", "bf16"), ("fp16", True, "", "fp16"),
    ("auto", True, "fp16", "fp16"), ("auto", True, "no", "no"), ("auto", False, "bf16", "bf16"),  # auto follows it
    ("bf16", True, "bf16", "bf16"), ("fp32", True, "no", "no"), ("fp16", True, "FP16", "fp16"),  # agreeing: fine
])
def test_resolved_precision(precision, cuda, launcher, expected):
    assert mixed_precision(precision, cuda, launcher) == expected


@pytest.mark.parametrize("precision, launcher", [("bf16", "fp16"), ("fp32", "bf16"), ("fp16", "no"), ("bf16", "no")])
def test_disagreeing_with_the_launcher_is_refused(precision, launcher):
    with pytest.raises(ConfigError) as e:
        mixed_precision(precision, True, launcher)
    assert e.value.field == "precision" and f"--mixed_precision {launcher}" in e.value.message
    assert "precision auto" in e.value.fix


@pytest.mark.parametrize("precision, launcher", [("fp16", ""), ("auto", "fp16")])
def test_fp16_on_the_cpu_is_refused_with_a_fix(precision, launcher):
    with pytest.raises(ConfigError) as e:
        mixed_precision(precision, False, launcher)
    assert e.value.field == "precision" and "GPU" in e.value.message and "fp32 or bf16" in e.value.fix


def test_the_accelerator_follows_the_launcher_environment(monkeypatch, fresh_accelerate_state):
    monkeypatch.setenv(LAUNCHER_ENV, "bf16")  # what `accelerate launch --mixed_precision bf16` exports
    assert make_accelerator(TrainConfig(precision="auto")).mixed_precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        make_accelerator(TrainConfig(precision="fp32"))
    monkeypatch.delenv(LAUNCHER_ENV)
    assert make_accelerator(TrainConfig(precision="bf16")).mixed_precision == "bf16"


@pytest.mark.gpu
def test_fp16_trains_on_a_gpu_with_a_loss_scale(tmp_path):
    from lorascale.train import train

    cfg = TrainConfig(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=64, max_examples=64, max_val_batches=1,
                      steps=20, lr=3e-3, rule="alpha-r", precision="fp16", out_dir=str(tmp_path / "run"))
    assert make_accelerator(cfg).scaler is not None  # accelerate's GradScaler: scaled backward, unscaled clipping
    r = train(cfg, progress=False)
    # a byte-level LM starts near ln(259) = 5.56 nats; 20 steps at 3e-3 lower it in fp32 by > 0.1 (test_loop)
    assert r.status == "complete" and r.ema_curve[-1][1] < r.ema_curve[0][1] - 0.1


def test_runs_at_different_precisions_follow_each_other_in_one_process(tmp_path, one_thread):
    """accelerate keeps one precision per process; a notebook or sweep worker that trained in fp32 and then
    in bf16 was refused at the second run ("AcceleratorState has already been initialized")."""
    from lorascale.train import train

    run = dict(model="tiny-llama", data="shakespeare", batch_size=2, seq_len=16, max_examples=8, max_val_batches=1,
               steps=1, lr=1e-3, rule="alpha-r")
    losses = []
    for i, precision in enumerate(["fp32", "bf16", "fp32"]):
        r = train(TrainConfig(**run, precision=precision, out_dir=str(tmp_path / f"r{i}")), progress=False)
        assert r.status == "complete"
        assert make_accelerator(TrainConfig(precision=precision)).mixed_precision == ("no" if precision == "fp32" else "bf16")
        losses.append(r.ema_curve[-1][1])
    # each run at its own precision: the fp32 runs bitwise equal (same seed, one thread), bf16's autocast
    # forward rounds its matmuls to 8 mantissa bits, which moves the loss (by ~1e-3 relative here)
    assert losses[0] == losses[2] and losses[1] != losses[0]


def test_a_run_after_an_interrupted_accumulation_elsewhere_still_steps(tmp_path, one_thread):
    """HF's Trainer sets accelerate's process-wide gradient state to "do not sync" between micro-batches; one
    interrupted there leaves it so, and every optimizer.step() of the next run in the process was skipped: a
    "complete" run whose adapter never moved from B = 0."""
    from accelerate.state import GradientState
    from safetensors.torch import load_file

    from lorascale.train import train

    make_accelerator(TrainConfig(precision="fp32")).gradient_state._set_sync_gradients(False)  # as the Trainer leaves it
    assert GradientState().sync_gradients is False
    run = dict(model="tiny-llama", data="shakespeare", batch_size=2, seq_len=16, max_examples=8, max_val_batches=1,
               steps=2, lr=1e-3, rule="alpha-r", precision="fp32")
    assert train(TrainConfig(**run, out_dir=str(tmp_path / "r")), progress=False).status == "complete"
    b = [t for k, t in load_file(tmp_path / "r" / "adapter" / "adapter_model.safetensors").items() if "lora_B" in k]
    assert b and max(float(t.abs().max()) for t in b) > 0  # PEFT initialises B = 0: only an optimizer step moves it
