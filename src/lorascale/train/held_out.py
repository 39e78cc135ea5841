"""The held-out batches an evaluation reads: the first ``max_val_batches`` of the validation loader, the same
ones however many processes share the run.

The validation loader is not handed to ``accelerator.prepare``: accelerate would shard it, and each of P
processes would read ``max_val_batches`` of its own shard, P times the batches a single process reads (and
repeat samples to even out the shards). Instead every process walks the one unsharded loader and evaluates
the batches i < ``max_val_batches`` with i mod P = its rank; the callers add up (or gather) the shares.
The shares can differ in size, so they run through the unwrapped model: DDP's forward broadcasts buffers
(a collective every process must join), which a process with one batch fewer would leave waiting.
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["held_out_batches", "evaluation_model"]


def held_out_batches(loader, max_batches: int, accelerator=None) -> Iterator[dict]:
    """This process's share of the loader's first ``max_batches`` batches, on its device."""
    rank, processes = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    device = accelerator.device if accelerator is not None else None
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        if i % processes == rank:
            yield batch if device is None else {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def evaluation_model(model, accelerator=None):
    """The model without its DDP wrapper (keeping accelerate's autocast): its forward joins no collective."""
    return accelerator.unwrap_model(model) if accelerator is not None else model
