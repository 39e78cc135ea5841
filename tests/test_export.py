"""`lorascale export RUN [--merge]`: the adapter, or PEFT's merged model, outputs equal to the run's."""

import json

import pytest
import torch

import lorascale
from lorascale.adapters import AdapterMetadata, AdapterSpec, save_adapter
from lorascale.cli import main
from lorascale.errors import ConfigError
from lorascale.export import export_adapter
from lorascale.models import load_model
from lorascale.train.config import TrainConfig


def _ids():
    return torch.randint(3, 250, (2, 12), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as `lorascale train` leaves it: config.json (model, seed) and a trained adapter/. As in
    training, the base is the model's own (its default weights), whatever the run's seed."""
    run = tmp_path / "run"
    pm = lorascale.apply(load_model("tiny-llama").model, rank=4, rule="lora-alpha")  # s = 128: a large update
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, m in lorascale.adapters.lora_modules(pm):
            m.lora_B["default"].weight.copy_(0.01 * torch.randn(m.lora_B["default"].weight.shape, generator=g))
        logits = pm(_ids()).logits
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(model="tiny-llama", seed=3, rank=4).to_flat()))
    save_adapter(pm, run / "adapter", AdapterMetadata(adapter=AdapterSpec(rank=4), lr=2e-5, model="tiny-llama"))
    return run, logits


def test_merged_export_equals_the_adapter_outputs(run_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    run, expected = run_dir
    assert main(["export", str(run), "--merge", "--out", str(tmp_path / "merged")]) == 0
    assert "merged model ->" in capsys.readouterr().out
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())  # a plain transformers model
    with torch.no_grad():
        out = merged(_ids()).logits
        base = load_model("tiny-llama").model(_ids()).logits
    # float32 reassociation of W0x + s·B(Ax) vs (W0 + s·BA)x: differences at 1e-5 relative scale
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert (expected - base).abs().max() > 1e-2  # the adapter changes the outputs, so the equality means something
    assert (tmp_path / "merged" / "tokenizer.json").exists()


def test_adapter_export_loads_in_plain_peft_with_identical_outputs(run_dir, tmp_path):
    from peft import PeftModel

    run, expected = run_dir
    out = export_adapter(run, tmp_path / "ad")
    loaded = PeftModel.from_pretrained(load_model("tiny-llama").model, out)
    with torch.no_grad():
        assert torch.equal(loaded(_ids()).logits, expected)
    assert json.loads((out / "lorascale.json").read_text())["lr"] == 2e-5


def test_export_refuses_what_it_cannot_export(tmp_path, capsys):
    (tmp_path / "full" / "model").mkdir(parents=True)
    with pytest.raises(ConfigError) as e:
        export_adapter(tmp_path / "full")
    assert e.value.field == "run_dir" and "full-finetuning" in e.value.message
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "error: RUN" in capsys.readouterr().err


def test_merged_export_keeps_a_bfloat16_base_in_bfloat16(tmp_path):
    """A bf16 checkpoint trains in float32 (models.py); its merged export is stored in bf16 again, the
    merge itself done in float32 and rounded once."""
    from safetensors import safe_open

    base_dir = tmp_path / "base"
    tiny = load_model("tiny-llama", seed=3)
    tiny.model.to(torch.bfloat16).save_pretrained(base_dir)
    tiny.tokenizer.save_pretrained(base_dir)
    pm = lorascale.apply(load_model(str(base_dir)).model, rank=4, rule="lora-alpha")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, m in lorascale.adapters.lora_modules(pm):
            m.lora_B["default"].weight.copy_(0.01 * torch.randn(m.lora_B["default"].weight.shape, generator=g))
        w0 = pm.get_base_model().model.layers[0].mlp.up_proj.base_layer.weight.clone()
        delta = pm.get_base_model().model.layers[0].mlp.up_proj.get_delta_weight("default")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(model=str(base_dir), rank=4).to_flat()))
    save_adapter(pm, run / "adapter", AdapterMetadata(adapter=AdapterSpec(rank=4), lr=2e-5, model=str(base_dir)))
    out = export_adapter(run, tmp_path / "merged", merge=True)
    with safe_open(out / "model.safetensors", "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert {t.dtype for t in stored.values()} == {torch.bfloat16}
    up = next(v for k, v in stored.items() if k.endswith("layers.0.mlp.up_proj.weight"))
    assert torch.equal(up, (w0 + delta).to(torch.bfloat16))  # W0 + ΔW in float32, rounded to bf16 once
    assert (delta.abs() > 0).any()  # the adapter changes the weight, so the equality means something
