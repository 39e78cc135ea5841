"""Saved adapters name their Hub base model, and lorascale's metadata beside them."""

import json

import lorascale
from lorascale.adapters import AdapterMetadata, AdapterSpec, save_adapter


def test_saved_adapter_names_the_hub_model_and_leaves_the_model_as_it_was(tmp_path, tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=4)
    pm.peft_config["default"].base_model_name_or_path = "/root/.cache/lorascale/smollm2-135m"  # as loaded from this machine
    tiny_llama.model.config._name_or_path = "/root/.cache/lorascale/smollm2-135m"
    save_adapter(pm, tmp_path, AdapterMetadata(adapter=AdapterSpec(rank=4), model="smollm2-135m"))
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in (tmp_path / "README.md").read_text()  # PEFT's model card
    assert json.loads((tmp_path / "lorascale.json").read_text())["model"] == "smollm2-135m"
    # the in-memory model still names where it was loaded from
    assert pm.peft_config["default"].base_model_name_or_path == "/root/.cache/lorascale/smollm2-135m"
    assert pm.get_base_model().config._name_or_path == "/root/.cache/lorascale/smollm2-135m"


def test_saving_asks_the_hub_nothing(tmp_path, tiny_llama, monkeypatch):
    """The adapter records a Hub ID as its base; PEFT's default save_embedding_layers="auto" asks the Hub
    for that model's config.json on every save (offline: a stall per run), PiSSA's conversion a second time."""
    import os

    import peft.utils.other as peft_other

    from lorascale.adapters.convert import InitialAdapter

    asked = []
    monkeypatch.setattr(peft_other, "file_exists", lambda *a, **k: asked.append(a) or True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the suite runs offline; a user's shell may not
    pm = lorascale.apply(tiny_llama.model, rank=4)
    pm.peft_config["default"].base_model_name_or_path = "someone/not-here"  # a Hub ID, no local folder
    initial = InitialAdapter(pm)
    save_adapter(pm, tmp_path / "plain", AdapterMetadata(adapter=AdapterSpec(rank=4), model="smollm2-135m"))
    save_adapter(pm, tmp_path / "converted", AdapterMetadata(adapter=AdapterSpec(rank=4), model="smollm2-135m"),
                 initial=initial)
    initial.cleanup()
    assert asked == [] and (tmp_path / "converted" / "adapter_model.safetensors").exists()
    assert "HF_HUB_OFFLINE" not in os.environ  # the caller's environment is left as it was
