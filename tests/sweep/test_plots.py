"""Figures from a stored study: the computed numbers are checked; the PNGs are smoke-tested."""

import math

import pytest
import sweep_fakes as F

from lorascale.sweep import plots
from lorascale.sweep.fit import PathFit, PointStat, fit
from lorascale.sweep.storage import SweepStore

EXACT = 1e-9  # exact parabolas in the synthetic objective
ARITH = 1e-12  # hand-derived limits: a few float additions and one multiplication
INF = math.inf


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
    assert info.fft.label == "FFT"
    # means 1 … 1.2 with zero bars, 1.45 above the 90th percentile of this configuration's means and clipped;
    # 5% of the span (0.2) either side
    assert info.ylim == pytest.approx((0.99, 1.21), abs=EXACT)
    assert info.xlabel == "log2(η)" and "EMA" in info.ylabel


def test_ylim_covers_every_error_bar_with_a_margin():
    # bars 1 ± 0.5 and 2 ± 0.25: from 0.5 to 2.25, span 1.75, 5% margin 0.0875 each side
    assert plots.ylim_covering([1.0, 2.0], [0.5, 0.25]) == pytest.approx((0.4125, 2.3375), abs=ARITH)
    # a diverged point (+inf) is left out; an unknown (None) or non-finite bar counts as 0
    assert plots.ylim_covering([1.0, INF, 2.0], [None, 3.0, INF]) == pytest.approx((0.95, 2.05), abs=ARITH)
    assert plots.ylim_covering([INF, INF], [None, None]) is None
    # one point without a bar: the span is 0, so the margin is 5% of |lo|
    assert plots.ylim_covering([2.0], [0.0]) == pytest.approx((1.9, 2.1), abs=ARITH)
    assert plots.ylim_covering([0.0], [0.0]) == pytest.approx((-0.05, 0.05), abs=ARITH)


def test_ylim_clips_the_worst_means_and_keeps_the_bars_of_the_rest():
    # means 1 … 5: their 90th percentile at position 3.6 is 4 + 0.6·(5 − 4) = 4.6, so the mean 5 leaves the
    # plot; the highest bar top left is 4: from 1 to 4, span 3, margin 0.15
    means, errs = [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 1.0]
    assert plots.ylim_covering(means, errs) == pytest.approx((0.85, 4.15), abs=ARITH)
    # a point that stays keeps its whole bar: 4 ± 1.5 reaches 5.5 (a quantile of the bar tops cut it at 5.2)
    assert plots.ylim_covering(means, [0.0, 0.0, 0.0, 1.5, 1.0]) == pytest.approx((0.775, 5.725), abs=ARITH)
    assert plots.ylim_covering(means, errs, clip=None) == pytest.approx((0.75, 6.25), abs=ARITH)  # span 5
    assert plots.ylim_covering(means[:4], errs[:4]) == pytest.approx((0.85, 4.15), abs=ARITH)  # < 5 points: no clip
    # a clipped mean's bar sets neither edge: 5 ± 4.5 (one seed blew up) would pull the bottom to 0.5 and
    # flatten the valley; the range stays 1 … 4 (the SmolLM2 study's r = 64 at 2^−7: 5.14 ± 1.96 over 2 seeds)
    assert plots.ylim_covering(means, [0.0, 0.0, 0.0, 0.0, 4.5]) == pytest.approx((0.85, 4.15), abs=ARITH)


def test_lr_sweep_ylim_keeps_the_error_bars_on_the_axis(stored):
    """A noisy sweep: the range follows mean ± std, not the means alone."""
    _, rep = stored
    cfg = config(rep, "A1")
    points = (PointStat(-10.0, 1.0, 0.2, 2, 0), PointStat(-9.0, 1.1, 0.5, 2, 0), PointStat(-8.0, INF, None, 2, 1))
    cfg = cfg._replace(ranks=(cfg.ranks[0]._replace(points=points),))
    info = plots.lr_sweep_info(rep, cfg)
    # bars 0.8–1.2 and 0.6–1.6: span 1.0, margin 0.05 (the means alone would give 0.995–1.105)
    assert info.ylim == pytest.approx((0.55, 1.65), abs=ARITH)
    assert info.diverged_y == pytest.approx(1.65, abs=ARITH)  # × on the top edge for a loss
    s = info.series[0]
    assert s.x == (-10.0, -9.0) and s.y == (1.0, 1.1) and s.yerr == (0.2, 0.5) and s.diverged_x == (-8.0,)


def test_an_fft_optimum_below_the_axis_is_named_in_its_label(stored):
    """The range follows the LoRA curves; FFT's best, when clipped away, still reaches the reader."""
    _, rep = stored
    cfg, fft = config(rep, "A1"), config(rep, "FFT")
    lo, hi = plots.lr_sweep_info(rep, cfg).ylim
    inside = plots.lr_sweep_info(rep, cfg, fft)
    assert lo <= fft.ranks[0].best_value <= hi and inside.fft.label == "FFT"  # the synthetic FFT optimum is on the axis
    below = fft.ranks[0]._replace(best_value=lo - 0.1)  # a best run under the axis, its curve partly on it
    info = plots.lr_sweep_info(rep, cfg, fft._replace(ranks=(below,)))
    assert info.fft.label == f"FFT (best {lo - 0.1:.3g}, off scale)" and info.ylim == (lo, hi)
    # an FFT point on the axis whose error bar reaches down widens the range past that best: then it is on the
    # plot, and the label must not call it off scale (it did, judged on the range before widening)
    wide = below._replace(points=(below.points[0]._replace(mean=lo + 0.01, std=0.5),) + tuple(below.points[1:]))
    widened = plots.lr_sweep_info(rep, cfg, fft._replace(ranks=(wide,)))
    assert widened.ylim[0] < lo - 0.1 and widened.fft.label == "FFT"


def test_lr_sweep_marks_divergence_on_the_worse_edge_for_accuracy(stored):
    _, rep = stored
    acc = rep._replace(metric="val_accuracy", higher_is_better=True)  # scores are −accuracy
    cfg = config(rep, "A1")
    points = (PointStat(-10.0, -0.8, 0.1, 2, 0), PointStat(-9.0, -0.7, 0.0, 2, 0), PointStat(-8.0, INF, None, 2, 1))
    info = plots.lr_sweep_info(acc, cfg._replace(ranks=(cfg.ranks[0]._replace(points=points),)))
    # scores from −0.9 to −0.7, margin 0.01: accuracy 0.69–0.91, and diverged at 0.69, the bottom
    assert info.ylim == pytest.approx((0.69, 0.91), abs=ARITH)
    assert info.diverged_y == pytest.approx(0.69, abs=ARITH)
    assert info.series[0].y == pytest.approx((0.8, 0.7), abs=ARITH) and info.ylabel == "validation accuracy"


def test_paths_ylim_covers_both_paths_error_bars(stored):
    _, rep = stored
    eta = PathFit("A1", 16, "eta", (PointStat(0.0, 1.2, 0.1, 2, 0), PointStat(1.0, 1.0, 0.3, 2, 0),
                                    PointStat(2.0, INF, None, 2, 2)), 1.0, 1.0, 0.3, False, 1.0)
    alpha = PathFit("A1", 16, "alpha", (PointStat(0.0, 1.1, None, 1, 0), PointStat(1.0, 0.9, 0.05, 2, 0)),
                    1.0, 0.9, 0.05, True, 0.9)
    (info,) = plots.paths_info(rep._replace(paths=(eta, alpha)))
    # bottoms 1.1, 0.7, 1.1, 0.85 and tops 1.3, 1.3, 1.1, 0.95: 0.7–1.3, margin 0.03
    assert info.ylim == pytest.approx((0.67, 1.33), abs=ARITH) and info.diverged_y == pytest.approx(1.33, abs=ARITH)
    assert info.eta.diverged_x == (2.0,) and info.eta.yerr == (0.1, 0.3) and info.alpha.yerr == (0.0, 0.05)


def test_the_paths_star_sits_at_the_refined_multiplier_on_the_drawn_curve():
    """η-path scores 3, 1.5, 1.2, 2 at log2 m = −1 … 2: the parabola through (0, 1.5), (1, 1.2), (2, 2) has its
    vertex at log2 m* = 0.5 + 0.3/1.1 = 17/22, value 1.5 − 0.3·(17/22) + 0.55·(17/22)·(−5/22). The star sits at
    that x on the drawn curve, between the means 1.5 and 1.2: 1.5 − 0.3·(17/22). At the vertex's own value it
    floated below every run; at the best run's 1.2 it sat off the curve."""
    from lorascale.sweep.records import Outcome, PointCoords, Record

    recs = [Record(PointCoords(key=f"k{k}", config="P", rank=8, log2_lr=-13.0 + k, seed=0, paths=(("eta", 2.0**k),)),
                   Outcome("complete", v)) for k, v in zip(range(-1, 3), (3, 1.5, 1.2, 2))]
    rep = fit(recs, n_boot=0)
    (p,) = rep.paths
    vertex = 1.5 - 0.3 * 17 / 22 + 0.55 * (17 / 22) * (-5 / 22)
    assert (p.log2_m_star, p.vertex_value, p.best_value) == pytest.approx((17 / 22, vertex, 1.2), abs=EXACT)
    (info,) = plots.paths_info(rep)
    assert (info.eta.opt_x, info.eta.opt_y) == pytest.approx((17 / 22, 1.5 - 0.3 * 17 / 22), abs=EXACT)
    assert info.alpha is None


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
    assert law.fit_r[0] == 4 and law.fit_r[-1] == pytest.approx(64, rel=1e-9)  # float rounding only
    assert "p = 0.75" in law.label_free


def test_curves_info_takes_each_ranks_optimum(stored):
    recs, rep = stored
    info = plots.curves_info(recs, config(rep, "A1"))
    labels = [c[0] for c in info.curves]
    assert labels == [f"r = {r}, η = 2^{x}, seed {s}" for r, x in ((4, -9), (16, -10), (64, -11)) for s in (0, 1)]
    steps, values = info.curves[0][1:]
    assert steps == (1, 2, 3, 4, 5) and values[-1] == pytest.approx(1.0 + 1 / 5, abs=EXACT)  # the fake's curve


def test_a_row_of_panels_gives_each_rank_one_colour(stored):
    """μA Fig. 2 puts the configurations side by side; a rank must read the same in every panel. Ranks 4 and
    64 alone (B1 at two ranks) would take 0 and 0.9 on their own, but beside A1's 4/16/64 they keep the row's."""
    _, rep = stored
    a1 = plots.lr_sweep_info(rep, config(rep, "A1"), config(rep, "FFT"))
    b1 = plots.lr_sweep_info(rep, config(rep, "B1"), config(rep, "FFT"))
    b1 = b1._replace(series=tuple(s for s in b1.series if s.label != "r = 16"))
    assert plots.rank_shades([a1, b1]) == {"r = 4": 0.0, "r = 16": 0.45, "r = 64": 0.9}
    assert plots.rank_shades([b1]) == {"r = 4": 0.0, "r = 64": 0.9}


def test_pngs_render(stored, tmp_path):
    recs, rep = stored
    files = [
        plots.render_lr_sweep(plots.lr_sweep_info(rep, config(rep, "B1"), config(rep, "FFT")), tmp_path / "lr.png"),
        plots.render_paths(plots.paths_info(rep), tmp_path / "paths.png"),
        plots.render_alpha_law(plots.alpha_law_info(rep, rep.alpha_laws[0]), tmp_path / "law.png"),
        plots.render_curves(plots.curves_info(recs, config(rep, "A1")), tmp_path / "curves.png"),
        plots.render_lr_panels(tuple(plots.lr_sweep_info(rep, config(rep, c), config(rep, "FFT")) for c in ("A1", "B1")),
                               tmp_path / "panels.png"),
    ]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 10_000
