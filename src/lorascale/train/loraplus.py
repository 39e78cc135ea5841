"""LoRA+ (Hayou, Ghosh & Yu 2024): B's learning rate is λ × A's, with the groups PEFT builds.

PEFT's ``peft.optimizers.create_loraplus_optimizer`` decides which parameter gets which rate: every
``lora_B`` factor and every 1-D parameter (DoRA's magnitude, biases) at λ·η, adapters on embeddings at a
fixed 1e-6, everything else at η. lorascale asks PEFT's function for that assignment rather than
re-deriving it, then builds the μA recipe's groups from it (AdamW, weight decay 0.01 on every group,
the classification head at its own rate), which PEFT's optimizer cannot express: it sets weight decay 0.
"""

from __future__ import annotations

__all__ = ["loraplus_lrs"]


def loraplus_lrs(model, lr: float, ratio: float) -> dict[int, float]:
    """``id(parameter) → learning rate`` for every trainable parameter of ``model``, as PEFT's
    ``create_loraplus_optimizer(model, lr=lr, loraplus_lr_ratio=ratio)`` assigns them."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    # SGD holds no state until it steps: building it only reads PEFT's grouping
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=lr, loraplus_lr_ratio=ratio)
    return {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
