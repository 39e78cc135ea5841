"""The coordinate check on tiny models: μA's rule gives flat, a fixed learning rate the predicted drift.

**The single-sample batch.** μA's analysis is of one sample with a fixed layer input (§4, App. A).
A batch of a constant text ("aaaa…") is exactly that: every position of a causal model sees the
same tokens, so every LoRA layer has one input x, repeated. Then Adam's first step, which is sign
descent (m̂₁/√v̂₁ = g/|g|, μA Assumption 4.2), gives Init[A]'s B the update ΔB = −η·sign(dZ̄)·sign(z)ᵀ
with z = A·x, and

    δ²₁ = s·ΔB·z = −η·sign(dZ̄)·Σ_j |z_j|,        RMS(δ²₁) = η·Σ_j |z_j|   (s = α = 1),

a coherent sum of r terms. A has i.i.d. N(0, 1/d_in) entries, so E|z_j| = √(2/π)·‖x‖/√d_in is the
same for every j and RMS(δ²₁) = η·r·E|z| (1 + O(r^-1/2) fluctuation). Hence at step 1:
fixed η → slope 1 in r; μA's η ∝ r^-1/2 → slope 1/2. With real text the r terms are only partly
coherent (a √r floor under the r trend), and the slopes approach these values only for large r.

The test sizes are set where the asymptotics hold on a tiny model: width 256 with ranks 4…64
(r ≤ n/4) and the μA anchor η = 1e-2 at rank 16, so η·n runs from 5 (r = 4) to 1.3 (r = 64). μA's
Θ(1) for Init[A]'s δ² needs η·n ≳ 1 (Z_A^{t−1} dominated by its learned part, which first happens
at t = 3). Larger anchors push the step out of the linear regime: with these sizes the step-3
slope is +0.11 at η₀ = 5e-3, −0.00 at 1e-2 and −0.11 at 2e-2 (docs/diagnostics.md §7), so the flat
verdict holds in a window of anchors, and the test sits in its middle.
"""

import math

import pytest
import torch

from lorascale.diagnostics.coord_check import coord_check
from lorascale.diagnostics.coord_monitor import CoordMonitor, train_steps
from lorascale.diagnostics.coord_spec import CoordCheckSettings, CoordConfig, learning_rate
from lorascale.diagnostics.coord_fit import Verdict
from lorascale.errors import ConfigError, ConfigErrors

SAMPLE = dict(model="tiny-llama@256", configs=("mua-A-1",), ranks=(4, 8, 16, 32, 64), seeds=4, ref_lr=1e-2,
              seq_len=8, batch_size=1)


@pytest.fixture(scope="module")
def constant_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "constant.txt"
    path.write_text("a" * 2000)
    return str(path)


@pytest.fixture(scope="module")
def mua(constant_text):
    return coord_check(CoordCheckSettings(**SAMPLE, data=constant_text, out_dir="unused"))


@pytest.fixture(scope="module")
def fixed(constant_text):
    return coord_check(CoordCheckSettings(**SAMPLE, data=constant_text, lr_rule="fixed"))


def fit(result, term, step, axis="rank", config="mua-A-1"):
    (f,) = [f for f in result.fits if (f.config, f.axis, f.term, f.step) == (config, axis, term, step)]
    return f


def test_mua_rule_for_init_a_keeps_delta2_flat_at_step_3(mua):
    f = fit(mua, "delta2", 3)
    # the library's own verdict thresholds (|k| ≤ 0.1, 95% CI inside ±0.2): the seeds agree to ±0.06 here
    assert f.fit.verdict is Verdict.FLAT, f
    assert f.lr_exponent == pytest.approx(-0.5, abs=1e-9)  # μA Table 1, γ = 0: η ∝ r^-1/2
    # Adam's first step is sign descent: every B entry moves by η, so ‖ΔB‖'s RMS follows η ∝ r^-1/2 exactly
    assert fit(mua, "update_b", 1).fit.slope == pytest.approx(-0.5, abs=1e-3)
    # δ¹ and δ³ are exactly 0 at step 1 (B = 0 makes ∇_A = 0; no weight decay moves A)
    assert fit(mua, "delta1", 1).fit.verdict is Verdict.ZERO and fit(mua, "delta3", 1).fit.verdict is Verdict.ZERO


def test_at_step_1_delta2_follows_the_coherent_sum(mua, fixed):
    # module docs: RMS(δ²₁) = η·r·E|z|. The fluctuation of Σ_j|z_j| (relative sd 0.76/√r per layer, 14
    # layers and 4 seeds averaged) moves the fitted slope by a few hundredths: tolerance 0.1.
    assert fit(mua, "delta2", 1).fit.slope == pytest.approx(0.5, abs=0.1)
    wrong = fit(fixed, "delta2", 1)
    assert wrong.lr_exponent == pytest.approx(0.0, abs=1e-12)  # a fixed η: exponent 0, up to log rounding
    assert wrong.fit.slope == pytest.approx(1.0, abs=0.1) and wrong.fit.verdict is Verdict.DRIFT
    # δ²₁ is one update of B times a fixed z: first order in η, so the fix is c = −k/1
    assert wrong.eta_order == pytest.approx(1.0, abs=0.02)
    assert wrong.correction == pytest.approx(-wrong.fit.slope, rel=0.02)


def test_fixed_learning_rate_drifts_where_the_rule_is_flat(mua, fixed):
    rule, wrong = fit(mua, "delta2", 3), fit(fixed, "delta2", 3)
    # the fixed rate's slope exceeds the rule's by p·(1/2), p ≈ 1 the measured order in η (between 1 and 2
    # because Z_A^2 = Z_A^0 + ΔZ_A is still crossing over at η·n ≈ 1–5)
    assert wrong.fit.verdict is Verdict.DRIFT
    assert wrong.fit.slope - rule.fit.slope == pytest.approx(0.5 * wrong.eta_order, abs=0.15)
    assert wrong.correction < -0.3  # points towards μA's η ∝ r^-1/2


def test_init_b_width_check_mua_flat_fixed_slope_one(constant_text):
    # Init[B], step 1: δ¹₁ = B₀·ΔA·x with ΔA = −η·sign(B₀ᵀdZ̄)·sign(x)ᵀ (sign descent), so ΔZ_A = −η·sign(·)·Σ_k|x_k|:
    # n coherent terms of size Θ(1) (RMSNorm output) → δ¹₁ ∝ η·n. μA's η ∝ 1/n: flat; a fixed η: slope 1.
    base = dict(model="tiny-llama", widths=(64, 128, 256), ranks=(4,), configs=("mua-B-1",), seeds=3, ref_lr=1e-2,
                data=constant_text, seq_len=8, batch_size=1, steps=1)
    right = coord_check(CoordCheckSettings(**base))
    wrong = coord_check(CoordCheckSettings(**base, lr_rule="fixed"))
    assert fit(right, "delta1", 1, "width", "mua-B-1").lr_exponent == pytest.approx(-1.0, abs=1e-9)
    assert fit(right, "delta1", 1, "width", "mua-B-1").fit.verdict is Verdict.FLAT
    w = fit(wrong, "delta1", 1, "width", "mua-B-1")
    assert w.fit.slope == pytest.approx(1.0, abs=0.1)  # tolerance: Σ_k|x_k|/n fluctuates by O(n^-1/2)
    assert w.corrected_exponent == pytest.approx(-1.0, abs=0.1)  # μA Cor. 4.6: η ∝ 1/n


def test_monitor_sizes_match_a_dense_reference(tiny_llama):
    """z_b, ΔA and ΔB from Gram identities against dense s·B·A·x on the monitor's own probe rows."""
    from lorascale.api import apply

    torch.manual_seed(0)
    model = apply(tiny_llama.model, rank=4, rule="mua", init="A", targets=["gate_proj", "down_proj"])
    batch = {"input_ids": torch.randint(0, 250, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    batch["labels"] = batch["input_ids"].clone()
    lr = 1e-3
    monitor = CoordMonitor(probe_batch=batch, refresh_every=10)
    b0 = {n: m.lora_B["default"].weight.detach().clone() for n, m in monitor_modules(model)}
    logs = train_steps(model, batch, lr, 1, monitor)[0]
    # Init[A], step 1: B moves from 0 by sign descent (|ΔB| = η up to ε/|g|), A does not move, and
    # the whole feature update is δ² (δ¹ = δ³ = 0)
    assert all(torch.count_nonzero(b) == 0 for b in b0.values())
    assert logs["fu/all/update_b"] == pytest.approx(lr, rel=1e-3)
    assert logs["fu/all/update_a"] == 0.0
    assert logs["fu/all/z_b"] == pytest.approx(logs["fu/all/delta2"], rel=1e-6)
    logs = train_steps(model, batch, lr, 1, monitor)[0]  # a second step (A moves now), fresh optimizer
    sq, entries = 0.0, 0
    with torch.no_grad():
        for name, m in monitor.modules.items():
            a, b, s = m.lora_A["default"].weight, m.lora_B["default"].weight, m.scaling["default"]
            zb = s * monitor.inputs[name].double() @ a.double().T @ b.double().T  # (N, d_out), dense
            sq += float((zb**2).sum())
            entries += zb.numel()
    assert logs["fu/all/z_b"] == pytest.approx(math.sqrt(sq / entries), rel=1e-5)  # float32 Grams vs dense


def monitor_modules(model):
    from lorascale.adapters import lora_modules

    return list(lora_modules(model))


def test_runs_reuse_the_loaded_model_without_leaking_state(constant_text):
    """Load once, re-wrap per run: a run's numbers do not depend on which runs came before it."""
    small = dict(model="tiny-llama@64", ranks=(2, 4), seeds=1, steps=2, data=constant_text, seq_len=8, batch_size=1)
    alone = coord_check(CoordCheckSettings(**small, configs=("mua-A-1",)))
    after = coord_check(CoordCheckSettings(**small, configs=("lora-alpha", "mua-B-1", "mua-A-1")))
    key = lambda m: (m.width, m.rank, m.seed, m.step, m.kind, m.term, m.eta_scale)  # noqa: E731
    a = {key(m): m.value for m in alone.measurements}
    b = {key(m): m.value for m in after.measurements if m.config == "mua-A-1"}
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)  # bitwise: the same runs
    assert after.runs == 3 * (2 * 1 + 1)  # per config: ranks × seeds, plus the η-order run


def test_learning_rates_follow_the_rules():
    s = CoordCheckSettings(model="x", ref_lr=1e-3, ref_rank=16)
    assert learning_rate(CoordConfig.MUA_A, 256, 64, s, 256) == pytest.approx(5e-4, rel=1e-12)  # (64/16)^-1/2 (rel: rounding only)
    assert learning_rate(CoordConfig.MUA_A_INV_R, 1024, 64, s, 256) == pytest.approx(5e-4, rel=1e-12)  # n^-1/2, no r (rel: rounding only)
    assert learning_rate(CoordConfig.MUA_B, 1024, 4, s, 256) == pytest.approx(2.5e-4, rel=1e-12)  # 1/n (rel: rounding only)
    assert learning_rate(CoordConfig.LORA_ALPHA, 1024, 4, s, 256) == s.lr_fft  # LoRA-α: η_FFT everywhere
    fixed = s.replace(lr_rule="fixed")
    assert learning_rate(CoordConfig.MUA_B, 1024, 4, fixed, 256) == 1e-3


def test_bad_settings_are_reported_together_by_field():
    with pytest.raises(ConfigErrors) as e:
        CoordCheckSettings(model=("smollm2-135m",), widths=(64, 64), ranks=(128, 0), steps=0, configs=("nope",),
                           eta_factor=1.0)
    fields = {err.field for err in e.value.errors}
    assert {"ranks", "steps", "configs", "eta_factor"} <= fields
    with pytest.raises(ConfigErrors) as e:
        CoordCheckSettings(model="smollm2-135m", widths=(64, 128), ranks=(4, 128, 4))
    assert {err.field for err in e.value.errors} == {"widths", "ranks"}
    assert len([x for x in e.value.errors if x.field == "ranks"]) == 2  # repeated, and larger than the smallest width
    with pytest.raises(ConfigErrors) as e:
        CoordCheckSettings(model="tiny-llama@64", ranks=(4,))
    assert [x.field for x in e.value.errors] == ["ranks"]  # one rank and one width: no slope


def test_ranks_beyond_a_models_width_are_refused_before_training(constant_text):
    with pytest.raises(ConfigErrors) as e:
        coord_check(CoordCheckSettings(model=("tiny-llama@64", "tiny-llama@128"), ranks=(4, 96), data=constant_text))
    assert [x.field for x in e.value.errors] == ["ranks"] and "tiny-llama@64" in str(e.value)


def test_contrastive_pairs_are_refused_before_any_model_loads(monkeypatch):
    import lorascale.models

    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(lorascale.models, "load_model", no_load)
    with pytest.raises(ConfigError) as e:  # a bare encoder has no loss of its own to measure
        coord_check(CoordCheckSettings(model=("tiny-bert@64", "tiny-bert@128"), ranks=(4, 8), data="dialogue-pairs"))
    assert e.value.field == "data" and "contrastive" in e.value.message


@pytest.mark.parametrize("rows, rank", [(16, 4), (4, 16)])  # both routes: r×r Grams and the N×d_out product
def test_update_size_metrics_against_dense(rows, rank):
    from types import SimpleNamespace

    from lorascale.diagnostics.coord_monitor import update_size_metrics

    gen = torch.Generator().manual_seed(0)
    f = lambda a, b, s: SimpleNamespace(A=a, B=b, scale=s)  # noqa: E731  (a Factors snapshot)
    a0, b0 = torch.randn(rank, 8, generator=gen, dtype=torch.float64), torch.randn(12, rank, generator=gen, dtype=torch.float64)
    a1, b1 = a0 + torch.randn(rank, 8, generator=gen, dtype=torch.float64), b0 + torch.randn(12, rank, generator=gen, dtype=torch.float64)
    x = torch.randn(rows, 8, generator=gen, dtype=torch.float64)
    out = update_size_metrics({"m": "q_proj"}, {"m": f(a0, b0, 0.5)}, {"m": f(a1, b1, 0.5)}, {"m": x @ a1.T})
    rms = lambda t: float(t.square().mean().sqrt())  # noqa: E731
    assert out["fu/q_proj/z_b"] == pytest.approx(rms(0.5 * x @ a1.T @ b1.T), rel=1e-12)  # float64: rounding only
    assert out["fu/q_proj/update_a"] == pytest.approx(rms(a1 - a0), rel=1e-12)
    assert out["fu/q_proj/update_b"] == pytest.approx(rms(b1 - b0), rel=1e-12)
    assert out["fu/all/z_b"] == out["fu/q_proj/z_b"]
