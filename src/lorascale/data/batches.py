"""Examples -> tokenised tensors -> deterministic train/validation split -> DataLoaders.

The split hashes each item's index (CRC32), so the held-out set is the same for every seed, run
and machine: sweeps compare configurations on one fixed validation set.
"""

from __future__ import annotations

import logging
import random
import zlib
from dataclasses import dataclass

from ..errors import ConfigError, collecting
from .chat import has_chat_template, templated_chat
from .examples import Examples, Kind

__all__ = ["TokenisedData", "tokenise", "split_indices", "make_loaders", "capped_order", "IGNORE_INDEX",
           "check_pairs_per_batch", "contrastive_batch_errors", "MIN_PAIRS"]

IGNORE_INDEX = -100  # labels PyTorch's cross-entropy ignores
CAP_SEED = 0  # the data sample of capped runs is fixed, not tied to the training seed
log = logging.getLogger(__name__)
MIN_PAIRS = 2  # contrastive: a query's negatives are the batch's other positives, so a batch needs two pairs


@dataclass
class TokenisedData:
    kind: Kind
    items: list[dict]  # each: input_ids (list[int]) and labels (list[int] or int); or query_ids and positive_ids
    num_labels: int = 0


def check_pairs_per_batch(batch_size: int) -> None:
    """Contrastive batches need ≥ 2 pairs: with one, InfoNCE has no negative and its loss is exactly 0."""
    if batch_size < MIN_PAIRS:
        raise ConfigError("batch_size", f"contrastive training needs at least {MIN_PAIRS} pairs per batch (the other"
                                        f" pairs are each query's negatives); got {batch_size}",
                          "use `batch_size` 2 or more (more pairs per batch give more negatives)")


def contrastive_batch_errors(batch_size: int, grad_accum: int) -> list[ConfigError]:
    """Every problem with a contrastive batch shape. Accumulation is refused: InfoNCE's negatives are the
    other pairs of one forward pass, so ``grad_accum`` micro-batches of B pairs train with B − 1 negatives
    per query, an easier objective than one batch of B·grad_accum pairs (that would need the embeddings of
    every micro-batch before any backward, as GradCache does)."""
    errors = []
    with collecting(errors):
        check_pairs_per_batch(batch_size)
    if grad_accum > 1:
        errors.append(ConfigError("grad_accum", f"contrastive training draws each query's negatives from its own"
                                  f" micro-batch, so grad_accum {grad_accum} would train with the B − 1 negatives of a"
                                  f" micro-batch of B = batch_size pairs, not the {grad_accum}·B − 1 of one batch",
                                  "use grad_accum 1 and raise batch_size (or lower it to fit memory)"))
    return errors


def split_indices(n: int, val_fraction: float, salt: str = "lorascale") -> tuple[list[int], list[int]]:
    """Deterministic split: item i is validation iff crc32(salt:i) mod 10⁶ < val_fraction·10⁶."""
    cut = int(val_fraction * 1_000_000)
    train, val = [], []
    for i in range(n):
        (val if zlib.crc32(f"{salt}:{i}".encode()) % 1_000_000 < cut else train).append(i)
    if not val and n > 1:
        val.append(train.pop())
    return train, val


def capped_order(n: int, max_items: int | None) -> list[int]:
    """Which items a capped run uses: all of them in order, or a fixed random sample (seed-independent,
    so every run of a sweep sees the same data). Builtin sets are ordered (plays by genre), so a plain
    prefix would be unrepresentative — e.g. a single class."""
    if max_items is None or max_items >= n:
        return list(range(n))
    return sorted(random.Random(CAP_SEED).sample(range(n), max_items))


def tokenise(ex: Examples, tokenizer, seq_len: int, max_items: int | None = None) -> TokenisedData:
    if ex.kind is Kind.TEXT:
        # a capped LM run reads documents in a fixed shuffled order, not just the first plays/books
        docs = ex.texts if max_items is None else random.Random(CAP_SEED).sample(ex.texts, len(ex.texts))
        return TokenisedData(Kind.TEXT, _blocks(docs, tokenizer, seq_len, max_items))
    keep = capped_order(len(ex), max_items)
    if ex.kind is Kind.PAIR:
        prompts, completions = [ex.prompts[i] for i in keep], [ex.completions[i] for i in keep]
        templated = bool(ex.chats) and has_chat_template(tokenizer)
        if templated:  # the template's end-of-turn tokens close each answer: no EOS appended
            prompts, completions = map(list, zip(*(templated_chat(ex.chats[i], tokenizer) for i in keep)))
        elif ex.chats:
            log.info("%s: the tokenizer has no chat template; chat turns are written as 'role: content' lines", ex.name)
        return TokenisedData(Kind.PAIR, _pairs(prompts, completions, tokenizer, seq_len, append_eos=not templated))
    if ex.kind is Kind.QUERY_POSITIVE:  # each side on its own, truncated to seq_len (encoders add [CLS]/[SEP])
        q = tokenizer([ex.queries[i] for i in keep], truncation=True, max_length=seq_len)["input_ids"]
        p = tokenizer([ex.positives[i] for i in keep], truncation=True, max_length=seq_len)["input_ids"]
        return TokenisedData(Kind.QUERY_POSITIVE, [{"query_ids": a, "positive_ids": b} for a, b in zip(q, p)])
    ids = tokenizer([ex.texts[i] for i in keep], truncation=True, max_length=seq_len)["input_ids"]
    items = [{"input_ids": x, "labels": ex.labels[i]} for x, i in zip(ids, keep)]
    return TokenisedData(Kind.LABELED, items, num_labels=len(ex.label_names))


def _blocks(texts: list[str], tokenizer, seq_len: int, max_items: int | None) -> list[dict]:
    """Concatenate documents (EOS between them) and cut into blocks of seq_len tokens (GPT-2 style packing)."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    need = None if max_items is None else (max_items + 1) * seq_len
    # With a cap, tokenise document by document and stop early; without, one batched call is fastest.
    docs = _lazy(texts, tokenizer) if need is not None else tokenizer(texts, add_special_tokens=False)["input_ids"]
    for ids in docs:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
        if need is not None and len(stream) >= need:
            break
    n = len(stream) // seq_len
    if n == 0:
        raise ConfigError("seq_len", f"the text has {len(stream)} tokens, fewer than one block of {seq_len}", "lower `seq_len`")
    return [{"input_ids": stream[i * seq_len : (i + 1) * seq_len]} for i in range(n)][:max_items]


def _lazy(texts, tokenizer):
    for t in texts:
        yield tokenizer(t, add_special_tokens=False)["input_ids"]


def _pairs(prompts: list[str], completions: list[str], tokenizer, seq_len: int, append_eos: bool = True) -> list[dict]:
    eos = tokenizer.eos_token_id if append_eos else None
    items = []
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    for p, c in zip(p_ids, c_ids):
        c = c + ([eos] if eos is not None else [])
        ids = (p + c)[:seq_len]
        labels = ([IGNORE_INDEX] * len(p) + c)[:seq_len]  # loss on the completion only
        if any(y != IGNORE_INDEX for y in labels[1:]):  # the model shifts labels: position 0 is never predicted
            items.append({"input_ids": ids, "labels": labels})
    if not items:
        raise ConfigError("seq_len", f"every prompt fills all {seq_len} tokens, leaving no completion", "raise `seq_len`")
    if len(items) < len(p_ids):  # a micro-batch of such rows alone would have no target: a NaN loss
        log.info("%d of %d prompt/completion pairs leave no completion token to predict within seq_len %d (a prompt"
                 " that fills it, or an empty prompt with a one-token answer); they are left out",
                 len(p_ids) - len(items), len(p_ids), seq_len)
    return items


def _collate(kind: Kind, pad_id: int):
    import torch

    def padded(rows: list[list[int]]):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    def collate(batch: list[dict]) -> dict:
        if kind is Kind.TEXT:
            ids = torch.tensor([b["input_ids"] for b in batch])
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
        if kind is Kind.QUERY_POSITIVE:
            # B pairs as 2B rows, queries then positives, so one encoder forward embeds both (and members
            # stack their 2B-row blocks member-major); labels[i] = i: query i's positive is positive row i
            ids, mask = padded([b["query_ids"] for b in batch] + [b["positive_ids"] for b in batch])
            return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(len(batch))}
        ids, mask = padded([b["input_ids"] for b in batch])
        if kind is Kind.LABELED:
            return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([b["labels"] for b in batch])}
        labels = torch.full(ids.shape, IGNORE_INDEX)
        for i, b in enumerate(batch):
            labels[i, : len(b["labels"])] = torch.tensor(b["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def make_loaders(data: TokenisedData, batch_size: int, val_fraction: float, seed: int, pad_id: int, max_train: int | None = None):
    """(train_loader, val_loader). Training order is shuffled by ``seed``; the split is not."""
    import torch
    from torch.utils.data import DataLoader

    train_idx, val_idx = split_indices(len(data.items), val_fraction)
    # Evaluation reads the first max_val_batches of this order: a fixed shuffle (not the training seed)
    # keeps that subset the same for every run and representative of ordered data (plays by genre).
    val_idx = random.Random(CAP_SEED).sample(val_idx, len(val_idx))
    if max_train is not None:
        train_idx = train_idx[:max_train]
    if not train_idx:
        raise ConfigError("data", "no training examples left after the validation split", "add data or lower `val_fraction`")
    if data.kind is Kind.QUERY_POSITIVE:
        check_pairs_per_batch(batch_size)
        for split, idx in (("training", train_idx), ("held-out", val_idx)):
            if len(idx) < MIN_PAIRS:
                raise ConfigError("data", f"{len(idx)} {split} pair(s) after the split; contrastive {split} needs at least"
                                          f" {MIN_PAIRS}", "add pairs, or change val_fraction or max_examples")
    collate = _collate(data.kind, pad_id)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader([data.items[i] for i in train_idx], batch_size=batch_size, shuffle=True, generator=gen,
                       collate_fn=collate, drop_last=len(train_idx) >= batch_size)
    val = DataLoader([data.items[i] for i in val_idx], batch_size=batch_size, shuffle=False, collate_fn=collate)
    return train, val
