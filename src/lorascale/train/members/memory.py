"""How many members fit in a memory budget: a planning estimate for an ``auto`` pack size.

Memory of a pack of K members = base + K·member, where

* base: the frozen weights, stored once (``n_base_params`` × bytes per weight);
* member: its adapter and head state in fp32 — parameter, gradient and AdamW's m and v, 16 bytes
  per trainable parameter — plus what backward keeps of its B×T rows. Per transformer layer and token
  that is about 17 hidden-width vectors plus the attention scores (Korthikanti et al. 2022, "Reducing
  Activation Recomputation in Large Transformer Models", Eq. 1: s·b·h·(34 + 5·a·s/h) bytes in 16-bit,
  i.e. 17·h + 2.5·a·s values; we drop its dropout masks' share only implicitly, an overestimate for
  dropout-free models), and for a language model the logits, their float32 log-softmax and gradient
  (3 × T·V floats per row).

The formula undercounts what autograd keeps in fp32 on a CPU (GELU inputs, softmax outputs, layer-norm
statistics, the allocator's slack): ``bench/bench_members.py`` measured a pack's working memory growing
by 438 MB per member on MiniLM at 8×128 where the formula gives 253 MB, so activations and logits are
scaled by :data:`CALIBRATION` (measured on that CPU run; a GPU with memory-efficient attention needs less,
which only makes ``--members auto`` more cautious there). An automatic choice keeps the headroom below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MemoryEstimate", "estimate_memory", "estimate_for", "members_that_fit", "CALIBRATION"]

ADAM_BYTES = 16  # fp32 parameter + gradient + AdamW m + v
ACT_VECTORS = 17  # hidden-width vectors kept per token per layer (Korthikanti et al. Eq. 1: 34 bytes at 16-bit)
SCORE_VALUES = 2.5  # per head per key per token (their 5·a·s/h bytes at 16-bit)
LOGIT_COPIES = 3  # logits, their float32 log-softmax, and the gradient
CALIBRATION = 1.73  # measured ÷ formula, per member: docs/results/members/bench-cpu-minilm.json (438 / 253 MB)


@dataclass(frozen=True)
class MemoryEstimate:
    base_bytes: int  # shared: the frozen weights
    member_bytes: int  # each member: trainable state and activations of its rows

    def total(self, k: int) -> int:
        return self.base_bytes + k * self.member_bytes


def estimate_memory(n_base_params: int, n_trainable: int, batch_size: int, seq_len: int, hidden: int, n_layers: int,
                    n_heads: int, vocab: int = 0, weight_bytes: int = 4, act_bytes: int = 4,
                    calibration: float = CALIBRATION) -> MemoryEstimate:
    """Memory of the base and of one member (``vocab`` 0: a classification head, no per-token logits);
    ``calibration`` scales the activations and logits (1.0: the formula as published)."""
    tokens = batch_size * seq_len
    per_layer = tokens * (ACT_VECTORS * hidden + SCORE_VALUES * n_heads * seq_len) * act_bytes
    logits = LOGIT_COPIES * tokens * vocab * 4
    member = ADAM_BYTES * n_trainable + calibration * (n_layers * per_layer + logits)
    return MemoryEstimate(int(n_base_params * weight_bytes), int(member))


def estimate_for(hf_model, n_trainable: int, cfg, bf16: bool = False) -> MemoryEstimate:
    """:func:`estimate_memory` with the shapes read from a Hugging Face model's config."""
    from ...vocabulary import Task

    c = hf_model.config
    is_lm = type(hf_model).__name__.endswith("ForCausalLM")  # a sequence classifier has no per-token logits
    n_base = sum(p.numel() for p in hf_model.parameters())
    rows = cfg.batch_size * (2 if cfg.task is Task.CONTRASTIVE else 1)  # a contrastive pair is a query and a positive row
    return estimate_memory(n_base, n_trainable, rows, cfg.seq_len, c.hidden_size, c.num_hidden_layers,
                           c.num_attention_heads, c.vocab_size if is_lm else 0, act_bytes=2 if bf16 else 4)


def members_that_fit(budget_bytes: int, estimate: MemoryEstimate, headroom: float = 0.9, max_members: int | None = None) -> int:
    """The largest K with base + K·member ≤ headroom·budget (0 when not even one member fits)."""
    assert 0 < headroom <= 1, f"headroom {headroom} must be in (0, 1]"
    free = headroom * budget_bytes - estimate.base_bytes
    k = max(0, math.floor(free / estimate.member_bytes)) if estimate.member_bytes > 0 else (max_members or 0)
    return k if max_members is None else min(k, max_members)
