"""`lorascale export RUN [--merge]`: the adapter, or PEFT's merged model, outputs equal to the run's."""

import json
from pathlib import Path

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


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_never_writes_into_the_run_or_a_folder_of_other_files(run_dir, tmp_path, capsys):
    """`export RUN --merge --out RUN` wrote the merged model's config.json over the run's (and `train --resume`
    then failed); a folder of the user's files got the export's mixed in. Both are refused, byte for byte unchanged."""
    run, _ = run_dir
    before = _tree(run)
    for out in (run, run / "adapter"):
        assert main(["export", str(run), "--merge", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "error: --out:" in err and "itself" in err and "Traceback" not in err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own")
    assert main(["export", str(run), "--out", str(mine)]) == 2
    assert "error: --out:" in capsys.readouterr().err
    assert _tree(run) == before and _tree(mine) == {Path("notes.txt"): b"the user's own"}


def test_export_writes_again_only_where_the_same_runs_same_export_went(run_dir, tmp_path):
    import shutil

    run, expected = run_dir
    out = tmp_path / "ad"
    export_adapter(run, out)
    first = _tree(out)
    assert export_adapter(run, out) == out and _tree(out) == first  # the same run's adapter again: the same bytes
    with pytest.raises(ConfigError) as e:  # a merged model would mix with the adapter's files
        export_adapter(run, out, merge=True)
    assert e.value.field == "out" and "other files" in e.value.message
    other = tmp_path / "other-run"
    shutil.copytree(run, other)
    with pytest.raises(ConfigError) as e:  # another run's export is not this one's to write over
        export_adapter(other, out)
    assert e.value.field == "out"
    assert _tree(out) == first


def test_a_run_config_without_a_model_is_refused_not_read_as_smollm2(run_dir, capsys):
    """The run's config.json without `model` (e.g. overwritten by a model's config) fell back to smollm2-135m and
    crashed loading tiny-llama's adapter into it (exit 1, a size-mismatch traceback)."""
    run, _ = run_dir
    flat = json.loads((run / "config.json").read_text())
    del flat["model"]
    (run / "config.json").write_text(json.dumps(flat))
    with pytest.raises(ConfigError) as e:
        export_adapter(run)
    assert e.value.field == "run_dir" and "names no base model" in e.value.message
    assert str(run / "adapter") in e.value.fix  # whose lorascale.json names the model: that export works
    assert main(["export", str(run)]) == 2
    assert "error: RUN: " in capsys.readouterr().err and not (run / "export").exists()
    assert (export_adapter(run / "adapter", run.parent / "from-adapter") / "adapter_config.json").exists()


def test_a_roberta_style_head_with_three_labels_exports_merged_with_the_adapters_logits(tmp_path):
    """RoBERTa's head is classifier.dense then classifier.out_proj (μA's RoBERTa classification setup): its
    label count is out_proj's rows. The export read 2 and the base failed to load the 3-row head."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    from lorascale.models import byte_tokenizer

    tok = byte_tokenizer()  # RoBERTa's positions count from its pad id + 1: the table covers the byte pad (256)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=tok.pad_token_id + 32, num_labels=3,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    base = RobertaForSequenceClassification(cfg)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    pm = get_peft_model(base, LoraConfig(r=2, lora_alpha=2, target_modules=["query", "value"], task_type="SEQ_CLS",
                                         init_lora_weights=False))  # B ≠ 0: the merge changes the weights
    pm.eval()
    with torch.no_grad():
        logits = pm(input_ids=_ids()).logits
    pm.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "lorascale.json").write_text(json.dumps({"model": str(tmp_path / "base")}))
    out = export_adapter(tmp_path / "adapter", tmp_path / "merged", merge=True)
    merged = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert merged.config.num_labels == 3
    with torch.no_grad():
        # 1e-5: float32 rounding of the merged W₀ + s·B·A against PEFT's separate low-rank path
        torch.testing.assert_close(merged(input_ids=_ids()).logits, logits, rtol=1e-5, atol=1e-5)
