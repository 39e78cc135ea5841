"""LoRA+ in the μA recipe: each parameter's learning rate is the one PEFT's create_loraplus_optimizer gives it."""

import pytest
import torch

from lorascale.train import TrainConfig
from lorascale.train.build import build_run, param_groups

SMALL = dict(data="shakespeare", batch_size=4, seq_len=32, max_examples=32, steps=2, rank=4)


def _peft_lrs(model, lr, ratio) -> dict[int, float]:
    """The reference: PEFT's LoRA+ AdamW, built directly."""
    from peft.optimizers import create_loraplus_optimizer

    opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=ratio)
    return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("kw, ratio", [(dict(method="loraplus"), 16.0), (dict(method="dora", loraplus_lr_ratio=4), 4.0)])
def test_body_groups_get_peft_loraplus_rates_and_mua_weight_decay(one_thread, kw, ratio):
    cfg = TrainConfig(model="tiny-llama", **SMALL, **kw)
    model = build_run(cfg, quiet=True).model
    groups = param_groups(model, cfg)
    peak = cfg.peak_lr()
    assert peak == 2e-5  # lora-alpha trains at η_FFT
    reference = _peft_lrs(model, peak, ratio)
    ours = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert ours == reference  # every trainable parameter, exactly PEFT's rate
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        assert g["peak_lr"] == g["lr"] and g["weight_decay"] == 0.01  # μA: decay 0.01 on every group
        for p in g["params"]:  # hand rule: B factors (and DoRA's 1-D magnitudes) at ratio × η, A at η
            fast = "lora_B" in names[id(p)] or p.ndim == 1
            assert g["lr"] == (peak * ratio if fast else peak), names[id(p)]
    assert [g["name"] for g in groups] == ["body", "body_B"]
    if kw["method"] == "dora":
        assert any("lora_magnitude_vector" in names[id(p)] for p in groups[1]["params"])


def test_classification_head_keeps_its_own_rate(one_thread):
    cfg = TrainConfig(model="tiny-bert", **(SMALL | dict(data="shakespeare-genre")), method="loraplus", head_lr=3e-3)
    model = build_run(cfg, quiet=True).model
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert set(groups) == {"body", "body_B", "head"}
    assert groups["head"]["lr"] == 3e-3  # μA App. B.1's fixed head rate, not PEFT's η or 16η
    assert groups["body_B"]["lr"] == 16 * groups["body"]["lr"]


def test_plain_lora_keeps_one_body_group(one_thread):
    cfg = TrainConfig(model="tiny-llama", **SMALL)
    assert [g["name"] for g in param_groups(build_run(cfg, quiet=True).model, cfg)] == ["body"]
