"""Figures from a stored study: the computed numbers are checked; the PNGs are smoke-tested."""

import math

import pytest
import sweep_fakes as F

from lorascale.sweep import plots
from lorascale.sweep.fit import fit
from lorascale.sweep.storage import SweepStore

EXACT = 1e-9  # exact parabolas in the synthetic objective


@pytest.fixture(scope="module")
def stored(synthetic_study):
    url, name, _ = synthetic_study
    recs = SweepStore.open(url, name).records()
    return recs, fit(recs, "ema", n_boot=100)


def config(rep, label):
    return next(c for c in rep.configs if c.label == label)


def test_lr_sweep_info_matches_mua_figure(stored):
    recs, rep = stored
    info = plots.lr_sweep_info(rep, config(rep, "A1"), config(rep, "FFT"))
    assert [s.label for s in info.series] == ["r = 4", "r = 16", "r = 64"]
    r64 = info.series[2]
    assert r64.opt_x == pytest.approx(-11.0, abs=EXACT) and r64.opt_y == pytest.approx(1.0, abs=EXACT)
    assert r64.diverged_x == (-8.0, -7.0)  # x − x* ≥ 3 diverges in the synthetic objective
    assert r64.x == (-12.0, -11.0, -10.0, -9.0)
    assert r64.y == pytest.approx((1.05, 1.0, 1.05, 1.2), abs=EXACT)  # 1 + 0.05·(x + 11)²
    assert r64.yerr == (0.0,) * 4  # the two seeds agree exactly
    assert info.fft_opt_x == pytest.approx(F.X_FFT, abs=EXACT)  # the dashed red line
    assert info.fft.label == "FFT" and info.ylim[0] < 1.0 < info.ylim[1]
    assert info.ylim[1] < 1.25  # clipped at the 90th percentile of this configuration's curves, not at 1.45
    assert info.xlabel == "log2(η)" and "EMA" in info.ylabel


def test_paths_and_alpha_law_info(stored):
    _, rep = stored
    infos = plots.paths_info(rep)
    assert [i.rank for i in infos] == [4, 16, 64]
    i16 = infos[1]
    assert i16.eta.opt_x == pytest.approx(1.0, abs=EXACT)  # m* = 2 on the η-path
    assert i16.alpha.opt_x == pytest.approx(math.log2(F.C_TRUE * 16**F.P_TRUE / 16), abs=EXACT)
    assert i16.alpha.opt_y < i16.eta.opt_y  # this synthetic α-path reaches lower loss (LoRA-α Finding II)
    law = plots.alpha_law_info(rep, rep.alpha_laws[0])
    assert law.ranks == (4, 16, 64)
    assert law.alpha_star == pytest.approx(tuple(F.C_TRUE * r**F.P_TRUE for r in (4, 16, 64)), rel=EXACT)
    assert law.fit_free[0] == pytest.approx(F.C_TRUE * 4**F.P_TRUE, rel=EXACT)  # the fitted line through r = 4
    assert law.fit_r[0] == 4 and law.fit_r[-1] == pytest.approx(64)
    assert "p = 0.75" in law.label_free


def test_curves_info_takes_each_ranks_optimum(stored):
    recs, rep = stored
    info = plots.curves_info(recs, config(rep, "A1"))
    labels = [c[0] for c in info.curves]
    assert labels == [f"r = {r}, η = 2^{x}, seed {s}" for r, x in ((4, -9), (16, -10), (64, -11)) for s in (0, 1)]
    steps, values = info.curves[0][1:]
    assert steps == (1, 2, 3, 4, 5) and values[-1] == pytest.approx(1.0 + 1 / 5, abs=EXACT)  # the fake's curve


def test_pngs_render(stored, tmp_path):
    recs, rep = stored
    files = [
        plots.render_lr_sweep(plots.lr_sweep_info(rep, config(rep, "B1"), config(rep, "FFT")), tmp_path / "lr.png"),
        plots.render_paths(plots.paths_info(rep), tmp_path / "paths.png"),
        plots.render_alpha_law(plots.alpha_law_info(rep, rep.alpha_laws[0]), tmp_path / "law.png"),
        plots.render_curves(plots.curves_info(recs, config(rep, "A1")), tmp_path / "curves.png"),
    ]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 10_000
