"""`check` reads any PEFT adapter from its files and reports scale, rule and distance from LoRA-α."""

import json

import pytest
from peft import LoraConfig, get_peft_model

import lorascale
from lorascale.adapters.lint import lint_adapter, name_rule
from lorascale.errors import ConfigError


def test_standard_alpha_equals_r_is_under_scaled_by_c_over_sqrt_r(tmp_path, tiny_llama):
    pm = get_peft_model(tiny_llama.model, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    pm.save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert len(rep.layers) == 4
    for ly in rep.layers:
        assert ly.scale == 1.0 and ly.rule == "alpha = r"
        assert ly.ratio_vs_lora_alpha == pytest.approx(256 * 4 / 16)  # LoRA-α s = 64 at r = 16
    assert "under-scaled 64×" in rep.verdict


def test_lorascale_adapter_matches_lora_alpha(tmp_path, tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=8, rule="lora-alpha")
    pm.save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert {ly.rule for ly in rep.layers} == {"LoRA-α (C=256)"}
    assert all(ly.ratio_vs_lora_alpha == pytest.approx(1.0) for ly in rep.layers)


def test_analytic_pattern_is_read_per_layer(tmp_path, tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha-analytic")
    pm.save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert {ly.rule for ly in rep.layers} == {"LoRA-α analytic"}
    assert not rep.unmatched_pattern_keys


def test_dead_pattern_key_and_rslora_flag(tmp_path, tiny_llama):
    cfg = LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj"], alpha_pattern={"k_proj": 99})
    get_peft_model(tiny_llama.model, cfg).save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path)
    assert rep.use_rslora
    assert rep.unmatched_pattern_keys == {"alpha_pattern": ["k_proj"]}
    assert all(ly.scale == pytest.approx(8 / 2) for ly in rep.layers)  # 8/√4
    assert "k_proj" in rep.verdict


def test_name_rule_fixed_and_custom():
    assert name_rule(16 / 64, 64, 512, False, 16) == "fixed alpha = 16"
    assert name_rule(2.0, 8, 512, False, 16) == "alpha = 2r"


def test_missing_files_name_the_argument(tmp_path):
    with pytest.raises(ConfigError) as e:
        lint_adapter(tmp_path)
    assert e.value.field == "adapter_dir"
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ConfigError, match="safetensors"):
        lint_adapter(tmp_path)


@pytest.mark.parametrize("config, match", [
    ("{not json", "not valid JSON"),
    ('{"peft_type": "LORA", "lora_alpha": 0, "r": 4, "target_modules": ["q_proj"]}', "switched off"),
])
def test_broken_configs_are_clear_errors(tmp_path, tiny_llama, config, match):
    get_peft_model(tiny_llama.model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(tmp_path)
    (tmp_path / "adapter_config.json").write_text(config)
    with pytest.raises(ConfigError, match=match):
        lint_adapter(tmp_path)


def test_rslora_verdict_names_the_rslora_target(tmp_path, tiny_llama):
    # rsLoRA: s = lora_alpha/√r, so LoRA-α's s = C·√r/r is lora_alpha = C; with C = 512 and lora_alpha = 8 that is 64×
    get_peft_model(tiny_llama.model, LoraConfig(r=16, lora_alpha=8, use_rslora=True, target_modules=["q_proj"])).save_pretrained(tmp_path)
    rep = lint_adapter(tmp_path, c=512)
    assert all(ly.ratio_vs_lora_alpha == pytest.approx(64.0) for ly in rep.layers)
    assert "lora_alpha = 512" in rep.verdict and "√r" not in rep.verdict.split("LoRA-α:")[1].split(")")[0]
