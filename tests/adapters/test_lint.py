"""`check` reads any PEFT adapter from its files and judges each layer type's scale against its reference rule."""

import json
import math

import pytest
from peft import LoraConfig, get_peft_model

import lorascale
from lorascale.adapters import AdapterMetadata, AdapterSpec, save_adapter
from lorascale.adapters.lint import lint_adapter, name_rule
from lorascale.errors import ConfigError
from lorascale.models import load_model


def _save(tmp_path, config, name="ad"):
    get_peft_model(load_model("tiny-llama", seed=0).model, config).save_pretrained(tmp_path / name)
    return tmp_path / name


def lora_alpha_scale(r, c=256):
    return c * math.sqrt(r) / r  # LoRA-α Variant I, eq. (3)+(5)


def test_standard_alpha_equals_r_is_under_scaled_by_c_over_sqrt_r(tmp_path):
    rep = lint_adapter(_save(tmp_path, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"])))
    assert len(rep.layers) == 4 and [(g.layer_type, g.count) for g in rep.groups] == [("self_attn.q_proj", 2), ("self_attn.v_proj", 2)]
    for ly in rep.layers:
        assert ly.scale == 1.0 and ly.rule == "alpha = r"
        assert ly.ratio == pytest.approx(256 * 4 / 16, rel=1e-12)  # LoRA-α s = 64 at r = 16 (rel: rounding only)
    assert "under-scaled 64×" in rep.verdict and "lora_alpha 16 → 1024" in rep.verdict
    assert rep.fix == {"lora_alpha": 1024.0, "alpha_pattern": {}}


def test_lorascale_adapter_matches_lora_alpha(tmp_path, tiny_llama):
    lorascale.apply(tiny_llama.model, rank=8, rule="lora-alpha").save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert {ly.rule for ly in rep.layers} == {"LoRA-α (C=256)"}
    assert all(ly.ratio == pytest.approx(1.0, rel=1e-9) for ly in rep.layers) and rep.fix == {}  # float rounding only


@pytest.mark.parametrize("with_metadata", [False, True])
def test_analytic_adapter_is_judged_against_the_analytic_rule(tmp_path, tiny_llama, with_metadata):
    # Against Variant I this adapter looks under-scaled by C/√(3·d_in) = 256/√192 ≈ 18× (the old verdict's
    # "barely learns"); it is lorascale's own Variant II and every layer matches it.
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha-analytic")
    if with_metadata:
        save_adapter(pm, tmp_path, AdapterMetadata(adapter=AdapterSpec(rank=4, rule="lora-alpha-analytic")))
    else:
        pm.save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert {ly.rule for ly in rep.layers} == {"LoRA-α analytic"}
    for ly in rep.layers:
        # rel=1e-9: float rounding only
        assert ly.reference_scale == pytest.approx(math.sqrt(3 * ly.d_in * 4) / 4, rel=1e-12) and ly.ratio == pytest.approx(1.0, rel=1e-9)
    assert "under-scaled" not in rep.verdict and rep.fix == {} and not rep.unmatched_pattern_keys
    assert ("as lorascale.json declares" in rep.reference) == with_metadata


def test_mua_adapter_is_judged_by_its_lorascale_json(tmp_path, tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=8, rule="mua", gamma=1.0, init="B")  # s = 1/r
    save_adapter(pm, tmp_path, AdapterMetadata(adapter=AdapterSpec(rank=8, rule="mua", gamma=1.0, init="B")))
    rep = lint_adapter(tmp_path)
    # rel=1e-9: float rounding only; 6 layers: apply's MLP placement (gate, up, down) in 2 blocks
    assert len(rep.layers) == 6
    assert all(ly.reference_scale == pytest.approx(1 / 8, rel=1e-9) and ly.ratio == pytest.approx(1.0, rel=1e-9) for ly in rep.layers)
    assert rep.reference == "mua (γ = 1), as lorascale.json declares" and "within 1.5×" in rep.verdict


def test_rank_pattern_layers_are_judged_at_their_own_rank_and_the_fix_round_trips(tmp_path):
    # lora_alpha 512 = C·√4 is LoRA-α at r = 4; down_proj's rank_pattern r = 16 then gets s = 32 where 64 is due.
    cfg = LoraConfig(r=4, lora_alpha=512, target_modules=["q_proj", "down_proj"], rank_pattern={"down_proj": 16})
    rep = lint_adapter(_save(tmp_path, cfg))
    by_type = {g.layer_type: g for g in rep.groups}
    assert (by_type["self_attn.q_proj"].rank, by_type["self_attn.q_proj"].ratio) == (4, 1.0)
    down = by_type["mlp.down_proj"]
    assert (down.rank, down.scale, down.reference_scale, down.ratio, down.fix_lora_alpha) == (16, 32.0, 64.0, 2.0, 1024.0)
    assert "mlp.down_proj (r = 16, 2 layers): s = 32 where 64 is due, under-scaled 2×: lora_alpha 512 → 1024" in rep.verdict
    assert "q_proj" not in rep.verdict
    fixed = lint_adapter(_save(tmp_path, LoraConfig(**{**cfg.to_dict(), **rep.fix}), name="fixed"))
    assert len(fixed.layers) == 4  # q_proj and down_proj in 2 blocks
    assert all(ly.ratio == pytest.approx(1.0, rel=1e-12) for ly in fixed.layers) and fixed.fix == {}


@pytest.mark.parametrize("r, alpha, preset", [
    (8, 8, "PEFT's default (r = 8, α = 8)"),
    (16, 16, "α = r (Unsloth's setting)"),
    (8, 16, "α = 2r (LLaMA-Factory's default)"),
    (32, 16, "axolotl's example config (r = 32, α = 16)"),
])
def test_framework_presets_get_their_scale_and_the_exact_change(tmp_path, r, alpha, preset):
    rep = lint_adapter(_save(tmp_path, LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear")))
    assert rep.preset == preset
    assert len(rep.groups) == 7 and all(g.count == 2 for g in rep.groups)  # 14 layers in 7 layer types, one row each
    for g in rep.groups:
        assert g.scale == alpha / r and g.ratio == pytest.approx(lora_alpha_scale(r) * r / alpha, rel=1e-12)
        assert g.fix_lora_alpha == pytest.approx(256 * math.sqrt(r), rel=1e-12)  # LoRA-α: lora_alpha = C·√r
    assert rep.fix["lora_alpha"] == pytest.approx(256 * math.sqrt(r), rel=1e-12) and rep.verdict.count("→") == 1  # said once for all (rel: rounding only)


def test_dora_is_judged_with_a_note_and_pissa_is_not_judged(tmp_path):
    dora = lint_adapter(_save(tmp_path, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], use_dora=True), "dora"))
    assert dora.judged and any(n.startswith("DoRA") for n in dora.notes) and dora.fix["lora_alpha"] == 512.0
    pissa = lint_adapter(_save(tmp_path, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights="pissa"), "pissa"))
    assert not pissa.judged and pissa.fix == {} and "not judged" in pissa.verdict
    assert any(n.startswith("PiSSA") and "√s" in n for n in pissa.notes)


def test_dead_pattern_key_and_rslora_flag(tmp_path):
    rep = lint_adapter(_save(tmp_path, LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj"], alpha_pattern={"k_proj": 99})))
    assert rep.use_rslora
    assert rep.unmatched_pattern_keys == {"alpha_pattern": ["k_proj"]}
    assert len(rep.layers) == 2 and all(ly.scale == pytest.approx(8 / 2, rel=1e-12) for ly in rep.layers)  # 8/√4, exact
    assert "k_proj" in rep.verdict


def test_rslora_fix_is_lora_alpha_c(tmp_path):
    # rsLoRA: s = lora_alpha/√r, so LoRA-α's s = C·√r/r is lora_alpha = C; with C = 512 and lora_alpha = 8 that is 64×
    rep = lint_adapter(_save(tmp_path, LoraConfig(r=16, lora_alpha=8, use_rslora=True, target_modules=["q_proj"])), c=512)
    assert len(rep.layers) == 2 and all(ly.ratio == pytest.approx(64.0, rel=1e-9) for ly in rep.layers)  # float rounding only
    # rel=1e-9: float rounding only
    assert "lora_alpha 8 → 512" in rep.verdict and rep.fix["lora_alpha"] == pytest.approx(512.0, rel=1e-9)


def test_name_rule_fixed_and_custom():
    assert name_rule(16 / 64, 64, 512, False, 16) == "fixed alpha = 16"
    assert name_rule(2.0, 8, 512, False, 16) == "alpha = 2r"
    # rsLoRA r = 4, lora_alpha = 4: s = 4/√4 = 2, the scale of plain LoRA's alpha = 2r, but not that convention
    assert name_rule(2.0, 4, 512, True, 4) == "rsLoRA (lora_alpha = 4)"


def test_missing_files_name_the_argument(tmp_path):
    with pytest.raises(ConfigError) as e:
        lint_adapter(tmp_path)
    assert e.value.field == "adapter_dir"
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ConfigError, match="safetensors"):
        lint_adapter(tmp_path)


@pytest.mark.parametrize("config, match", [
    ("{not json", "not valid JSON"),
    ('{"peft_type": "LORA", "lora_alpha": 0, "r": 4, "target_modules": ["q_proj"]}', "lora_alpha must be > 0, got 0.*switches the update off"),
])
def test_broken_configs_are_clear_errors(tmp_path, config, match):
    path = _save(tmp_path, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"]))
    (path / "adapter_config.json").write_text(config)
    with pytest.raises(ConfigError, match=match):
        lint_adapter(path)


@pytest.mark.parametrize("method", ["pissa", "olora"])
def test_converted_pissa_and_olora_adapters_are_recognised_from_lorascale_json(tmp_path, one_thread, method):
    from lorascale.train import TrainConfig, train

    cfg = TrainConfig(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=32, max_examples=32, max_val_batches=1,
                      steps=2, rank=4, method=method, out_dir=str(tmp_path / "run"))
    train(cfg, progress=False)
    rep = lint_adapter(tmp_path / "run" / "adapter")
    # saved as plain LoRA (init True, rank 2r): only lorascale.json still says PiSSA/OLoRA, and check says so
    assert {ly.rank for ly in rep.layers} == {8}
    # its rule is named at the rank it trained at (4): LoRA-α's s = 256·√4/4 = 128, kept by the conversion
    assert {(ly.scale, ly.rule, ly.reference_scale) for ly in rep.layers} == {(128.0, "LoRA-α (C=256)", 128.0)}
    assert not rep.judged and rep.fix == {} and rep.preset is None and "not judged" in rep.verdict
    assert any(f"method {method}" in n and "converted" in n for n in rep.notes)


def test_dora_trained_by_lorascale_is_judged_against_its_rule_with_the_dora_note(tmp_path, one_thread):
    from lorascale.train import TrainConfig, train

    cfg = TrainConfig(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=32, max_examples=32, max_val_batches=1,
                      steps=2, rank=4, method="dora", out_dir=str(tmp_path / "run"))
    train(cfg, progress=False)
    rep = lint_adapter(tmp_path / "run" / "adapter")
    assert rep.judged and any(n.startswith("DoRA") for n in rep.notes)
    assert len(rep.layers) == 14  # tiny-llama by name: all 7 linear layers in 2 blocks
    assert all(ly.ratio == pytest.approx(1.0, rel=1e-12) for ly in rep.layers) and rep.fix == {}  # planned by lora-alpha


def test_olora_config_is_not_judged(tmp_path):
    rep = lint_adapter(_save(tmp_path, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights="olora")))
    assert not rep.judged and rep.fix == {} and any("'olora'" in n for n in rep.notes)


class _Toy:
    """A few-KB model with an embedding, a linear layer and a convolution, all of which PEFT can adapt."""

    @staticmethod
    def build():
        import torch

        class Toy(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(50, 16)
                self.lin = torch.nn.Linear(16, 16)
                self.conv = torch.nn.Conv2d(8, 8, 3)

        torch.manual_seed(0)
        return Toy()


def _scales(model) -> dict[str, float]:
    from peft.tuners.lora import LoraLayer

    return {n.rsplit(".", 1)[-1]: m.scaling["default"] for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def test_embedding_and_conv_adapters_are_named_and_the_fix_leaves_their_scale_alone(tmp_path):
    from peft import PeftModel

    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["embed", "lin", "conv"])
    get_peft_model(_Toy.build(), cfg).save_pretrained(tmp_path / "ad")
    rep = lint_adapter(tmp_path / "ad")
    assert [ly.name for ly in rep.layers] == ["lin"]  # only the linear layer is judged
    assert any("not judged: the LoRA factors of conv, embed" in n for n in rep.notes)
    # LoRA-α at r = 4: lora_alpha = 256·√4 = 512 on lin; embed and conv keep lora_alpha 4 (s = 1)
    fixed = LoraConfig(**{**cfg.to_dict(), **rep.fix})
    get_peft_model(_Toy.build(), fixed).save_pretrained(tmp_path / "fixed")
    reloaded = PeftModel.from_pretrained(_Toy.build(), tmp_path / "fixed")
    assert _scales(reloaded) == {"embed": 1.0, "lin": 128.0, "conv": 1.0}  # before: all three became 128


def test_an_adapter_on_embeddings_or_convolutions_is_not_rescaled(tmp_path):
    model = get_peft_model(_Toy.build(), LoraConfig(r=4, lora_alpha=4, target_modules=["embed", "lin", "conv"]))
    with pytest.raises(ConfigError) as e:
        lorascale.rescale(model, "lora-alpha-analytic")
    assert e.value.field == "model" and "embed (Embedding)" in e.value.message and "conv (Conv2d)" in e.value.message
    assert _scales(model) == {"embed": 1.0, "lin": 1.0, "conv": 1.0}  # refused before any change
    only_embed = get_peft_model(_Toy.build(), LoraConfig(r=4, lora_alpha=4, target_modules=["embed"]))
    with pytest.raises(ConfigError, match="not linear: embed"):  # not "has no LoRA layers" (it has, on an embedding)
        lorascale.rescale(only_embed, "lora-alpha")
    with pytest.raises(ConfigError) as e:  # the config path, given the base model, refuses such targets as well
        lorascale.rescale(LoraConfig(r=4, lora_alpha=4, target_modules=["embed", "lin"]), "lora-alpha", model=_Toy.build())
    assert e.value.field == "target_modules" and "embed (Embedding)" in e.value.message


def test_a_converted_rslora_adapter_is_named_by_the_lora_alpha_it_trained_with(tmp_path):
    from lorascale.adapters.io import write_metadata

    # PEFT's conversion of a PiSSA adapter trained at r = 4, rsLoRA lora_alpha 16 (s = 16/√4 = 8): rank 8 and
    # lora_alpha 16·√2 (s = 16·√2/√8 = 8, unchanged); it doubles lora_alpha only without rsLoRA
    folder = _save(tmp_path, LoraConfig(r=8, lora_alpha=16 * math.sqrt(2), use_rslora=True, target_modules=["q_proj"]))
    write_metadata(folder, AdapterMetadata(adapter=AdapterSpec(rank=4, rule="rslora", lora_alpha=16, method="pissa")))
    rep = lint_adapter(folder)
    assert {ly.rule for ly in rep.layers} == {"rsLoRA (lora_alpha = 16)"}  # not 16·√2/2 = 11.3
    assert all(ly.scale == pytest.approx(8.0, rel=1e-12) for ly in rep.layers)  # float rounding of √2·√8 only
    assert any("×√2 under rsLoRA" in n for n in rep.notes)


def test_a_declared_lora_alpha_c_names_the_rule_and_wins_over_c_with_a_note(tmp_path, tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha", c=128)
    save_adapter(pm, tmp_path, AdapterMetadata(adapter=AdapterSpec(rank=4, rule="lora-alpha", c=128)))
    for c in (512, None):  # None: no c asked for
        rep = lint_adapter(tmp_path, c=c)
        # s = C·√r/r = 128·2/4 = 64 on every layer: the declared rule, and named as it (before: "fixed alpha = 256")
        assert {ly.rule for ly in rep.layers} == {"LoRA-α (C=128)"}
        assert all(ly.scale == ly.reference_scale == pytest.approx(64.0, rel=1e-12) for ly in rep.layers)  # rounding only
        assert [n for n in rep.notes if "c = 512" in n] == ([] if c is None else [
            "c = 512 was asked for, but lorascale.json declares rule lora-alpha with C = 128: scales are judged and named"
            " against C = 128"])


def test_a_rank_pattern_key_that_only_an_embedding_adapter_uses_is_not_dead(tmp_path):
    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["embed", "lin"], rank_pattern={"embed": 8, "conv": 2})
    get_peft_model(_Toy.build(), cfg).save_pretrained(tmp_path / "ad")
    rep = lint_adapter(tmp_path / "ad")
    assert rep.unmatched_pattern_keys == {"rank_pattern": ["conv"]}  # before: ["conv", "embed"]; conv has no adapter
