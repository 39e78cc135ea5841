"""Both monitors inside Hugging Face Trainer through the TrainerCallback adapter."""

import json

import torch

from lorascale import apply
from lorascale.diagnostics import FeatureUpdateMonitor, SignalDriftMonitor, trainer_callback


class Rows(torch.utils.data.Dataset):
    def __init__(self, n=8, t=16):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(3, 250, (n, t), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.ids[i]}


def test_monitors_run_inside_hf_trainer_and_write_metrics(tiny_llama, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["q_proj", "down_proj"], seed=0)
    cb = trainer_callback(SignalDriftMonitor(), FeatureUpdateMonitor(every=2))  # no probe: HF's first batch
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2, weight_decay=0.0,
        lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[cb]).train()

    assert [r["step"] for r in cb.history] == [1, 2, 3, 4]
    first, second = cb.history[0], cb.history[1]
    # HF's AdamW without weight decay from B = 0: ΔA = 0 at step 1, so the drift is exactly zero there
    assert first["sd/all/drift_norm"] == 0.0 and first["sd/all/signal_norm"] > 0
    # Adam's first step is sign descent on B, so the signal s·ΔB·A points down the gradient: ⟨ΔB, −∇_B⟩ > 0
    assert first["sd/all/signal_align"] > 0
    assert second["sd/all/drift_norm"] > 0 and second["sd/all/ratio"] > 1
    assert {"sd/q_proj/signal_align", "sd/down_proj/signal_align"} <= set(second)
    # the feature-update monitor measures steps 2 and 4 on the batch it grabbed from the first forward
    assert [r["step"] for r in cb.history if "fu/all/delta2" in r] == [2, 4]
    assert second["fu/all/delta1"] > 0 and second["fu/all/delta2"] > 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] and lines[1]["sd/all/ratio"] == second["sd/all/ratio"]


def test_metrics_file_holds_one_run_rerun_or_resumed(tmp_path):
    """Re-running into an output_dir replaces its metrics.jsonl (not 1..4, 1..4); resuming from a checkpoint
    keeps the records through the checkpoint's step and drops those the first run wrote after it."""
    from transformers import Trainer, TrainingArguments

    from lorascale.models import load_model

    def run(**resume):
        model = apply(load_model("tiny-llama").model, rank=4, rule="alpha-r", targets=["q_proj"], seed=0)
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2,
                                 save_strategy="steps", save_steps=2, report_to=[], use_cpu=True, disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[trainer_callback(SignalDriftMonitor())]).train(**resume)
        return [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    assert [r["step"] for r in run()] == [1, 2, 3, 4]
    second = run()  # a fresh run into the same folder
    assert [r["step"] for r in second] == [1, 2, 3, 4]
    resumed = run(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert resumed[:2] == second[:2]  # the records through the checkpoint are the second run's, kept as written


def test_a_train_call_cut_short_leaves_no_hooks_behind_for_the_next(tiny_llama, tmp_path):
    """HF calls no on_train_end when train() raises; the next train() must not stack a second capture."""
    from types import SimpleNamespace

    model = apply(tiny_llama.model, rank=4, rule="alpha-r", targets=["q_proj"], seed=0)
    layer = next(m for n, m in model.named_modules() if n.endswith("q_proj"))
    cb = trainer_callback(SignalDriftMonitor(), metrics_path=None)
    args = SimpleNamespace(output_dir=str(tmp_path), deepspeed=None, fsdp="")
    state = SimpleNamespace(global_step=0, max_steps=4, is_world_process_zero=True)
    before = len(layer._forward_hooks)
    cb.on_train_begin(args, state, None, model=model)  # the first train(): it raises before on_train_end
    assert len(layer._forward_hooks) == before + 1  # the alignment capture's hook
    cb.on_train_begin(args, state, None, model=model)  # the second train()
    assert len(layer._forward_hooks) == before + 1  # still one: the first capture was detached
    cb.on_train_end(args, state, None)
    assert len(layer._forward_hooks) == before


def test_deepspeed_and_fsdp_are_refused_before_they_report_zeros(monkeypatch):
    from types import SimpleNamespace

    import pytest

    from lorascale.diagnostics.hf import sharded_or_fused
    from lorascale.errors import ConfigError

    sharded_or_fused(SimpleNamespace(deepspeed=None, fsdp=None))  # a plain or DDP run
    for field, args in (("deepspeed", SimpleNamespace(deepspeed="ds.json", fsdp="")),
                        ("fsdp", SimpleNamespace(deepspeed=None, fsdp="full_shard"))):
        with pytest.raises(ConfigError) as e:
            sharded_or_fused(args)
        assert e.value.field == field and "DDP" in e.value.fix
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # `accelerate launch` with a DeepSpeed config: args say nothing
    with pytest.raises(ConfigError, match="DeepSpeed"):
        sharded_or_fused(SimpleNamespace(deepspeed=None, fsdp=None))
