"""Checkpoints and resume: an interrupted run resumed from its last checkpoint is the uninterrupted run."""

import json
import math
import time

import pytest
import torch
from safetensors.torch import load_file

from lorascale.errors import ConfigError
from lorascale.train import Callback, TrainConfig, resume_run, train

# lora_dropout draws from the global RNG every step and grad_accum = 2 moves the data position by two
# micro-batches a step: a resume that restored either wrongly would train on other masks or batches
RUN = dict(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=32, max_examples=48, max_val_batches=1,
           steps=10, lr=3e-3, rule="alpha-r", rank=4, lora_dropout=0.2, grad_accum=2, save_every=4, seed=3)


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, ctx, logs):
        if ctx.step == self.step:
            raise KeyboardInterrupt  # like Ctrl-C: the run is marked interrupted


def step_records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r]


def test_resumed_run_equals_the_uninterrupted_run(tmp_path):
    whole = train(TrainConfig(**RUN, out_dir=str(tmp_path / "whole")), progress=False)

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**RUN, out_dir=str(cut)), [StopAt(7)], progress=False)
    assert [r["step"] for r in step_records(cut)] == [1, 2, 3, 4, 5, 6]  # steps 5, 6 were past the checkpoint at 4
    resumed = resume_run(cut, progress=False)

    assert resumed.status == whole.status == "complete"
    # bitwise on the CPU: the same kernels on the same batches, dropout masks and optimizer state
    assert resumed.ema_curve == whole.ema_curve and resumed.final_ema_loss == whole.final_ema_loss
    assert resumed.val_loss == whole.val_loss
    drop = ("step_time", "tokens_per_s")  # wall-clock measurements, the only fields allowed to differ
    assert [{k: v for k, v in r.items() if k not in drop} for r in step_records(cut)] == \
           [{k: v for k, v in r.items() if k not in drop} for r in step_records(tmp_path / "whole")]
    a = load_file(tmp_path / "whole" / "adapter" / "adapter_model.safetensors")
    b = load_file(cut / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class SlowAt(Callback):
    def __init__(self, step, seconds):
        self.step, self.seconds = step, seconds

    def on_step_end(self, ctx, logs):
        if ctx.step == self.step:
            time.sleep(self.seconds)


def test_a_resumed_run_counts_the_time_its_checkpoint_took(tmp_path):
    # 5 s slept before the checkpoint at step 4; the resumed attempt itself takes ~1 s on tiny-llama
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**RUN, out_dir=str(cut)), [SlowAt(4, 5.0), StopAt(5)], progress=False)
    state = torch.load(cut / "checkpoint" / "state.pt", weights_only=True)
    assert state["elapsed"] >= 5.0
    t0 = time.time()
    resumed = resume_run(cut, progress=False)
    this_attempt = time.time() - t0
    assert state["elapsed"] + this_attempt >= resumed.wall_time >= state["elapsed"]


def test_a_resume_without_the_rng_state_would_differ(tmp_path, monkeypatch):
    """The test above can fail: dropping the RNG restore changes the resumed run's dropout masks."""
    from lorascale.train import checkpoint

    whole = train(TrainConfig(**(RUN | {"steps": 6}), out_dir=str(tmp_path / "whole")), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**(RUN | {"steps": 6}), out_dir=str(tmp_path / "cut")), [StopAt(5)], progress=False)
    monkeypatch.setattr(checkpoint, "_set_rng", lambda rng: torch.manual_seed(0))
    resumed = resume_run(tmp_path / "cut", progress=False)
    assert resumed.ema_curve[:4] == whole.ema_curve[:4] and resumed.ema_curve[4:] != whole.ema_curve[4:]


def test_only_unfinished_runs_with_a_checkpoint_resume(tmp_path):
    done = tmp_path / "done"
    train(TrainConfig(**(RUN | {"steps": 2}), out_dir=str(done)), progress=False)
    with pytest.raises(ConfigError) as e:
        resume_run(done, progress=False)
    assert e.value.field == "resume" and "complete" in e.value.message

    bare = tmp_path / "bare"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**(RUN | {"save_every": 0}), out_dir=str(bare)), [StopAt(2)], progress=False)
    with pytest.raises(ConfigError) as e:
        resume_run(bare, progress=False)
    assert e.value.field == "resume" and "save_every" in e.value.fix


def test_a_diverged_run_is_not_resumed(tmp_path):
    run = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**(RUN | {"steps": 6}), out_dir=str(run)), [StopAt(5)], progress=False)  # a checkpoint at 4
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(summary | {"status": "diverged"}))
    with pytest.raises(ConfigError) as e:
        resume_run(run, progress=False)
    assert e.value.field == "resume" and "diverged" in e.value.message


def test_a_save_that_died_between_its_renames_still_resumes_and_saves(tmp_path):
    """Both crash windows of the rotation: only ``checkpoint.old`` left, or ``.old`` left beside a new
    ``checkpoint``. The resume reads the complete one and its next save replaces both."""
    whole = train(TrainConfig(**RUN, out_dir=str(tmp_path / "whole")), progress=False)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**RUN, out_dir=str(cut)), [StopAt(7)], progress=False)
    (cut / "checkpoint").rename(cut / "checkpoint.old")  # died after the first rename, before the second
    resumed = resume_run(cut, progress=False)  # resumes at step 4, saves at 8: .old is in the way of that save
    assert resumed.status == "complete" and resumed.ema_curve == whole.ema_curve  # bitwise, as above
    assert not (cut / "checkpoint.old").exists()


def test_a_resume_that_fails_while_restoring_is_recorded_failed_and_still_resumes(tmp_path, monkeypatch, caplog):
    """A checkpoint that does not fit (here: restore raises, as a mismatched optimizer state does) used to
    leave summary.json saying "running": the run's setup ran outside the code that records a failure."""
    from lorascale.train import checkpoint

    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        # an epochs budget: its step count is known only once the data are loaded; a checkpoint at 4
        train(TrainConfig(**(RUN | {"steps": None, "epochs": 2.0}), out_dir=str(run)), [StopAt(5)], progress=False)
    budget = json.loads((run / "summary.json").read_text())["total_steps"]
    ema_at_4 = checkpoint.load_checkpoint(run).ema
    assert budget > 5 and math.isfinite(ema_at_4)
    real = checkpoint.Checkpoint.restore

    def broken(self, *a, **k):
        raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")

    monkeypatch.setattr(checkpoint.Checkpoint, "restore", broken)
    with pytest.raises(ValueError):
        resume_run(run, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps_done"] == 4 and "parameter group" in summary["message"]
    # the interrupted run's EMA and budget, not a fresh Ema's inf and 0 steps
    assert summary["final_ema_loss"] == ema_at_4 and summary["total_steps"] == budget
    monkeypatch.setattr(checkpoint.Checkpoint, "restore", real)
    # a failed run keeps its checkpoint; callbacks' state is not in it, and the resume says so
    assert resume_run(run, [Callback()], progress=False).status == "complete"
    assert sum("callbacks' own state is not checkpointed" in r.getMessage() for r in caplog.records) == 1
