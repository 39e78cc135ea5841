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
