"""Each baseline method trains through lorascale, saves, and reloads in plain PEFT with the same logits.

PiSSA and OLoRA change the base weights (W_res = W₀ − s·B₀·A₀); their saved adapters are converted by
PEFT to plain LoRA of rank 2r and must reproduce the trained model on the *original* base.
"""

import json

import pytest
import torch

from lorascale.models import load_model
from lorascale.train import TrainConfig, train
from lorascale.train.build import build_run

TINY = dict(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=32, max_examples=32, max_val_batches=1,
            steps=3, rank=4, rule="alpha-r", lr=1e-2)


def _trained(tmp_path, **kw):
    cfg = TrainConfig(**(TINY | kw), out_dir=str(tmp_path / "run"))
    built = build_run(cfg, quiet=True)
    r = train(cfg, built=built, progress=False)
    assert r.status == "complete"
    return cfg, built.model.eval()


def _reloaded(adapter_dir):
    from peft import PeftModel

    fresh = load_model("tiny-llama").model  # the original base: the same seed draws the same weights
    return PeftModel.from_pretrained(fresh, str(adapter_dir)).eval()


IDS = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 1]])


@pytest.mark.parametrize("method", ["lora", "loraplus", "dora"])
def test_method_saves_and_reloads_with_identical_logits(tmp_path, one_thread, method):
    cfg, model = _trained(tmp_path, method=method)
    adapter = tmp_path / "run" / "adapter"
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["use_dora"] is (method == "dora") and saved["r"] == 4
    assert json.loads((adapter / "lorascale.json").read_text())["method"] == method
    with torch.no_grad():
        trained, loaded = model(IDS).logits, _reloaded(adapter)(IDS).logits
    assert not torch.equal(trained, load_model("tiny-llama").model(IDS).logits)  # the adapter did train
    assert torch.equal(trained, loaded)  # same weights, same ops: bit for bit


@pytest.mark.parametrize("method, init", [("pissa", "pissa"), ("olora", "olora")])
def test_base_changing_method_reloads_as_plain_lora_on_the_original_base(tmp_path, one_thread, method, init):
    cfg, model = _trained(tmp_path, method=method)
    assert model.peft_config["default"].init_lora_weights == init
    adapter = tmp_path / "run" / "adapter"
    saved = json.loads((adapter / "adapter_config.json").read_text())
    # PEFT's conversion: ΔW = s·[B | −B₀]·[A ; A₀], rank 2r, lora_alpha 2× so that s = lora_alpha/r is unchanged.
    # (Unconverted, PEFT would re-run the SVD on load: the same W_res only for a deterministic SVD on this very base.)
    assert (saved["init_lora_weights"], saved["r"], saved["lora_alpha"]) == (True, 8, 8.0)
    with torch.no_grad():
        trained, loaded = model(IDS).logits, _reloaded(adapter)(IDS).logits
        original = load_model("tiny-llama").model(IDS).logits
    assert (trained - original).abs().max() > 0.05  # the adapter moved the model (measured ~0.2)
    # W₀ + s·(B·A − B₀·A₀) and (W₀ − s·B₀·A₀) + s·B·A are equal in exact arithmetic; in float32 the two sums round
    # differently (~6e-8 relative per weight). Measured on logits of size ≤ 0.6: 1.9e-7 (PiSSA), 2.1e-7 (OLoRA);
    # 2e-6 leaves 10× for other BLAS blockings, while an unconverted or wrong adapter is off by ~0.2 (asserted above)
    assert torch.allclose(trained, loaded, rtol=0, atol=2e-6)


def test_pissa_niter_reaches_peft(tmp_path, one_thread):
    cfg = TrainConfig(**(TINY | dict(method="pissa", pissa_niter=2)), out_dir=str(tmp_path / "run"))
    built = build_run(cfg, quiet=True)
    assert built.model.peft_config["default"].init_lora_weights == "pissa_niter_2"
    assert built.initial_adapter is not None and (built.initial_adapter.path / "adapter_model.safetensors").exists()


def test_a_named_pissa_adapter_converts_too_and_plain_lora_needs_no_snapshot(tmp_path, one_thread):
    import lorascale
    from peft import get_peft_model

    from lorascale.adapters import AdapterMetadata, AdapterSpec, save_adapter
    from lorascale.adapters.convert import snapshot_initial

    assert snapshot_initial(lorascale.apply(load_model("tiny-llama").model, rank=4)) is None  # nothing to convert
    config = lorascale.lora_config(load_model("tiny-llama").model, rank=4, rule="alpha-r", method="pissa")
    pm = get_peft_model(load_model("tiny-llama").model, config, adapter_name="x")
    initial = snapshot_initial(pm, "x")
    opt = torch.optim.SGD([p for p in pm.parameters() if p.requires_grad], lr=0.1)
    pm(IDS, labels=IDS).loss.backward()
    opt.step()
    save_adapter(pm, tmp_path / "x", AdapterMetadata(adapter=AdapterSpec(rank=4, rule="alpha-r", method="pissa")),
                 adapter="x", initial=initial)
    assert json.loads((tmp_path / "x" / "adapter_config.json").read_text())["r"] == 8
    with torch.no_grad():
        # float32 rounding of W₀ + s·(B·A − B₀·A₀) vs W_res + s·B·A, as above
        assert torch.allclose(pm.eval()(IDS).logits, _reloaded(tmp_path / "x")(IDS).logits, rtol=0, atol=2e-6)
