"""The contrastive objective: mean-pooled sentence embeddings, InfoNCE with in-batch negatives, and
held-out retrieval (recall@1, MRR).

**Embedding** — sentence-transformers' ``Pooling(mean)`` then ``Normalize``, the modules all-MiniLM-L6-v2
ships with: the attention-mask-weighted mean of the last hidden states, scaled to unit length,

    e = Σ_t m_t·h_t / Σ_t m_t,    ê = e / ‖e‖.

**Loss** — InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive
Coding", eq. 4) over a batch of B pairs (q_i, p_i), each query's negatives being the other B − 1
positives, on cosine similarities over a temperature τ:

    S_ij = ê(q_i)·ê(p_j) / τ,    ℓ = −(1/B) Σ_i log( exp S_ii / Σ_j exp S_ij ) = mean_i CE(S_i·, i).

It is **one-directional** (query → positive), as SimCSE's eq. 1 (Gao et al. 2021) and
sentence-transformers' ``MultipleNegativesRankingLoss``: the task is retrieving a query's positive,
which is also what the held-out metrics score. The symmetric variant (CLIP;
``MultipleNegativesSymmetricRankingLoss``) would add the positive → query term.
τ = 0.05 (the ``temperature`` setting) is SimCSE's choice (§3, App. B) and the default of
``MultipleNegativesRankingLoss`` (scale 20 = 1/0.05 on cosine similarity).

**Held-out** — every held-out query (those the evaluation reads, ``max_val_batches`` batches) is
scored against every held-out positive: the rank of its own positive is 1 + #{j ≠ i : S_ij ≥ S_ii}
(a tie counts against the query, so collapsed embeddings cannot score), recall@1 = mean(rank = 1),
MRR = mean(1/rank), and the held-out loss is the InfoNCE above over that whole pool (N − 1
negatives per query), so it does not depend on how the held-out pairs fall into batches.

A batch (:mod:`lorascale.data.batches`) holds B pairs as 2B rows, queries then positives, with
``labels = arange(B)``: one encoder forward embeds both sides, and members stack their 2B-row blocks.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TEMPERATURE", "mean_pool", "embed", "split_pairs", "info_nce", "pair_loss", "retrieval_ranks",
           "retrieval_record", "batch_embeddings", "evaluate_pairs", "take_pairs"]

DEFAULT_TEMPERATURE = 0.05  # SimCSE §3; sentence-transformers' MultipleNegativesRankingLoss scale 20 = 1/0.05


def mean_pool(hidden, mask):
    """(N, T, d) hidden states, (N, T) attention mask -> (N, d) mean over unmasked tokens (in float32)."""
    m = mask.unsqueeze(-1).float()
    return (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1e-9)  # sentence-transformers' clamp: no 0/0


def embed(hidden, mask):
    """Unit-length mean-pooled embeddings (N, d)."""
    import torch.nn.functional as F

    return F.normalize(mean_pool(hidden, mask), dim=-1)


def split_pairs(emb):
    """(2B, d) rows, queries then positives -> (queries (B, d), positives (B, d))."""
    assert emb.shape[0] % 2 == 0, f"{emb.shape[0]} rows are not B queries followed by B positives"
    b = emb.shape[0] // 2
    return emb[:b], emb[b:]


def info_nce(q, p, temperature: float):
    """Mean over queries of −log softmax(S_i·)_i with S = q·pᵀ/τ; q, p (N, d) unit rows."""
    import torch
    import torch.nn.functional as F

    sim = q @ p.T / temperature  # (N, N): row i scores query i against every positive
    return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))


def pair_loss(hidden, mask, temperature: float):
    """InfoNCE of one batch from the encoder's (2B, T, d) last hidden states and (2B, T) mask."""
    return info_nce(*split_pairs(embed(hidden, mask)), temperature)


def take_pairs(batch: dict, n: int) -> dict:
    """The first ``n`` pairs of a pair batch, in the same layout: their query rows then their positive rows."""
    import torch

    b = len(batch["labels"])
    n = min(n, b)
    rows = torch.cat([torch.arange(n), b + torch.arange(n)])
    return {"input_ids": batch["input_ids"][rows], "attention_mask": batch["attention_mask"][rows], "labels": torch.arange(n)}


def retrieval_ranks(q, p):
    """(N,) rank of each query's own positive among all N positives, ties counted against it; N, the worst,
    for a query with a non-finite similarity (an overflowed embedding retrieves nothing)."""
    import torch

    sim = q @ p.T  # (N, N)
    own = sim.diagonal().unsqueeze(1)  # (N, 1)
    ranks = (sim >= own).sum(1)  # #{j : S_ij ≥ S_ii}: the positive itself (j = i) plus every j ≠ i that ties or beats it
    return torch.where(sim.isfinite().all(1), ranks, torch.full_like(ranks, sim.shape[0]))  # NaN compares False: rank 0


def retrieval_record(q, p, temperature: float) -> dict:
    """Held-out metrics of N pairs' embeddings: the pool's InfoNCE, recall@1 and MRR."""
    import math

    if q.shape[0] < 2:  # a pool of one pair retrieves trivially; the data checks keep ≥ 2 held-out pairs
        return {"val_loss": math.nan, "val_recall_at_1": math.nan, "val_mrr": math.nan}
    ranks = retrieval_ranks(q, p).double()
    return {"val_loss": float(info_nce(q, p, temperature)), "val_recall_at_1": float((ranks == 1).double().mean()),
            "val_mrr": float((1.0 / ranks).mean())}


def batch_embeddings(model, batch):
    """(queries, positives) unit embeddings of a pair batch from the encoder ``model``."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return split_pairs(embed(out.last_hidden_state, batch["attention_mask"]))


def evaluate_pairs(model, loader, max_batches: int, temperature: float, accelerator=None) -> dict:
    """:func:`retrieval_record` over the first ``max_batches`` held-out batches (the same ones every call);
    under several processes each embeds its share and every process scores the whole pool."""
    import torch

    from .held_out import evaluation_model, held_out_batches

    model = evaluation_model(model, accelerator)
    was_training = model.training
    model.eval()
    qs, ps = [], []
    with torch.no_grad():
        for batch in held_out_batches(loader, max_batches, accelerator):
            q, p = batch_embeddings(model, batch)
            qs.append(q)
            ps.append(p)
    if was_training:
        model.train()
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        # python objects, so a process with no batch (max_batches < processes) takes part; the pool's
        # order is the processes' in turn, and the metrics do not depend on the order of the pairs
        pairs = gather_object([(q.cpu(), p.cpu()) for q, p in zip(qs, ps)])
        qs, ps = [q.to(accelerator.device) for q, _ in pairs], [p.to(accelerator.device) for _, p in pairs]
    return retrieval_record(torch.cat(qs), torch.cat(ps), temperature)
