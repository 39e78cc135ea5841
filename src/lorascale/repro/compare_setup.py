"""What ``repro compare`` compares: LoRA-α's Table 1/2 protocol at our scale, as data (torch-free).

LoRA-α (§5.1, Tables 1–2) trains every method at one base learning rate, and marks with an asterisk
each method's best from a 0.1×–10× sweep over η (over the knob α for LoRA-α). Here the sweep is the
log2 grid ×2⁻³ … ×2³ (0.125× … 8×) around each method's base point, with ``seeds`` seeds per point.

* :data:`METHODS`: each baseline as the flat settings it changes, and whether its sweep moves η or α.
* :data:`TASKS`: each task's model, data and budget; ``base_lr`` is its base learning rate (the
  full-finetuning rate the rules start from). The ``tiny-*`` tasks are smoke tests on random models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..vocabulary import Task

__all__ = ["CompareMethod", "CompareTask", "METHODS", "TASKS", "SWEEP_LOG2"]

SWEEP_LOG2 = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # ×0.125 … ×8: LoRA-α Table 1's 0.1×–10× on a log2 grid


@dataclass(frozen=True)
class CompareMethod:
    key: str
    label: str
    changes: dict  # flat TrainConfig settings
    lr_factor: float = 1.0  # × the task's base learning rate ("10× LR" is LoRA at 10 × the base)
    sweeps: str = "lr"  # "lr": the sweep multiplies η; "alpha": it multiplies LoRA-α's knob α at η = base


METHODS: dict[str, CompareMethod] = {m.key: m for m in (
    CompareMethod("lora", "LoRA (α = r)", {"rule": "alpha-r"}),
    CompareMethod("lora-10x", "LoRA, 10× LR", {"rule": "alpha-r"}, lr_factor=10.0),
    CompareMethod("rslora", "rsLoRA (lora_alpha = 16)", {"rule": "rslora", "lora_alpha": 16.0}),
    CompareMethod("loraplus", "LoRA+ (λ = 16)", {"rule": "alpha-r", "method": "loraplus"}),
    CompareMethod("pissa", "PiSSA", {"rule": "alpha-r", "method": "pissa"}),
    CompareMethod("dora", "DoRA", {"rule": "alpha-r", "method": "dora"}),
    CompareMethod("lora-alpha", "LoRA-α (Variant I, α = 1)", {"rule": "lora-alpha", "alpha": 1.0}, sweeps="alpha"),
    CompareMethod("fft", "full finetuning", {"finetune": "full"}),
)}


@dataclass(frozen=True)
class CompareTask:
    key: str
    label: str
    run: dict = field(default_factory=dict)  # flat TrainConfig settings: model, data, task and budget
    base_lr: float = 2e-5


TASKS: dict[str, CompareTask] = {t.key: t for t in (
    CompareTask("smollm2-shakespeare", "SmolLM2-135M, Shakespeare LM",
                {"model": "smollm2-135m", "data": "shakespeare", "steps": 100, "batch_size": 4, "seq_len": 128,
                 "max_val_batches": 16}),
    CompareTask("smollm2-dialogues", "SmolLM2-135M, dialogues SFT",
                {"model": "smollm2-135m", "data": "dialogues", "steps": 100, "batch_size": 4, "seq_len": 128,
                 "max_val_batches": 16}),
    # the same, on the corpus with each reply once: no held-out reply occurs in training (60 held-out pairs)
    CompareTask("smollm2-dialogues-unique", "SmolLM2-135M, dialogues SFT, each reply once",
                {"model": "smollm2-135m", "data": "dialogues-unique", "steps": 100, "batch_size": 4, "seq_len": 128,
                 "max_val_batches": 16}),
    CompareTask("minilm-genre", "MiniLM-L6, Shakespeare genre (6 classes)",
                {"model": "minilm-l6", "data": "shakespeare-genre", "steps": 150, "batch_size": 16, "seq_len": 64,
                 "max_val_batches": 16}, base_lr=1e-4),
    CompareTask("minilm-pairs", "MiniLM-L6, dialogue retrieval (InfoNCE)",
                {"model": "minilm-l6", "data": "dialogue-pairs", "task": Task.CONTRASTIVE, "steps": 150, "batch_size": 16,
                 "seq_len": 64, "max_val_batches": 8}, base_lr=1e-4),
    CompareTask("smollm2-rlvr", "SmolLM2-135M, arithmetic RLVR (GRPO)",
                {"model": "smollm2-135m", "data": "math", "task": Task.RLVR, "steps": 60, "batch_size": 4,
                 "num_generations": 8, "max_completion_length": 128, "train_problems": 240, "val_problems": 50,
                 "eval_generations": 4, "weight_decay": 0.0}, base_lr=1e-5),
    # smoke tests on random tiny models (what the test suite runs)
    CompareTask("tiny-lm", "tiny-llama, Shakespeare LM",
                {"model": "tiny-llama", "data": "shakespeare", "steps": 6, "batch_size": 4, "seq_len": 32,
                 "max_examples": 48, "max_val_batches": 2}, base_lr=1e-3),
    CompareTask("tiny-cls", "tiny-bert, Shakespeare genre",
                {"model": "tiny-bert", "data": "shakespeare-genre", "steps": 6, "batch_size": 4, "seq_len": 32,
                 "max_examples": 48, "max_val_batches": 2}, base_lr=1e-3),
)}
