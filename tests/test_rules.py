"""Each rule against numbers computed by hand, and transfer round trips."""

import pytest

from lorascale.errors import ConfigErrors

from lorascale.rules import (
    ALL_KNOBS, RULE_KNOBS, Finetune, Init, MuAConfig, RuleError, RuleSpec, ScaleRule, alpha_base, effective_scale,
    mua_lr_exponents, mua_lr_shape, peft_lora_alpha, recommended_lr, scale_from_peft, sigma_a, transfer_lr, unread_knobs,
)


def test_variant_i_hand_numbers():
    # r = 16: α_base = 256·4 = 1024, s = 1024/16 = 64.
    assert alpha_base(RuleSpec(rule=ScaleRule.LORA_ALPHA), 16, 576) == 1024.0
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA), 16, 576) == 64.0
    # α knob multiplies; C = 512 (paper's 8B setting) doubles.
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, alpha=0.5), 16, 576) == 32.0
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, c=512), 16, 576) == 128.0
    # LoRA-α App. F: 256·√8 / 8 ≈ 90.5× the α = r heuristic at r = 8, and 16× at r = 256.
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA), 8, 4096) == pytest.approx(90.5097, rel=1e-5)
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA), 256, 4096) == 16.0


def test_variant_ii_issue_example():
    # d_in = 576, r = 16, kaiming: α_base = √(3·576·16) = √27648 ≈ 166.28.
    assert alpha_base(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), 16, 576, Init.KAIMING) == pytest.approx(166.2769, abs=1e-4)
    # Gaussian Init[A]: σ_A = 1/√576 = 1/24, α_base = 24·4 = 96, s = 6.
    # rel=1e-9: float rounding only
    assert effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), 16, 576, Init.A) == pytest.approx(6.0, rel=1e-9)
    # App. F: 1/σ_A ≈ 111 at d_in = 4096.
    assert 1 / sigma_a(Init.KAIMING, 4096) == pytest.approx(110.85, abs=0.01)
    with pytest.raises(RuleError, match="init"):
        effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA_ANALYTIC), 16, 576, Init.B)


def test_conventional_rules():
    r = 16
    assert effective_scale(RuleSpec(rule=ScaleRule.ALPHA_EQ_R), r, 64) == 1.0
    assert effective_scale(RuleSpec(rule=ScaleRule.ALPHA_2R), r, 64) == 2.0
    assert effective_scale(RuleSpec(rule=ScaleRule.FIXED_ALPHA, lora_alpha=32), r, 64) == 2.0
    assert effective_scale(RuleSpec(rule=ScaleRule.RSLORA, lora_alpha=16), r, 64) == 4.0
    assert effective_scale(RuleSpec(rule=ScaleRule.MUA, gamma=1.0), r, 64) == 1 / 16
    assert effective_scale(RuleSpec(rule=ScaleRule.MUA, gamma=0.5), r, 64) == 0.25
    # rel=1e-9: float rounding only
    assert recommended_lr(RuleSpec(rule=ScaleRule.ALPHA_EQ_R), 2e-5) == pytest.approx(2e-4, rel=1e-9)
    assert recommended_lr(RuleSpec(rule=ScaleRule.LORA_ALPHA), 3e-5) == 3e-5


def test_peft_mapping_round_trip():
    for s, r in [(64.0, 16), (10.39, 16), (0.125, 8)]:
        assert scale_from_peft(peft_lora_alpha(s, r), r) == pytest.approx(s, rel=1e-9)  # float rounding only
        # rel=1e-9: float rounding only
        assert scale_from_peft(peft_lora_alpha(s, r, True), r, True) == pytest.approx(s, rel=1e-9)
    assert peft_lora_alpha(64.0, 16) == 1024.0  # Variant I: lora_alpha = C·√r


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha_names_field(bad):
    with pytest.raises(ConfigErrors) as e:
        RuleSpec(alpha=bad)
    assert [x.field for x in e.value.errors] == ["alpha"]
    assert e.value.errors[0].fix == "the LoRA-α knob α defaults to 1; try a value in [0.1, 10]"


def test_unknown_rule_lists_choices():
    with pytest.raises(ConfigErrors, match="lora-alpha-analytic"):
        RuleSpec(rule="lora-beta")


@pytest.mark.parametrize("bad", [True, "abc", None])
def test_booleans_and_junk_are_not_numbers(bad):
    with pytest.raises(ConfigErrors) as e:
        RuleSpec(c=bad)
    assert e.value.errors[0].field == "c"


def test_init_b_alpha_one_gets_fft_lr_whichever_rule_spells_it():
    # μA Cor. 4.6: Init[B] with α = 1 trains at η_FFT; lora_alpha = r is the same α = 1 (issue #13 item 3)
    assert recommended_lr(RuleSpec(rule="alpha-r"), 3e-5, Init.B) == 3e-5
    assert recommended_lr(RuleSpec(rule="mua", gamma=0), 3e-5, Init.B) == 3e-5
    assert recommended_lr(RuleSpec(rule="alpha-r"), 3e-5, Init.KAIMING) == pytest.approx(3e-4, rel=1e-12)  # 10× heuristic (rel: rounding only)
    assert recommended_lr(RuleSpec(rule="alpha-2r"), 3e-5, Init.B) == pytest.approx(3e-4, rel=1e-12)  # s = 2, not α = 1 (rel: rounding only)


def test_mua_shapes_hand_numbers():
    n, r = 1024, 16
    # Init[A], α = 1: n^-1/2 r^-1/2 = 1/32 · 1/4.
    # rel=1e-9: float rounding only
    assert mua_lr_shape(n, r, MuAConfig(init=Init.A, gamma=0)) == pytest.approx(1 / 128, rel=1e-9)
    # Init[A], α = 1/√r: n^-1/2 r^-1/4 = 1/32 · 1/2.
    # rel=1e-9: float rounding only
    assert mua_lr_shape(n, r, MuAConfig(init=Init.A, gamma=0.5)) == pytest.approx(1 / 64, rel=1e-9)
    # Init[A], α = 1/r: rank-free n^-1/2.
    assert mua_lr_shape(n, r, MuAConfig(init=Init.A, gamma=1)) == pytest.approx(1 / 32, rel=1e-9)  # float rounding only
    # Init[B], α = 1 and FFT: 1/n.
    assert mua_lr_shape(n, r, MuAConfig(init=Init.B, gamma=0)) == 1 / n
    assert mua_lr_shape(n, None, MuAConfig(finetune=Finetune.FULL)) == 1 / n
    # Init[B], α = 1/r: min(r/n, n^-1/2): r = 16 ≤ √n = 32 → r/n; r = 64 > 32 → n^-1/2.
    assert mua_lr_shape(n, 16, MuAConfig(init=Init.B, gamma=1)) == 16 / 1024
    assert mua_lr_shape(n, 64, MuAConfig(init=Init.B, gamma=1)) == 1 / 32
    assert mua_lr_exponents(n, 16, MuAConfig(init=Init.A, gamma=0)) == (-0.5, -0.5)
    assert mua_lr_exponents(n, 16, MuAConfig(init=Init.B, gamma=1)) == (-1.0, 1.0)


def test_transfer_rank_4x_halves_lr_under_init_a():
    # μA §4.1: with α = 1, increasing the rank 4× halves the learning rate.
    lr = transfer_lr(1e-3, n0=576, r0=4, n1=576, r1=16, src=MuAConfig(init=Init.A, gamma=0))
    assert lr == pytest.approx(5e-4, rel=1e-9)  # float rounding only


def test_transfer_round_trips():
    cfgs = [MuAConfig(init=Init.A, gamma=g) for g in (0, 0.5, 1)] + [MuAConfig(init=Init.B, gamma=g) for g in (0, 1)]
    for cfg in cfgs:
        there = transfer_lr(3e-4, n0=384, r0=8, n1=2048, r1=128, src=cfg)
        back = transfer_lr(there, n0=2048, r0=128, n1=384, r1=8, src=cfg)
        assert back == pytest.approx(3e-4, rel=1e-12)


def test_transfer_init_b_to_fft_is_identity_and_width_scales_inverse():
    b = MuAConfig(init=Init.B, gamma=0)
    fft = MuAConfig(finetune=Finetune.FULL)
    # rel=1e-9: float rounding only
    assert transfer_lr(2e-5, n0=576, r0=16, n1=576, r1=None, src=b, dst=fft) == pytest.approx(2e-5, rel=1e-9)
    # Doubling width halves the rate (η ∝ 1/n).
    # rel=1e-9: float rounding only
    assert transfer_lr(2e-5, n0=576, r0=16, n1=1152, r1=256, src=b, dst=fft) == pytest.approx(1e-5, rel=1e-9)


def test_transfer_across_unrelated_configs_is_refused():
    with pytest.raises(RuleError, match="^dst"):  # the argument naming the target configuration
        transfer_lr(1e-3, n0=64, r0=4, n1=64, r1=4, src=MuAConfig(init=Init.A), dst=MuAConfig(finetune=Finetune.FULL))


def test_init_b_gamma_half_refused():
    with pytest.raises(ConfigErrors) as e:
        MuAConfig(init=Init.B, gamma=0.5)
    assert e.value.errors[0].field == "gamma"


@pytest.mark.parametrize("rule", list(ScaleRule))
def test_rule_knobs_are_exactly_the_knobs_effective_scale_reads(rule):
    """RULE_KNOBS against effective_scale itself: doubling a knob the table lists changes s at every (r, d_in),
    doubling one it leaves out never does (γ from 0.25 to 0.5; γ = 0 would give r^0 = 1 at any γ·2)."""
    start = {"alpha": 1.5, "c": 100.0, "lora_alpha": 12.0, "gamma": 0.25}
    assert set(start) == ALL_KNOBS
    for knob in ALL_KNOBS:
        changed = [effective_scale(RuleSpec(rule=rule, **{**start, knob: 2 * start[knob]}), r, d) !=
                   effective_scale(RuleSpec(rule=rule, **start), r, d) for r in (4, 64) for d in (64, 576)]
        assert all(changed) if knob in RULE_KNOBS[rule] else not any(changed), knob


def test_unread_knobs_name_each_ignored_knob_with_the_rules_that_read_it():
    errors = unread_knobs({"rule": "fixed-alpha", "alpha": 3, "c": 512, "gamma": 1, "lora_alpha": 32, "rank": 8})
    assert [e.field for e in errors] == ["alpha", "c", "gamma"]  # lora_alpha is fixed-alpha's; rank is no knob
    assert errors[0].message == "rule fixed-alpha reads only `lora_alpha`, so this would be ignored"
    assert errors[0].fix == "drop `alpha`, or choose a rule that reads it: lora-alpha, lora-alpha-analytic"
    assert errors[1].fix == "drop `c`, or choose a rule that reads it: lora-alpha"  # Variant II has no C
    # the default rule is LoRA-α's Variant I; a rule with no knob says so; the prefix places a sweep's field
    assert [e.field for e in unread_knobs({"gamma": 0.5, "alpha": 2, "c": 512})] == ["gamma"]
    (e,) = unread_knobs({"rule": ScaleRule.ALPHA_EQ_R, "lora_alpha": 16}, where="grid.configs[1].")
    assert (e.field, e.message) == ("grid.configs[1].lora_alpha", "rule alpha-r has no knob, so this would be ignored")
    assert unread_knobs({"rule": "lora-alpha-analytic", "c": 512})[0].field == "c"
    assert unread_knobs({"rule": "nope", "gamma": 1}) == []  # the rule's own error is validation's
    assert unread_knobs({"rule": "mua", "gamma": 1, "init": "A"}) == []
