"""The one-call API: apply() plans through PEFT (and rescales existing adapters), lora_config() and
rescale() give PEFT configs, init_after_wrap() re-draws factors; recommend_lr() agrees with the rules."""

import math

import pytest
import torch

import lorascale
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.models import load_model
from lorascale.rules import RuleError


def test_recommend_lr_follows_each_rule():
    assert lorascale.recommend_lr("lora-alpha", 3e-5) == 3e-5  # LoRA-α eq. (5): η_FFT itself
    assert lorascale.recommend_lr("lora-alpha-analytic", 3e-5) == 3e-5
    assert lorascale.recommend_lr("alpha-r", 3e-5) == pytest.approx(3e-4, rel=1e-12)  # the 10× folk rule (rel: rounding only)
    assert lorascale.recommend_lr("rslora", 3e-5) == pytest.approx(3e-4, rel=1e-9)  # float rounding only
    # μA Init[B] with α = 1 (Cor. 4.6) trains at η_FFT, whichever rule spells α = 1 (issue #13 item 3)
    assert lorascale.recommend_lr("mua", 3e-5, init="B", gamma=0.0) == 3e-5
    assert lorascale.recommend_lr("alpha-r", 3e-5, init="B") == 3e-5
    with pytest.raises(RuleError) as e:  # other μA configurations transfer from a tuned point
        lorascale.recommend_lr("mua", 3e-5, init="A")
    assert e.value.field == "lr" and "transfer" in e.value.fix
    with pytest.raises(ConfigErrors):
        lorascale.recommend_lr("nope")


def test_every_bad_argument_is_reported_at_once():
    """The rule's settings used to be validated before the adapter's, so a bad rule hid a bad init, method or
    lr_fft until it was fixed; each function now reports them together, each with its field and a fix."""
    with pytest.raises(ConfigErrors) as e:
        lorascale.recommend_lr(rule="bogus", lr_fft=-1, init="Z", gamma=5, method="nope")
    assert sorted(x.field for x in e.value.errors) == ["gamma", "init", "lr_fft", "method", "rule"]
    assert all(x.fix for x in e.value.errors)
    model = load_model("tiny-llama@32", quiet=True).model
    with pytest.raises(ConfigErrors) as e:
        lorascale.lora_config(model, 0, "bogus", init="Z", c=-1)
    assert sorted(x.field for x in e.value.errors) == ["c", "init", "rank", "rule"]
    with pytest.raises(ConfigErrors) as e:
        lorascale.apply(model, 4, "bogus", init="Z", method="nope")
    assert sorted(x.field for x in e.value.errors) == ["init", "method", "rule"]
    wrapped = lorascale.apply(model, 4)  # on adapters it has: a bad rule with an option that would need new ones
    with pytest.raises(ConfigErrors) as e:
        lorascale.apply(wrapped, 8, "bogus")
    assert sorted(x.field for x in e.value.errors) == ["rank", "rule"]


def test_apply_sets_the_planned_scale():
    pm = lorascale.apply(load_model("tiny-llama").model, rank=4, rule="lora-alpha")  # a fresh model: PEFT edits it
    layer = next(m for n, m in pm.named_modules() if n.endswith("gate_proj") and hasattr(m, "scaling"))
    assert layer.scaling["default"] == pytest.approx(256 * 4**0.5 / 4, rel=1e-12)  # Variant I: C·√r / r = 128 (rel: rounding only)


# ---------------------------------------------------------------------------------------------
# apply() on a model that already has adapters: rescaled in place, never nested (issue #13 item 1)

def _ids(n=2, t=10, seed=0):
    return torch.randint(3, 250, (n, t), generator=torch.Generator().manual_seed(seed))


def _trained(peft_model, seed=1):
    """Non-zero A and B everywhere, as after training, so equal outputs are a real check."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in lorascale.adapters.lora_modules(peft_model):
            for f in (m.lora_A["default"].weight, m.lora_B["default"].weight):
                f.copy_(0.02 * torch.randn(f.shape, generator=g))
    return peft_model


def _lora_state(peft_model):
    return {k: v.clone() for k, v in peft_model.state_dict().items() if "lora_" in k}


@pytest.mark.parametrize("rule", ["lora-alpha", "lora-alpha-analytic", "mua"])
def test_apply_on_peft_model_rescales_in_place_like_a_fresh_apply(rule, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    # someone's adapter: PEFT's default α = 8 at r = 4, and r = 8 on down_proj through rank_pattern
    theirs = get_peft_model(load_model("tiny-llama", seed=0).model,
                            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], rank_pattern={"down_proj": 8}))
    _trained(theirs)
    knobs = {"gamma": 0.5} if rule == "mua" else {}  # a knob the rule ignores is refused
    out = lorascale.apply(theirs, rule=rule, **knobs)
    assert out is theirs  # the same object: no second wrapper
    assert not any(k.startswith("base_model.model.base_model") for k in theirs.state_dict())

    fresh = lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4, rule=rule, **knobs,
                            targets=["q_proj", "down_proj"], rank_pattern={"down_proj": 8})
    fresh.load_state_dict(_lora_state(theirs), strict=False)
    ids = _ids()
    with torch.no_grad():
        expected = fresh(ids).logits
        assert torch.equal(theirs(ids).logits, expected)  # same factors, same s = lora_alpha/r computed by the same formula
    # and each layer's s by hand at its own rank (q_proj r = 4, d_in 64; down_proj r = 8, d_in 128), α = 1:
    # LoRA-α Variant I 256·√r/r; Variant II √(3·d_in·r)/r; μA's α = r^-γ at γ = ½
    by_hand = {"lora-alpha": lambda r, d: 256 * math.sqrt(r) / r, "lora-alpha-analytic": lambda r, d: math.sqrt(3 * d * r) / r,
               "mua": lambda r, d: r ** -0.5}[rule]
    for (n, m), (_, f) in zip(lorascale.adapters.lora_modules(theirs), lorascale.adapters.lora_modules(fresh), strict=True):
        assert m.scaling["default"] == f.scaling["default"] and m.r["default"] == f.r["default"], n
        r, d_in = (8, 128) if n.endswith("down_proj") else (4, 64)
        assert m.r["default"] == r and m.scaling["default"] == pytest.approx(by_hand(r, d_in), rel=1e-12), n  # rounding only

    theirs.save_pretrained(tmp_path)  # the rescaled config reloads to the rescaled s
    reloaded = PeftModel.from_pretrained(load_model("tiny-llama", seed=0).model, tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, expected)


def test_rescale_follows_the_rule_at_each_layers_own_rank():
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(load_model("tiny-llama", seed=0).model,
                        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], rank_pattern={"down_proj": 16}))
    lorascale.apply(pm, rule="lora-alpha")
    scales = {(n.rsplit(".", 1)[-1], m.r["default"]): m.scaling["default"] for n, m in lorascale.adapters.lora_modules(pm)}
    assert scales == {("q_proj", 4): 128.0, ("down_proj", 16): 64.0}  # C·√r/r = 256/√r at r = 4 and r = 16


def test_apply_on_peft_model_refuses_options_for_new_adapters_all_at_once():
    from lorascale.errors import ConfigErrors

    pm = lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4)
    with pytest.raises(ConfigErrors) as e:
        lorascale.apply(pm, rank=8, targets=["q_proj"], use_dora=True)
    assert [x.field for x in e.value.errors] == ["rank", "targets", "use_dora"]
    assert "unload()" in e.value.errors[0].fix
    assert lorascale.apply(pm, rank=4) is pm  # its own rank is no conflict


def test_apply_refuses_to_redraw_trained_adapters_and_lora_layers_outside_peft_model():
    from peft import LoraConfig, inject_adapter_in_model

    pm = _trained(lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4))
    with pytest.raises(ConfigError) as e:
        lorascale.apply(pm, rule="alpha-r", init="B")
    assert e.value.field == "init" and "trained" in e.value.message
    assert {s for _, s in _scales(pm).values()} == {128.0} and pm.peft_config["default"].lora_alpha == 512  # refused before any change
    bare = inject_adapter_in_model(LoraConfig(r=2, target_modules=["q_proj"]), load_model("tiny-llama").model)
    with pytest.raises(ConfigError) as e:
        lorascale.apply(bare)
    assert e.value.field == "model" and "not a PeftModel" in e.value.message


# ---------------------------------------------------------------------------------------------
# lora_config / rescale / init_after_wrap (issue #13 item 4)

def _scales(peft_model):
    return {n.removeprefix("base_model.model."): (m.r["default"], m.scaling["default"])
            for n, m in lorascale.adapters.lora_modules(peft_model)}


def test_lora_config_wrapped_by_peft_gives_the_planned_scales():
    from peft import get_peft_model

    base = load_model("tiny-llama", seed=0).model
    cfg = lorascale.lora_config(base, rank=4, rule="lora-alpha-analytic", targets="all-linear", rank_pattern={"o_proj": 8})
    assert cfg.target_modules == "all-linear" and cfg.task_type == "CAUSAL_LM"  # inferred from LlamaForCausalLM
    got = _scales(get_peft_model(base, cfg))
    assert len(got) == 2 * 7  # all-linear: every projection of both blocks, not lm_head
    for name, (r, s) in got.items():
        d_in = 128 if name.endswith("down_proj") else 64
        assert r == (8 if name.endswith("o_proj") else 4)
        assert s == pytest.approx(math.sqrt(3 * d_in * r) / r, rel=1e-12), name  # analytic at each layer's own rank


def test_peft_options_pass_through():
    from peft import get_peft_model

    base = load_model("tiny-llama", seed=0).model
    cfg = lorascale.lora_config(base, rank=4, lora_dropout=0.1, use_dora=True, init_lora_weights="gaussian",
                                modules_to_save=["lm_head"], targets=["q_proj"])
    assert (cfg.lora_dropout, cfg.use_dora, cfg.init_lora_weights, list(cfg.modules_to_save)) == (0.1, True, "gaussian", ["lm_head"])
    pm = get_peft_model(base, cfg)
    assert any("lora_magnitude_vector" in n for n, _ in pm.named_parameters())  # DoRA layers
    assert [s for _, s in _scales(pm).values()] == [128.0, 128.0]  # q_proj in 2 blocks


def test_sequence_classification_head_trains_without_task_type():
    pm = lorascale.apply(load_model("tiny-bert", num_labels=3).model, rank=4)
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad and "lora_" not in n}
    assert trainable == {"base_model.model.classifier.modules_to_save.default.weight",
                         "base_model.model.classifier.modules_to_save.default.bias"}


def test_lora_config_errors_name_each_option_at_once():
    from lorascale.errors import ConfigErrors

    base = load_model("tiny-llama").model
    with pytest.raises(ConfigErrors) as e:
        lorascale.lora_config(base, rank=0, use_dora="yes", fan_in_fan_out=True)
    assert {x.field for x in e.value.errors} == {"rank", "use_dora", "fan_in_fan_out"}
    with pytest.raises(ConfigError) as e:
        lorascale.lora_config(base, rank=4, rule="lora-alpha-analytic", init_lora_weights="gaussian")
    assert e.value.field == "init_lora_weights"
    with pytest.raises(ConfigError) as e:
        lorascale.lora_config(base, rank=4, targets=["q_proj"], rank_pattern={"nope_proj": 8})
    assert e.value.field == "rank_pattern" and "nope_proj" in e.value.message
    with pytest.raises(ConfigError) as e:
        lorascale.lora_config(lorascale.apply(base, rank=4), rank=4)
    assert e.value.field == "model" and "rescale" in e.value.fix


def test_rescale_a_lora_config_without_the_model():
    from peft import LoraConfig

    mine = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "down_proj"], rank_pattern={"down_proj": 4})
    new = lorascale.rescale(mine, "lora-alpha")
    assert new is not mine and mine.lora_alpha == 32  # the user's config is left alone
    assert new.lora_alpha == 256 * 4  # C·√16: s = 64 at r = 16
    assert new.alpha_pattern == {"down_proj": 256 * 2}  # C·√4 at the rank_pattern's r = 4: s = 128
    rs = lorascale.rescale(mine, "rslora", lora_alpha=8)
    assert (rs.use_rslora, rs.lora_alpha, rs.alpha_pattern) == (True, 8, {})
    with pytest.raises(ConfigError) as e:
        lorascale.rescale(mine, "lora-alpha-analytic")
    assert e.value.field == "model" and "model=model" in e.value.fix


def test_rescale_a_lora_config_with_the_model_equals_lora_config():
    from peft import LoraConfig

    base = load_model("tiny-bert", num_labels=2).model
    mine = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "output.dense"], task_type="SEQ_CLS")
    new = lorascale.rescale(mine, "lora-alpha-analytic", model=base)
    planned = lorascale.lora_config(base, rank=4, rule="lora-alpha-analytic", targets=["query", "output.dense"])
    assert (new.lora_alpha, new.alpha_pattern) == (planned.lora_alpha, planned.alpha_pattern)


def test_init_after_wrap_redraws_fresh_factors_only():
    from peft import get_peft_model

    base = load_model("tiny-llama", seed=0).model
    pm = get_peft_model(base, lorascale.lora_config(base, rank=4, rule="alpha-r", init="B"))
    assert lorascale.init_after_wrap(pm, "B", seed=0) == 2 * 3
    assert {r.init for r in lorascale.adapters.inspect_model(pm)} == {"B"}
    _trained(pm)
    with pytest.raises(ConfigError) as e:
        lorascale.init_after_wrap(pm, "A")
    assert e.value.field == "init"


def test_apply_builds_each_method_through_peft_at_the_rules_scale():
    from peft.tuners.lora import LoraLayer

    dora = lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4, rule="lora-alpha", method="dora")
    layers = [m for m in dora.modules() if isinstance(m, LoraLayer)]
    assert dora.peft_config["default"].use_dora is True and layers
    assert all(m.scaling["default"] == 128.0 and "default" in m.lora_magnitude_vector for m in layers)  # 256·√4/4
    base = load_model("tiny-llama", seed=0).model
    cfg = lorascale.lora_config(base, rank=4, rule="alpha-2r", method="pissa", pissa_niter=2)
    assert (cfg.init_lora_weights, cfg.lora_alpha, cfg.use_dora) == ("pissa_niter_2", 8.0, False)
    assert lorascale.lora_config(base, rank=4, method="olora").init_lora_weights == "olora"
    assert lorascale.recommend_lr("alpha-r", 3e-5, method="pissa") == 3e-5  # PiSSA (Meng et al. 2024): η_FFT, not 10×
    # rel=1e-9: float rounding only
    assert lorascale.recommend_lr("alpha-r", 3e-5, method="dora") == pytest.approx(3e-4, rel=1e-9)


def test_method_and_a_contradicting_peft_option_are_refused():
    base = load_model("tiny-llama", seed=0).model
    with pytest.raises(ConfigError) as e:
        lorascale.lora_config(base, rank=4, method="pissa", init_lora_weights="olora")
    assert e.value.field == "init_lora_weights" and "method pissa sets" in e.value.message
    pm = lorascale.apply(base, rank=4)
    with pytest.raises(ConfigErrors) as es:  # DoRA needs new adapters; LoRA+ is only an optimizer and passes
        lorascale.apply(pm, method="dora")
    assert [x.field for x in es.value.errors] == ["method"]
    assert lorascale.apply(pm, method="loraplus") is pm


def test_loraplus_optimizer_is_peft_s_with_the_mua_recipe():
    pm = lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4)
    opt = lorascale.loraplus_optimizer(pm, 1e-4)
    names = {id(p): n for n, p in pm.named_parameters()}
    seen = 0
    for g in opt.param_groups:
        for p in g["params"]:
            assert g["lr"] == (1.6e-3 if "lora_B" in names[id(p)] else 1e-4)  # B at 16 × lr (Hayou et al. 2024)
            assert g["weight_decay"] == 0.01 and g["betas"] == (0.9, 0.999)
            seen += 1
    assert seen == sum(p.requires_grad for p in pm.parameters()) == 12  # μA Table 3: gate/up/down × 2 blocks × (A, B)
    with pytest.raises(ConfigError) as e:
        lorascale.loraplus_optimizer(pm, 1e-4, loraplus_lr_ratio=0)
    assert e.value.field == "loraplus_lr_ratio"


# ---------------------------------------------------------------------------------------------
# the layers planned are the layers PEFT wraps (audit items 1-4, 8, 9)

ANALYTIC_64 = math.sqrt(3 * 64 * 4)  # LoRA-α analytic's lora_alpha = s·r = √(3·d_in·r) at d_in 64, r 4 (s ≈ 6.93)


def test_rescale_of_a_config_without_target_modules_uses_peft_s_default_targets():
    from peft import LoraConfig, get_peft_model

    base = load_model("tiny-llama", seed=0).model
    new = lorascale.rescale(LoraConfig(r=4), "lora-alpha-analytic", model=base)  # PEFT's default: no target_modules
    assert new.target_modules is None  # left for PEFT to fill in, as it will for the model it wraps
    assert new.lora_alpha == pytest.approx(ANALYTIC_64, rel=1e-12) and new.alpha_pattern == {}  # rounding only
    got = _scales(get_peft_model(base, new))  # PEFT's default for llama: q_proj and v_proj, both d_in 64
    assert sorted(got) == [f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")]
    assert all(r == 4 and s == pytest.approx(ANALYTIC_64 / 4, rel=1e-12) for r, s in got.values())  # rounding only
    with pytest.raises(ConfigError) as e:  # a model PEFT has no default targets for
        lorascale.rescale(LoraConfig(r=4), "lora-alpha", model=torch.nn.ModuleDict({"lin": torch.nn.Linear(8, 8)}))
    assert e.value.field == "target_modules" and "target_modules=" in e.value.fix


def test_excluded_and_saved_modules_get_no_alpha_pattern_key():
    from peft import LoraConfig, get_peft_model

    # down_proj (d_in 128) would need its own alpha; excluded or trained in full it gets no adapter, so no key
    base = load_model("tiny-llama", seed=0).model
    mine = LoraConfig(r=4, target_modules="all-linear", exclude_modules=["down_proj"])
    new = lorascale.rescale(mine, "lora-alpha-analytic", model=base)
    planned = lorascale.lora_config(base, rank=4, rule="lora-alpha-analytic", targets="all-linear", modules_to_save=["down_proj"])
    for cfg in (new, planned):
        assert cfg.lora_alpha == pytest.approx(ANALYTIC_64, rel=1e-12) and cfg.alpha_pattern == {}  # rounding only
    got = _scales(get_peft_model(base, new))
    assert len(got) == 2 * 6 and not any(n.endswith("down_proj") for n in got)  # every other projection of both blocks


def test_a_string_target_is_a_regular_expression_as_in_peft():
    from peft import get_peft_model

    base = load_model("tiny-llama", seed=0).model
    cfg = lorascale.lora_config(base, rank=4, targets=r".*\.(q_proj|v_proj)")
    assert cfg.target_modules == r".*\.(q_proj|v_proj)"  # kept a string: a one-name list would be a suffix
    got = _scales(get_peft_model(base, cfg))
    assert sorted(got) == [f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")]
    assert {s for _, s in got.values()} == {128.0}  # LoRA-α: 256·√4/4
    with pytest.raises(ConfigError) as e:  # a bare name as a string matches no full module name, in PEFT too
        lorascale.lora_config(load_model("tiny-llama").model, rank=4, targets="q_proj")
    assert e.value.field == "targets" and "regular expression" in e.value.message and "[q_proj, v_proj]" in e.value.fix


def test_an_empty_target_list_is_refused_not_read_as_the_default():
    with pytest.raises(ConfigErrors) as e:
        lorascale.lora_config(load_model("tiny-llama").model, rank=4, targets=[])
    assert [x.field for x in e.value.errors] == ["targets"] and "unset" in e.value.errors[0].fix


def test_rescale_keeps_a_dead_rank_pattern_key_of_existing_adapters_and_warns(caplog):
    from peft import LoraConfig, get_peft_model

    # someone's adapter: PEFT ignored o_proj's rank_pattern key when it built q_proj and v_proj at r = 4
    theirs = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"o_proj": 8})
    pm = get_peft_model(load_model("tiny-llama", seed=0).model, theirs)
    with caplog.at_level("WARNING", logger="lorascale.adapters.plan"):
        assert lorascale.rescale(pm, "lora-alpha") is pm
        new = lorascale.rescale(theirs, "lora-alpha", model=load_model("tiny-llama", seed=0).model)
    assert {s for _, s in _scales(pm).values()} == {128.0}  # 256·√4/4 on every layer: all at r = 4
    assert pm.peft_config["default"].rank_pattern == new.rank_pattern == {"o_proj": 8}
    assert caplog.text.count("['o_proj'] match no LoRA layer") == 2
    with pytest.raises(ConfigError) as e:  # a fresh plan still refuses it
        lorascale.lora_config(load_model("tiny-llama").model, rank=4, targets=["q_proj"], rank_pattern={"o_proj": 8})
    assert e.value.field == "rank_pattern"


def test_apply_with_the_method_the_adapters_already_have_rescales_them():
    dora = lorascale.apply(load_model("tiny-llama", seed=0).model, rank=4, rule="alpha-r", method="dora")
    assert lorascale.apply(dora, rule="lora-alpha", method="dora") is dora
    assert {s for _, s in _scales(dora).values()} == {128.0}  # from α = r's 1 to LoRA-α's 256·√4/4
    with pytest.raises(ConfigErrors) as e:  # another method would need new adapters
        lorascale.apply(dora, method="olora")
    assert [x.field for x in e.value.errors] == ["method"]


def test_init_after_wrap_checks_the_init_name_first():
    with pytest.raises(ConfigError) as e:  # before: a raw ValueError, after "has no LoRA layers yet" for this model
        lorascale.init_after_wrap(load_model("tiny-llama").model, "kaimnig")
    assert e.value.field == "init" and e.value.fix == "choose one of kaiming, A or B"


def test_a_knob_the_rule_ignores_is_refused_by_every_entry_point(tiny_llama):
    """``apply(model, rule="fixed-alpha", alpha=3)`` used to wrap at lora_alpha 16, the α dropped; None is each
    knob's default, so an unset knob is never "given"."""
    from lorascale.errors import ConfigErrors

    cases = [lambda: lorascale.apply(tiny_llama.model, rule="fixed-alpha", alpha=3.0, rank=0),
             lambda: lorascale.lora_config(tiny_llama.model, 0, "fixed-alpha", alpha=3.0),
             lambda: lorascale.recommend_lr("alpha-r", gamma=0.5, init="Z")]
    for call, fields in zip(cases, (["alpha", "rank"], ["alpha", "rank"], ["gamma", "init"])):
        with pytest.raises(ConfigErrors) as e:
            call()
        assert sorted(x.field for x in e.value.errors) == fields  # with the other problems, at once
    from peft import LoraConfig
    with pytest.raises(ConfigErrors) as e:
        lorascale.rescale(LoraConfig(r=4, lora_alpha=8), "mua", c=512.0)
    assert [x.field for x in e.value.errors] == ["c"]
    with pytest.raises(ConfigErrors) as e:  # out of range and ignored: one error, whose fix (drop it) covers both
        lorascale.recommend_lr("alpha-r", gamma=5)
    assert [x.field for x in e.value.errors] == ["gamma"] and "so this would be ignored" in e.value.errors[0].message
    with pytest.raises(ConfigErrors) as e:
        lorascale.trainer_kwargs("lora-alpha", gamma=0.5)
    assert [x.field for x in e.value.errors] == ["gamma"]
    assert lorascale.trainer_kwargs("mua", init="B", gamma=0.0)["learning_rate"] == 2e-5  # Init[B] α = 1: η_FFT
    assert lorascale.lora_config(tiny_llama.model, 4, "fixed-alpha", lora_alpha=32.0).lora_alpha == 32.0
    assert lorascale.recommend_lr("mua", 1e-4, init="B", gamma=0.0) == 1e-4  # μA Init[B] α = 1: η_FFT
