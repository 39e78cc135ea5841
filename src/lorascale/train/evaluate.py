"""A micro-batch's training loss, and held-out evaluation: validation NLL per token (LM), accuracy and
loss (classification), or retrieval recall@1/MRR and InfoNCE (contrastive, :mod:`.contrastive`)."""

from __future__ import annotations

import math

from ..vocabulary import Task
from .contrastive import batch_embeddings, evaluate_pairs, info_nce
from .held_out import evaluation_model, held_out_batches

__all__ = ["batch_loss", "evaluate", "eval_record", "count_targets", "accumulation_weights"]


def batch_loss(model, batch: dict, task: Task, temperature: float):
    """The mean loss of one micro-batch: Hugging Face's own (over next-token targets or examples), or
    InfoNCE over its pairs (contrastive: the encoder returns hidden states, not a loss)."""
    if task is Task.CONTRASTIVE:
        return info_nce(*batch_embeddings(model, batch), temperature)
    return model(**batch).loss


def count_targets(batch: dict) -> int:
    """How many loss terms a batch contributes: one per example (classification) or query (contrastive:
    ``labels`` = arange(B)), or one per non-ignored next-token target (LM; HF shifts labels by one, and
    −100 marks prompt/padding)."""
    labels = batch["labels"]
    if labels.dim() == 1:
        return labels.numel()
    return int((labels[:, 1:] != -100).sum())


def accumulation_weights(batches: list[dict], accelerator=None) -> list[float]:
    """Weights w_i with Σ w_i·mean_loss_i = the mean over all targets of the step's micro-batches.

    HF models return each micro-batch's *mean* loss; averaging those would over-weight micro-batches
    with few targets (short completions). w_i = n_i / Σ n_j makes accumulation equal one big batch.
    Under P processes (``accelerate launch``) DDP averages the P gradients, and the step's loss is the
    mean of the P processes' sums: w_i = P·n_i / N, with N the targets of every process's micro-batches,
    makes the step one big batch of all of them (a process with few targets gets its share, not 1/P).
    """
    counts = [count_targets(b) for b in batches]
    total, processes = sum(counts), 1
    if accelerator is not None and accelerator.num_processes > 1:
        import torch

        processes = accelerator.num_processes
        total = int(accelerator.reduce(torch.tensor(total, device=accelerator.device), "sum"))
    return [processes * c / total for c in counts] if total else [1.0 / len(batches)] * len(batches)


def evaluate(model, loader, task: Task, max_batches: int, accelerator=None, temperature: float | None = None) -> dict:
    """Mean over at most ``max_batches`` validation batches (the same fixed batches every call);
    contrastive: retrieval over the pairs of those batches, at the run's ``temperature``."""
    import torch

    if task is Task.CONTRASTIVE:
        assert temperature is not None, "contrastive evaluation needs the run's temperature"
        return evaluate_pairs(model, loader, max_batches, temperature, accelerator)

    model = evaluation_model(model, accelerator)
    was_training = model.training
    model.eval()
    total_loss, count, correct = 0.0, 0, 0
    with torch.no_grad():
        for batch in held_out_batches(loader, max_batches, accelerator):
            out = model(**batch)
            n = count_targets(batch)  # HF's loss is the mean over these
            if task is Task.CLASSIFICATION:
                correct += int((out.logits.argmax(-1) == batch["labels"]).sum())
            total_loss += float(out.loss) * n
            count += n
    if was_training:
        model.train()
    if accelerator is not None and accelerator.num_processes > 1:
        t = accelerator.reduce(torch.tensor([total_loss, count, correct], dtype=torch.float64, device=accelerator.device), "sum")
        total_loss, count, correct = float(t[0]), int(t[1]), int(t[2])
    return eval_record(task, total_loss, count, correct)


def eval_record(task: Task, total_loss: float, count: int, correct: int) -> dict:
    """The logged metrics from sums over validation targets: Σ loss, how many, how many correct."""
    nll = total_loss / count if count else math.nan
    if task is Task.CLASSIFICATION:
        return {"val_loss": nll, "val_accuracy": correct / count if count else math.nan}
    return {"val_loss": nll, "val_nll": nll}
