"""Held-out evaluation: validation NLL per token (LM) or accuracy and loss (classification)."""

from __future__ import annotations

import math

from ..models import Task

__all__ = ["evaluate", "eval_metric_name"]


def eval_metric_name(task: Task) -> str:
    return "val_accuracy" if task is Task.CLASSIFICATION else "val_nll"


def evaluate(model, loader, task: Task, max_batches: int, accelerator=None) -> dict:
    """Mean over at most ``max_batches`` validation batches (the same fixed batches every call)."""
    import torch

    was_training = model.training
    model.eval()
    total_loss, count, correct = 0.0, 0, 0
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            out = model(**batch)
            if task is Task.CLASSIFICATION:
                n = batch["labels"].numel()
                correct += int((out.logits.argmax(-1) == batch["labels"]).sum())
            else:
                n = int((batch["labels"][:, 1:] != -100).sum())  # HF's loss is the mean over shifted targets
            total_loss += float(out.loss) * n
            count += n
    if was_training:
        model.train()
    if accelerator is not None and accelerator.num_processes > 1:
        t = accelerator.reduce(torch.tensor([total_loss, count, correct], dtype=torch.float64, device=accelerator.device), "sum")
        total_loss, count, correct = float(t[0]), int(t[1]), int(t[2])
    nll = total_loss / count if count else math.nan
    if task is Task.CLASSIFICATION:
        return {"val_loss": nll, "val_accuracy": correct / count if count else math.nan}
    return {"val_loss": nll, "val_nll": nll}
