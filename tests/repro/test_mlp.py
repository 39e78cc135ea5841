"""LoRA-α App. E's setup (data, init, training) and the two experiments at a tiny size."""

import math

import pytest
import torch

from lorascale.errors import ConfigErrors
from lorascale.repro.dynamics import run_dynamics
from lorascale.repro.mlp import MLPSetup, build_model, make_data, train
from lorascale.repro.report import dynamics_findings, spectra_findings
from lorascale.repro.spectra import run_spectra

TINY = MLPSetup(d=8, n=20, depth=3, rank=2, steps=4)


def test_data_target_has_singular_values_one_over_i():
    x, y = make_data(TINY, 0, torch.float64)
    w_true = torch.linalg.lstsq(x, y).solution.T  # n = 20 > d = 8: Y = X·W_trueᵀ pins W_true down
    sv = torch.linalg.svdvals(w_true)
    torch.testing.assert_close(sv, 1.0 / torch.arange(1, 9, dtype=torch.float64), rtol=1e-10, atol=0)


def test_model_init_follows_app_e():
    model = build_model(MLPSetup(d=64, n=10, depth=2, rank=16), alpha=8.0, seed=0)
    layers = [m for n, m in model.named_modules() if n.endswith("layers.0")]
    m = layers[0]
    assert float(m.scaling["default"]) == 8.0 / 16  # W = W₀ + (α/r)·B·A
    assert torch.count_nonzero(m.lora_B["default"].weight) == 0
    # std of 16·64 = 1024 N(0, 1/64) entries: sampling error ≈ 1/√(2·1024) ≈ 2.2%, so 10% is ~4.5σ
    assert float(m.lora_A["default"].weight.detach().std()) == pytest.approx(1 / 8, rel=0.1)
    assert float(m.base_layer.weight.detach().std()) == pytest.approx(1 / 8, rel=0.1)


def test_training_lowers_the_loss_and_divergence_is_recorded_not_raised():
    x, y = make_data(TINY, 0)
    good = train(build_model(TINY, 4.0, 0), x, y, lr=1e-2, steps=20)
    assert not good.diverged and good.final_loss < good.records[0]["loss"]
    # lr = 1e6 sends the loss from 0.5 to ~1e34 in one step, where SiLU saturates and it stays:
    # the loop's rule (> 3× the early level for 5 steps, the level ≤ 3× the first loss) ends the run as diverged
    bad = train(build_model(TINY, 1.0, 0), x, y, lr=1e6, steps=20)
    assert bad.diverged and bad.final_loss == math.inf and len(bad.records) < 20


def test_setup_validation_reports_every_bad_field():
    with pytest.raises(ConfigErrors) as e:
        MLPSetup(d=0, steps=-1, lr0=float("nan"))
    assert {err.field for err in e.value.errors} == {"d", "steps", "lr0"}  # library errors name fields, not flags
    with pytest.raises(ConfigErrors, match="exceeds the width"):
        MLPSetup(d=4, rank=16)


def test_dynamics_records_divergence_and_picks_the_best_finite_multiplier():
    setup = MLPSetup(d=8, n=20, depth=3, rank=2, steps=8)  # lr 1e7 blows up to a non-finite loss within these steps
    res = run_dynamics(setup, seeds=[0, 1], eta_grid=(4, 1e7), alpha_grid=(4, 16), extend=False, progress=False)
    blown = res.get("eta", 1e7)
    assert blown.diverged == 2 and blown.mean_final == math.inf  # lr = 1e3: recorded, not a crash
    assert res.best("eta").multiplier == 4
    assert all(len(c.final_losses) == 2 for c in res.configs)
    assert res.path("base")[0].mean_final > res.best("alpha").mean_final  # scaling α up speeds up fitting
    findings = dynamics_findings(res)
    # the paper's multipliers (η×128, α×256, ...) are off this grid, so only the optimum claim is judged
    # best η×4 0.431 ± 0.089 vs best α×16 0.422 ± 0.084 over 2 seeds (seeded, one thread): the gap is noise
    assert [f["verdict"] for f in findings] == ["within seed noise"]
    assert "best η×4" in findings[0]["measured"]


def test_dynamics_extends_a_path_while_its_optimum_sits_on_the_edge():
    res = run_dynamics(TINY, seeds=[0], eta_grid=(1, 2), alpha_grid=(1,), extend=True, progress=False)
    mults = [c.multiplier for c in res.path("eta")]
    assert mults[:2] == [1, 2] and len(mults) > 2  # 4 steps from B = 0 gain from every doubling of η at first
    best = res.best("eta")
    assert best is not res.path("eta")[-1] or len(mults) == 2 + 4  # stopped past the optimum, or at the cap


def test_dynamics_extends_downward_when_its_optimum_sits_on_the_lower_edge():
    # η×1e6 and ×2e6 blow the 4-step fit up; the lower edge is the better one, so the path halves past it
    res = run_dynamics(TINY, seeds=[0], eta_grid=(1e6, 2e6), alpha_grid=(1,), extend=True, progress=False)
    mults = [c.multiplier for c in res.path("eta")]
    assert mults[0] < 1e6 and mults[-1] == 2e6  # grew below the grid, not above it
    assert all(b == 2 * a for a, b in zip(mults, mults[1:]))  # by halving: one octave a step
    findings = dynamics_findings(res)
    best = res.best("eta")
    assert (best is res.path("eta")[0]) == ("optimum on the grid's edge for η" in findings[-1]["measured"])


def test_spectra_tiny_traces_growth_and_purification():
    setup = MLPSetup(d=6, n=20, depth=3, rank=2, steps=4)
    res = run_spectra(setup, seeds=[0], ranks=(1, 2, 4), alphas=(1, 4, 16), a_draws=64, progress=False)
    for p in res.trace_pairs():
        # Prop. 3 is an expectation; 64 draws of A on a 6-wide layer leave ≈5% scatter, 20% is 4σ
        assert p["ratio"] == pytest.approx(1.0, rel=0.2), p
    g = res.growth()
    # H_signal carries s² = (α/r)² at fixed weights, so λ_max grows as α² exactly at init; 4 small steps (which
    # depend on α) bend it only slightly: measured 1.9991 (seeded, one thread), abs 0.01 is 10× that bend
    assert g["signal_lambda_max"] == pytest.approx(2.0, abs=0.01)
    pur = res.purification()
    # α×16 purifies: λ_max[H_LoRA]/λ_max[H_signal] measured 4.20, 1.49, 1.033 at α×1, ×4, ×16 (the drift's excess
    # falling ~7× per 4× of α); 5% holds ×16's excess and fails ×4's
    assert pur[-1]["lora_over_signal_lambda_max"] == pytest.approx(1.0, rel=0.05)
    assert pur[0]["lora_negative_mass"] > pur[-1]["lora_negative_mass"]
    # seeded and single-threaded, so the verdicts are fixed; the trace one "differs" because 64 draws on a
    # 6-wide layer scatter more than the report's agreement band, though within the 20% asserted above
    assert [f["verdict"] for f in spectra_findings(res)] == ["agrees", "differs", "premise not met", "agrees", "agrees"]
