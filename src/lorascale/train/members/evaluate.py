"""Members evaluated together on the shared validation set: each batch is repeated once per member
and every member's metrics are summed exactly as :func:`lorascale.train.evaluate.evaluate` sums one run's."""

from __future__ import annotations

from collections.abc import Sequence

from ...vocabulary import Task
from ..evaluate import count_targets, eval_record
from .batched_lora import StackedMembers
from .losses import member_losses

__all__ = ["evaluate_members"]


def evaluate_members(model, hf_model, loader, task: Task, max_batches: int, stack: StackedMembers,
                     names: Sequence[str]) -> list[dict]:
    """One metrics dict per member in ``names`` (the same keys and sums as a separate run's)."""
    import torch

    before, was_training = stack.active, model.training
    stack.active = list(names)
    model.eval()
    k = len(names)
    sums = [[0.0, 0, 0] for _ in names]  # Σ loss·n, n, correct
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= max_batches:
                    break
                logits = model(input_ids=batch["input_ids"].repeat(k, 1), attention_mask=batch["attention_mask"].repeat(k, 1)).logits
                labels = batch["labels"].repeat(k, *([1] * (batch["labels"].dim() - 1)))
                n = count_targets(batch)  # HF's loss is the mean over these
                for s, loss, lg in zip(sums, member_losses(hf_model, task, logits, labels, k), logits.chunk(k)):
                    if task is Task.CLASSIFICATION:
                        s[2] += int((lg.argmax(-1) == batch["labels"]).sum())
                    s[0] += float(loss) * n
                    s[1] += n
    finally:
        stack.active = before
        if was_training:
            model.train()
    return [eval_record(task, *s) for s in sums]
