"""Members' batches stacked into one, and each member's own loss from the stacked forward.

Each member's loss is Hugging Face's own loss function on its rows (the mean over its non-ignored
next-token targets, or over its examples), the number a separate run's ``model(**batch).loss`` is;
for the contrastive task, InfoNCE over its own 2B-row block of pairs at its own temperature (a
member's negatives are its own batch's positives, as in a separate run).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...data.batches import IGNORE_INDEX
from ...vocabulary import Task
from ..contrastive import pair_loss

__all__ = ["stack_batches", "member_losses", "stacked_losses"]

_PAD = {"attention_mask": 0, "labels": IGNORE_INDEX}  # input_ids pad with the tokenizer's pad id


def stack_batches(batches: Sequence[dict], pad_id: int) -> dict:
    """Member-major concatenation of equal-sized batches, right-padded to the widest.

    Extra right padding is masked (attention_mask 0, labels −100), so it changes no member's loss: a
    causal model's earlier positions never attend to it and a padding mask hides it from an encoder.
    """
    import torch
    import torch.nn.functional as F

    sizes = {len(b["input_ids"]) for b in batches}
    assert len(sizes) == 1, f"members' batches differ in size: {sorted(sizes)}"
    width = max(b["input_ids"].shape[1] for b in batches)
    out = {}
    for key in batches[0]:
        parts = []
        for b in batches:
            t = b[key]
            if t.dim() == 2 and t.shape[1] < width:
                t = F.pad(t, (0, width - t.shape[1]), value=_PAD.get(key, pad_id))
            parts.append(t)
        out[key] = torch.cat(parts)
    return out


def member_losses(hf_model, task: Task, logits, labels, k: int) -> list:
    """Loss of each of the ``k`` members from the stacked ``logits``/``labels`` (rows member-major)."""
    rows = logits.shape[0] // k
    assert rows * k == logits.shape[0], f"{logits.shape[0]} rows for {k} members"
    losses = []
    for i in range(k):
        lg, lb = logits[i * rows:(i + 1) * rows], labels[i * rows:(i + 1) * rows]
        if task is Task.CLASSIFICATION:  # logits are the pooled (B, num_labels) ones
            losses.append(hf_model.loss_function(labels=lb, pooled_logits=lg, config=hf_model.config))
        else:
            losses.append(hf_model.loss_function(logits=lg, labels=lb, vocab_size=hf_model.config.vocab_size))
    return losses


def stacked_losses(model, hf_model, task: Task, batch: dict, temperatures: Sequence[float]) -> list:
    """Forward of a member-major stacked ``batch`` and the loss of each member (one temperature per member)."""
    k = len(temperatures)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if task is Task.CONTRASTIVE:  # (K·2B, T, d): member k's block is its B queries then its B positives
        return [pair_loss(h, m, t) for h, m, t in zip(out.last_hidden_state.chunk(k), batch["attention_mask"].chunk(k), temperatures)]
    return member_losses(hf_model, task, out.logits, batch["labels"], k)
