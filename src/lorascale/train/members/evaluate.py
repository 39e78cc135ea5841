"""Members evaluated together on the shared validation set: each batch is repeated once per member
and every member's metrics are summed exactly as :func:`lorascale.train.evaluate.evaluate` sums one run's
(contrastive: each member's held-out embeddings scored by the same :func:`~..contrastive.retrieval_record`)."""

from __future__ import annotations

from collections.abc import Sequence

from ...vocabulary import Task
from ..contrastive import embed, retrieval_record, split_pairs
from ..evaluate import count_targets, eval_record
from .batched_lora import StackedMembers
from .losses import member_losses

__all__ = ["evaluate_members"]


def evaluate_members(model, hf_model, loader, task: Task, max_batches: int, stack: StackedMembers,
                     names: Sequence[str], temperatures: Sequence[float]) -> list[dict]:
    """One metrics dict per member in ``names`` (the same keys and sums as a separate run's)."""
    import torch

    before, was_training = stack.active, model.training
    stack.active = list(names)
    model.eval()
    k = len(names)
    if task is Task.CONTRASTIVE:
        try:
            return _evaluate_pairs(model, loader, max_batches, temperatures)
        finally:
            stack.active = before
            model.train(was_training)
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


def _evaluate_pairs(model, loader, max_batches: int, temperatures: Sequence[float]) -> list[dict]:
    """Every member embeds the held-out pairs (batch repeated member-major) and is scored on its own pool."""
    import torch

    k = len(temperatures)
    qs, ps = [[] for _ in range(k)], [[] for _ in range(k)]
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            mask = batch["attention_mask"].repeat(k, 1)
            hidden = model(input_ids=batch["input_ids"].repeat(k, 1), attention_mask=mask).last_hidden_state
            for j, (h, m) in enumerate(zip(hidden.chunk(k), mask.chunk(k))):
                q, p = split_pairs(embed(h, m))
                qs[j].append(q)
                ps[j].append(p)
    return [retrieval_record(torch.cat(q), torch.cat(p), t) for q, p, t in zip(qs, ps, temperatures)]
