"""The baseline methods' vocabulary: which PEFT option each sets, its default learning rate, one spelling each."""

import pytest

from lorascale.adapters import AdapterSpec
from lorascale.errors import ConfigErrors
from lorascale.methods import LORAPLUS_LR_RATIO, Method, method_lr, method_of, peft_fields
from lorascale.rules import RuleSpec, ScaleRule, recommended_lr
from lorascale.train import TrainConfig


def test_each_method_sets_exactly_its_peft_option():
    assert peft_fields(Method.LORA) == {} and peft_fields(Method.LORAPLUS) == {}  # LoRA+ is an optimizer
    assert peft_fields(Method.DORA) == {"use_dora": True}
    assert peft_fields(Method.PISSA) == {"init_lora_weights": "pissa"}
    assert peft_fields(Method.PISSA, pissa_niter=4) == {"init_lora_weights": "pissa_niter_4"}
    assert peft_fields(Method.OLORA) == {"init_lora_weights": "olora"}


@pytest.mark.parametrize("rule, lora_lr", [("lora-alpha", 2e-5), ("alpha-r", 2e-4), ("rslora", 2e-4)])
def test_default_learning_rates_compose_with_each_rule(rule, lora_lr):
    spec = RuleSpec(rule=rule)
    # η_FFT = 2e-5: LoRA-α trains at η_FFT (eq. 5), the conventional rules at 10 × η_FFT
    for method in (Method.LORA, Method.LORAPLUS, Method.DORA, Method.OLORA):
        assert recommended_lr(spec, 2e-5, method=method) == lora_lr
    assert recommended_lr(spec, 2e-5, method=Method.PISSA) == 2e-5  # PiSSA (Meng et al. 2024): the full-finetuning rate
    assert method_lr(Method.PISSA, None, 3e-5) == 3e-5 and method_lr(Method.DORA, None, 3e-5) is None


def test_pissa_needs_no_tuned_reference_even_under_mua():
    # μA Init[A] γ = 1 has no closed-form rate (transfer from a tuned point), PiSSA brings its own
    with pytest.raises(ConfigErrors, match="lr"):
        TrainConfig(rule="mua", gamma=1.0, init="A")
    assert TrainConfig(rule="mua", gamma=1.0, method="pissa").peak_lr() == 2e-5


def test_loraplus_has_one_spelling():
    canonical = AdapterSpec(method="loraplus")
    assert canonical.loraplus_lr_ratio is None and canonical.loraplus_ratio() == LORAPLUS_LR_RATIO == 16.0
    for spelled in (dict(method="loraplus", loraplus_lr_ratio=16), dict(loraplus_lr_ratio=16.0),
                    dict(method="loraplus", loraplus_lr_ratio="16")):  # YAML 1.1 may hand over a string
        assert AdapterSpec(**spelled) == canonical
    assert AdapterSpec(loraplus_lr_ratio=4).method is Method.LORAPLUS and AdapterSpec(loraplus_lr_ratio=4).loraplus_ratio() == 4
    # on another method the ratio adds LoRA+'s optimizer and keeps the method; unset, there is no LoRA+
    assert AdapterSpec(method="dora", loraplus_lr_ratio=16).loraplus_ratio() == 16 and AdapterSpec(method="dora").loraplus_ratio() is None
    # back to plain LoRA from the default ratio: no LoRA+ left behind
    assert TrainConfig(method="loraplus").replace(method="lora").adapter.loraplus_ratio() is None


def test_flat_keys_round_trip_and_enter_the_point_key_only_when_set():
    from lorascale.sweep.spec import point_key

    cfg = TrainConfig(rank=8, rule="lora-alpha", method="pissa", pissa_niter=4)
    assert TrainConfig.from_flat(cfg.to_flat()) == cfg
    assert cfg.to_flat()["method"] == "pissa" and cfg.to_flat()["pissa_niter"] == 4
    assert point_key(TrainConfig(rank=8, method="lora")) == point_key(TrainConfig(rank=8))  # old keys stay valid
    assert point_key(TrainConfig(rank=8, method="dora")) != point_key(TrainConfig(rank=8))


def test_bad_method_settings_are_reported_together():
    with pytest.raises(ConfigErrors) as e:
        AdapterSpec(method="olora", init="A", pissa_niter=3, rule="lora-alpha-analytic")
    assert [x.field for x in e.value.errors] == ["pissa_niter", "init", "method"]
    with pytest.raises(ConfigErrors) as e:
        TrainConfig(method="vera", loraplus_lr_ratio=0)
    assert {x.field for x in e.value.errors} == {"method", "loraplus_lr_ratio"}
    assert "loraplus" in str(e.value) and "dora" in str(e.value)  # the valid choices are listed
    with pytest.raises(ConfigErrors, match="full finetuning has no adapter"):
        TrainConfig(finetune="full", method="dora")


def test_every_scaling_rule_composes_with_dora():
    for rule in ScaleRule:
        assert AdapterSpec(rule=rule, method="dora").method is Method.DORA  # LoRA-α + DoRA is a valid point


@pytest.mark.parametrize("method, niter", [(Method.LORA, None), (Method.DORA, None), (Method.PISSA, None), (Method.PISSA, 16),
                                           (Method.OLORA, None)])
def test_a_peft_config_names_its_method_back(method, niter):
    from peft import LoraConfig

    fields = peft_fields(method, niter)
    config = LoraConfig(**fields)  # PEFT's defaults for the fields a method leaves alone
    assert method_of(config.use_dora, config.init_lora_weights) == (method, niter)


def test_options_that_are_no_single_method():
    assert method_of(True, "pissa") is None and method_of(False, "gaussian") is None and method_of(False, "pissa_niter_x") is None
    # as PEFT reads them: "pissa" case-sensitively (LoraLayer.update_layer's startswith), "olora" in any case
    assert method_of(False, "PiSSA") is None and method_of(False, "OLoRA") == (Method.OLORA, None)


def test_olora_factors_are_w0s_qr_factors_not_divided_by_s():
    """What methods.py and docs/baselines.md say PEFT's OLoRA does: B = Q_r, A = R_r of W₀ = QR, whatever s is
    (PiSSA divides its factors by √s), and the base keeps W₀ − s·B·A."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False))
    w0 = model[0].weight.detach().clone()
    q, r = torch.linalg.qr(w0)
    wrapped = get_peft_model(model, LoraConfig(r=2, lora_alpha=8, target_modules=["0"], init_lora_weights="olora"))
    layer = wrapped.base_model.model[0]
    assert layer.scaling["default"] == 4.0
    b, a = layer.lora_B["default"].weight, layer.lora_A["default"].weight
    assert torch.allclose(b, q[:, :2]) and torch.allclose(a, r[:2])  # float32 QR of the same matrix: exact up to rounding
    assert torch.allclose(layer.get_base_layer().weight, w0 - 4.0 * b @ a, atol=1e-6)  # 1e-6: float32 matmul rounding
