"""The one-call API: apply() plans through PEFT; recommend_lr() agrees with the rules."""

import pytest

import lorascale
from lorascale.errors import ConfigErrors
from lorascale.rules import RuleError


def test_recommend_lr_follows_each_rule():
    assert lorascale.recommend_lr("lora-alpha", 3e-5) == 3e-5  # LoRA-α eq. (5): η_FFT itself
    assert lorascale.recommend_lr("lora-alpha-analytic", 3e-5) == 3e-5
    assert lorascale.recommend_lr("alpha-r", 3e-5) == pytest.approx(3e-4)  # the 10× folk rule
    assert lorascale.recommend_lr("rslora", 3e-5) == pytest.approx(3e-4)
    # μA Init[B] with α = 1 (Cor. 4.6) trains at η_FFT, whichever rule spells α = 1 (issue #13 item 3)
    assert lorascale.recommend_lr("mua", 3e-5, init="B", gamma=0.0) == 3e-5
    assert lorascale.recommend_lr("alpha-r", 3e-5, init="B") == 3e-5
    with pytest.raises(RuleError) as e:  # other μA configurations transfer from a tuned point
        lorascale.recommend_lr("mua", 3e-5, init="A")
    assert e.value.field == "lr" and "transfer" in e.value.fix
    with pytest.raises(ConfigErrors):
        lorascale.recommend_lr("nope")


def test_apply_sets_the_planned_scale():
    from lorascale.models import load_model

    pm = lorascale.apply(load_model("tiny-llama").model, rank=4, rule="lora-alpha")  # a fresh model: PEFT edits it
    layer = next(m for n, m in pm.named_modules() if n.endswith("gate_proj") and hasattr(m, "scaling"))
    assert layer.scaling["default"] == pytest.approx(256 * 4**0.5 / 4)  # Variant I: C·√r / r = 128
