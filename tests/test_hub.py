"""Hub IDs resolved from a local Hugging Face cache, offline: a fake cache built in tmp (HF_HOME)."""

import json

import pytest
import torch

from lorascale.errors import ConfigError
from lorascale.hub import is_hub_id
from lorascale.models import hub_id, load_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty HF_HOME. huggingface_hub reads HF_HOME once, at import: point its cache constant there too."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "hf" / "hub"


def snapshot(cache, repo_type, repo_id):
    """The folder huggingface_hub keeps a repo's main revision in: <type>s--org--name/snapshots/<commit>."""
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    return folder


def test_hub_ids_are_told_from_paths(tmp_path):
    assert is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and is_hub_id("org/my.data_v2")
    assert not is_hub_id("data/train.jsonl") and not is_hub_id("smollm2-135m") and not is_hub_id("/abs/path")
    (tmp_path / "a").mkdir()
    assert not is_hub_id(str(tmp_path / "a"))


def test_model_id_loads_from_the_cache_and_keeps_its_name(hf_home):
    tiny = load_model("tiny-llama")
    folder = snapshot(hf_home, "model", "someone/tiny-llama")
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)

    loaded = load_model("someone/tiny-llama")
    assert loaded.name == "someone/tiny-llama" and loaded.model.config._name_or_path == "someone/tiny-llama"
    assert hub_id("someone/tiny-llama") == "someone/tiny-llama"  # what an adapter records as its base
    for (n, a), (m, b) in zip(tiny.model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert n == m and torch.equal(a, b), n  # the very weights that were saved, bit for bit
    assert loaded.default_targets == ("gate_proj", "up_proj", "down_proj")  # a Llama: μA's MLP placement


def test_missing_model_id_names_the_download_command(hf_home):
    with pytest.raises(ConfigError) as e:
        load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert e.value.field == "model" and str(hf_home) in e.value.message
    assert "hf download HuggingFaceTB/SmolLM2-135M-Instruct" in e.value.fix
    assert "smollm2-135m" in e.value.fix  # the embedded copy of that model needs no download


def test_dataset_id_loads_from_the_cache(hf_home):
    from lorascale.data import Kind, load_examples

    folder = snapshot(hf_home, "dataset", "someone/chats")
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(3)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ex = load_examples("someone/chats")
    assert ex.kind is Kind.PAIR and ex.prompts == ["q0", "q1", "q2"] and ex.completions == ["a0", "a1", "a2"]

    with pytest.raises(ConfigError) as e:
        load_examples("someone/absent")
    assert e.value.field == "data" and "hf download someone/absent --repo-type dataset" in e.value.fix
