"""Rules applied through PEFT: planned scales, init no-ops, save/load and merge invariants."""

import math

import pytest
import torch

import lorascale
from lorascale.adapters import AdapterMetadata, AdapterSpec, inspect_model, plan_lora, read_metadata, save_adapter
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.rules import RULE_KNOBS, Init, RuleSpec, ScaleRule

RULES = [
    RuleSpec(rule=ScaleRule.LORA_ALPHA),
    RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC),
    RuleSpec(rule=ScaleRule.ALPHA_EQ_R),
    RuleSpec(rule=ScaleRule.RSLORA, lora_alpha=16),
    RuleSpec(rule=ScaleRule.MUA, gamma=1.0),
]


def _ids(tok, n=2, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, len(tok) - 3, (n, t), generator=g)


def _randomise_b(peft_model, seed=1):
    """Make the adapter non-trivial so equality tests can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in lorascale.adapters.lora_modules(peft_model):
            m.lora_B["default"].weight.copy_(0.01 * torch.randn(m.lora_B["default"].weight.shape, generator=g))
            if not m.lora_A["default"].weight.abs().sum():
                m.lora_A["default"].weight.copy_(0.01 * torch.randn(m.lora_A["default"].weight.shape, generator=g))


@pytest.mark.parametrize("spec", RULES, ids=lambda s: s.rule.value)
def test_inspected_scale_equals_rule_for_every_layer(spec, tiny_bert):
    plan = plan_lora(tiny_bert.model, AdapterSpec(rank=4, scaling=spec), tiny_bert.default_targets)
    pm = lorascale.apply(tiny_bert.model, rank=4, rule=spec.rule, **{k: getattr(spec, k) for k in RULE_KNOBS[spec.rule]})
    planned = {ly.name: ly.scale for ly in plan.layers}
    seen = {r.name: r.scale for r in inspect_model(pm)}
    assert set(seen) == set(planned) and len(seen) == 2 * 6  # 2 layers × 6 BERT targets
    for name, s in planned.items():
        assert seen[name] == pytest.approx(s, rel=1e-12), name


def test_analytic_scale_is_per_layer_and_overlapping_suffixes_resolve(tiny_bert):
    # BERT's 'output.dense' (d_in = 2w) is a suffix of 'attention.output.dense' (d_in = w): PEFT resolves by
    # key order, so the plan must put the longer key first.
    pm = lorascale.apply(tiny_bert.model, rank=4, rule="lora-alpha-analytic")
    w = tiny_bert.width
    for rep in inspect_model(pm):
        assert rep.scale == pytest.approx(math.sqrt(3 * rep.d_in * 4) / 4, rel=1e-9)  # float rounding only
    by_kind = {r.name.split("layer.0.")[-1]: r.d_in for r in inspect_model(pm) if ".layer.0." in r.name}
    assert by_kind["attention.output.dense"] == w and by_kind["output.dense"] == 2 * w


@pytest.mark.parametrize("init", ["kaiming", "A", "B"])
def test_inits_are_exact_noops_at_step_zero(init, tiny_llama):
    ids = _ids(tiny_llama.tokenizer)
    base_logits = tiny_llama.model(ids).logits.detach().clone()
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha", init=init)
    assert torch.equal(pm(ids).logits, base_logits)  # one factor is exactly zero: bitwise identical
    kinds = {r.init for r in inspect_model(pm)}
    assert kinds == {init}


def test_init_statistics_match_definition(tiny_llama):
    pm = lorascale.apply(tiny_llama.model, rank=8, rule="alpha-r", init="B", seed=3)
    for _, m in lorascale.adapters.lora_modules(pm):
        b = m.lora_B["default"].weight
        assert torch.count_nonzero(m.lora_A["default"].weight) == 0
        # B ~ N(0, 1/r): sample variance of ≥ 512 entries is within 20% of 1/8 (4σ of its sampling error).
        assert b.var().item() == pytest.approx(1 / 8, rel=0.2)


def test_saved_adapter_loads_in_plain_peft_with_identical_logits(tmp_path, tiny_llama):
    from peft import PeftModel

    from lorascale.models import load_model

    ids = _ids(tiny_llama.tokenizer)
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha-analytic")
    _randomise_b(pm)
    expected = pm(ids).logits.detach()
    meta = AdapterMetadata(adapter=AdapterSpec(rank=4, rule="lora-alpha-analytic"), lr=2e-5)
    save_adapter(pm, tmp_path / "ad", meta)
    fresh = load_model("tiny-llama", seed=0).model  # same seed: same base weights
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "ad")
    assert torch.equal(loaded(ids).logits, expected)
    assert read_metadata(tmp_path / "ad")["rule"] == "lora-alpha-analytic"
    assert read_metadata(tmp_path / "ad")["lorascale_version"] == lorascale.__version__


def test_merge_and_unload_equals_adapter_output(tiny_llama):
    ids = _ids(tiny_llama.tokenizer)
    with torch.no_grad():
        base = tiny_llama.model(ids).logits.clone()
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha")  # s = 128: a large update
    _randomise_b(pm)
    with torch.no_grad():
        out = pm(ids).logits
        merged = pm.merge_and_unload()(ids).logits
    # float32 reassociation of W0x + s·B(Ax) vs (W0 + s·BA)x: differences at 1e-5 relative scale.
    assert torch.allclose(merged, out, rtol=1e-4, atol=1e-4)
    assert (out - base).abs().max() > 1e-2  # the adapter really changes the output, so equality means something


def test_rank_too_large_names_rank(tiny_llama):
    with pytest.raises(ConfigError) as e:
        plan_lora(tiny_llama.model, AdapterSpec(rank=65), tiny_llama.default_targets)
    assert e.value.field == "rank" and e.value.fix == "use rank 64 or less"


def test_unmatched_target_names_targets(tiny_llama):
    with pytest.raises(ConfigError) as e:
        plan_lora(tiny_llama.model, AdapterSpec(rank=4, targets=("q_proj", "nonexistent")), ())
    assert e.value.field == "targets" and "nonexistent" in e.value.message


def test_a_target_that_also_matches_a_convolution_is_refused():
    # PEFT would wrap vis.proj (Conv2d, d_in 3·4·4 = 48) with the one lora_alpha planned for txt.proj (d_in 64):
    # Variant II's s = √(3·64·4)/4 = 6.93 where its own d_in gives √(3·48·4)/4 = 6
    model = torch.nn.ModuleDict({"vis": torch.nn.ModuleDict({"proj": torch.nn.Conv2d(3, 8, 4)}),
                                 "txt": torch.nn.ModuleDict({"proj": torch.nn.Linear(64, 64)})})
    spec = AdapterSpec(rank=4, scaling=RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), targets=("proj",))
    with pytest.raises(ConfigError) as e:
        plan_lora(model, spec)
    assert e.value.field == "targets" and "vis.proj (Conv2d)" in e.value.message and "txt.proj" not in e.value.message
    assert "full names" in e.value.fix
    plan = plan_lora(model, spec.model_copy(update={"targets": ("txt.proj",)}))  # the linear layer alone
    # rel=1e-9: float rounding only
    assert [ly.name for ly in plan.layers] == ["txt.proj"] and plan.layers[0].scale == pytest.approx(math.sqrt(3 * 64 * 4) / 4, rel=1e-9)


def test_a_tied_output_layer_is_refused_as_a_target():
    """SmolLM2 ties lm_head to the input embeddings: merging an adapter on lm_head would move the embeddings too."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tied = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, tie_word_embeddings=True))
    assert tied.lm_head.weight is tied.get_input_embeddings().weight
    with pytest.raises(ConfigError) as e:
        plan_lora(tied, AdapterSpec(rank=4, targets=("q_proj", "lm_head")))
    assert e.value.field == "targets" and e.value.message.startswith("lm_head shares its weight with the input embeddings")
    assert [ly.name for ly in plan_lora(tied, AdapterSpec(rank=4, targets=("q_proj",))).layers] == ["model.layers.0.self_attn.q_proj"]
    untied = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, tie_word_embeddings=False))
    assert "lm_head" in [ly.name for ly in plan_lora(untied, AdapterSpec(rank=4, targets=("lm_head",))).layers]


def test_analytic_with_init_b_names_init():
    with pytest.raises(ConfigErrors) as e:  # refused when the spec is made, before any model is touched
        AdapterSpec(rank=4, scaling=RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), init=Init.B)
    assert [x.field for x in e.value.errors] == ["init"]


def test_adapter_loads_in_a_process_without_lorascale(tmp_path, tiny_llama):
    """Plain PEFT, with `import lorascale` made impossible, reproduces the adapter's logits."""
    import subprocess
    import sys

    ids = _ids(tiny_llama.tokenizer)
    tiny_llama.model.save_pretrained(tmp_path / "base")
    pm = lorascale.apply(tiny_llama.model, rank=4, rule="lora-alpha-analytic", init="A")
    _randomise_b(pm)
    torch.save({"ids": ids, "logits": pm(ids).logits.detach()}, tmp_path / "expected.pt")
    save_adapter(pm, tmp_path / "ad", AdapterMetadata(adapter=AdapterSpec(rank=4, rule="lora-alpha-analytic", init="A")))
    script = f"""
import sys; sys.modules["lorascale"] = None  # any import of lorascale would now fail
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
exp = torch.load({str(tmp_path / "expected.pt")!r})
m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({str(tmp_path / "base")!r}), {str(tmp_path / "ad")!r})
assert torch.equal(m(exp["ids"]).logits, exp["logits"]), "logits differ"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_rank_pattern_plans_alpha_per_actual_rank_and_is_checked_against_peft(tiny_llama):
    import dataclasses

    from lorascale.adapters import PeftOptions
    from lorascale.adapters.plan import PlanMismatch, verify_against_peft

    spec = AdapterSpec(rank=4, rule="lora-alpha", targets=("q_proj", "down_proj"))
    plan = plan_lora(tiny_llama.model, spec, options=PeftOptions(rank_pattern={"layers.1.mlp.down_proj": 16}))
    by_name = {ly.name: (ly.rank, ly.scale) for ly in plan.layers}
    assert by_name["model.layers.1.mlp.down_proj"] == (16, 64.0) and by_name["model.layers.0.mlp.down_proj"] == (4, 128.0)
    # PEFT's resolver reads the plan back: a rank_pattern edited after planning is caught, not trained with
    tampered = dataclasses.replace(plan.config, rank_pattern={"layers.1.mlp.down_proj": 8})
    with pytest.raises(PlanMismatch, match="rank_pattern resolves model.layers.1.mlp.down_proj to r=8"):
        verify_against_peft(tampered, plan.layers)
    with pytest.raises(ConfigError) as e:  # a per-layer rank above the layer's width names rank_pattern
        plan_lora(tiny_llama.model, spec, options=PeftOptions(rank_pattern={"q_proj": 65}))
    assert e.value.field == "rank_pattern" and e.value.fix == "use rank 64 or less"


def test_all_linear_stands_alone(tiny_llama):
    with pytest.raises(ConfigError) as e:
        plan_lora(tiny_llama.model, AdapterSpec(rank=4, targets=("all-linear", "q_proj")))
    assert e.value.field == "targets" and "alone" in e.value.fix


def test_init_a_with_a_base_changing_peft_init_is_refused(tiny_llama):
    from lorascale.adapters import PeftOptions

    with pytest.raises(ConfigError) as e:
        plan_lora(tiny_llama.model, AdapterSpec(rank=4, init="A"), tiny_llama.default_targets,
                  options=PeftOptions(init_lora_weights="pissa_niter_4"))
    assert e.value.field == "init" and "W_res" in e.value.message


def test_a_classification_head_is_never_planned_for_lora(tiny_bert):
    """PEFT's SEQ_CLS wrapper puts the head (classifier, score) in modules_to_save: trained in full, never given LoRA."""
    from peft import get_peft_model

    with pytest.raises(ConfigError) as e:  # before: "r = 4 exceeds min(d_in, d_out) = 3 of classifier"
        lorascale.apply(tiny_bert.model, rank=4, targets=["query", "classifier"])
    assert e.value.field == "targets" and e.value.message.startswith("'classifier' matches only layers PEFT trains in full")
    with pytest.raises(ConfigError) as e:  # before: planned, classifier and all, at rank 2
        plan_lora(tiny_bert.model, AdapterSpec(rank=2, targets=("query", "classifier")))
    assert e.value.field == "targets"
    plan = plan_lora(tiny_bert.model, AdapterSpec(rank=2, targets=r"(.*\.)?(query|classifier)"))
    wrapped = [n.removeprefix("base_model.model.") for n, _ in lorascale.adapters.lora_modules(get_peft_model(tiny_bert.model, plan.config))]
    assert [ly.name for ly in plan.layers] == wrapped == [f"bert.encoder.layer.{i}.attention.self.query" for i in (0, 1)]
