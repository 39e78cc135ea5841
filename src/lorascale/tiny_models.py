"""The tiny random models (``tiny-llama@W``, ``tiny-bert@W``) for tests and width families, and their
byte-level tokenizer: which widths they take, and how they are built. :mod:`lorascale.models` loads them."""

from __future__ import annotations

__all__ = ["TINY_MODELS", "MAX_TINY_WIDTH", "HEAD_WIDTH", "TINY_POSITIONS", "tiny_heads", "tiny_width_ok", "parse_tiny_width",
           "byte_tokenizer", "build_tiny_llama", "build_tiny_bert"]

TINY_MODELS = ("tiny-llama", "tiny-bert")
MAX_TINY_WIDTH = 16384  # the widest released transformers (Llama-3.1 405B) are 16384 wide
HEAD_WIDTH = 16  # the tiny models get one attention head per 16 of width
TINY_POSITIONS = 512  # the tiny models' position table (and RoPE's nominal context)


def tiny_heads(width: int) -> int:
    return max(1, width // HEAD_WIDTH)


def tiny_width_ok(base: str, width: int) -> bool:
    """Attention splits the hidden size into equal heads; Llama's rotary embedding needs an even head size."""
    heads = tiny_heads(width)
    return width % heads == 0 and (base != "tiny-llama" or width // heads % 2 == 0)


def parse_tiny_width(text: str, name: str) -> int:
    from .models import ModelError

    base = name.partition("@")[0]
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ModelError("model", f"the width in {name!r} must be a positive integer", f"e.g. {base}@128")
    width = int(text)
    if width > MAX_TINY_WIDTH:
        raise ModelError("model", f"width {width} is past the widest real transformers ({MAX_TINY_WIDTH}); the tiny models"
                         " are for tests and width families", f"use a width up to {MAX_TINY_WIDTH}, e.g. {base}@1024")
    if not tiny_width_ok(base, width):
        lower = next((w for w in range(width, 0, -1) if tiny_width_ok(base, w)), None)
        upper = next(w for w in range(width, 2 * width + HEAD_WIDTH) if tiny_width_ok(base, w))
        even = " even-sized (rotary embedding)" if base == "tiny-llama" else ""
        raise ModelError("model", f"hidden size {width} does not split into {tiny_heads(width)} equal{even} attention heads"
                         f" (one per {HEAD_WIDTH} of width)", (f"use e.g. {base}@{lower} or {base}@{upper}" if lower else
                          f"use e.g. {base}@{upper}") + f" (every multiple of {HEAD_WIDTH} works)")
    return width


def byte_tokenizer():
    """A 259-token byte-level tokenizer (256 bytes + pad/bos/eos) built with the `tokenizers` library."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in ("<pad>", "<s>", "</s>"):
        vocab[special] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>"
    )


def build_tiny_llama(width: int, seed: int):
    """A 2-layer Llama of hidden size ``width`` with random weights drawn from ``seed``, and its byte tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = byte_tokenizer()
    heads = tiny_heads(width)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=TINY_POSITIONS,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # the base's own draws; the caller's global RNG is untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model, tok


def build_tiny_bert(width: int, num_labels: int, seed: int, encoder: bool = False):
    """A 2-layer dropout-free BERT (a classifier, or the bare encoder) of hidden size ``width``, and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tok = byte_tokenizer()
    heads = tiny_heads(width)
    cfg = BertConfig(
        vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=heads, max_position_embeddings=TINY_POSITIONS, num_labels=num_labels, pad_token_id=tok.pad_token_id,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(cfg, add_pooling_layer=False) if encoder else BertForSequenceClassification(cfg)
    return model, tok
