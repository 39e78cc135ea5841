"""The repro figures (repro.plots): info tuples by value from hand-made results, PNGs smoke-tested."""

import math
from types import SimpleNamespace as NS

import pytest

from lorascale.repro import plots

NAN, INF = math.nan, math.inf
EXACT = 1e-12  # means of two or three hand-picked floats


def run(path, mult, losses=((1.0,),), drift=((1.0,),), ratio=((1.0,),), mean=1.0, sd=0.0):
    return NS(path=path, multiplier=mult, losses=[list(x) for x in losses], drift=[list(x) for x in drift],
              ratio=[list(x) for x in ratio], mean_final=mean, std_final=sd)


CONFIGS = [
    run("base", 1.0, losses=((1.0, 0.5), (3.0, 0.7)), drift=((0.1,), (0.3,)), ratio=((NAN,), (2.0,))),
    run("eta", 8.0),  # not a paper multiplier: left out
    run("eta", 16.0, losses=((1.0, 2.0, 3.0), (3.0, INF)), drift=((1.0, 2.0), (3.0,))),
    run("eta", 32.0, ratio=((NAN,), (INF,))),
    run("alpha", 64.0), run("alpha", 32.0), run("alpha", 128.0),
]


def test_seed_mean_ignores_non_finite_values_and_ended_runs():
    assert plots.seed_mean([[1.0, 2.0, 3.0], [3.0, INF]]) == (2.0, 2.0, 3.0)
    got = plots.seed_mean([[NAN, 1.0], [NAN, 2.0]])
    assert math.isnan(got[0]) and got[1] == 1.5
    assert plots.seed_mean([]) == ()


def test_fig2_info_takes_seed_means_and_shades_by_multiplier():
    info = plots.fig2_info(CONFIGS, eta=(16, 32), alpha=(32, 64, 128))
    assert [c.label for c in info.curves] == ["base", "η×16", "η×32", "α×64", "α×32", "α×128"]
    base, e16, e32 = info.curves[:3]
    assert base.loss == pytest.approx((2.0, 0.6), abs=EXACT) and base.drift == pytest.approx((0.2,), abs=EXACT)
    assert base.ratio == (2.0,)  # seed 0's NaN ratio (undefined) is skipped
    assert e16.loss == (2.0, 2.0, 3.0) and e16.drift == (2.0, 2.0)  # seed 1 diverged after step 0
    assert math.isnan(e32.ratio[0])  # no seed finite at that step
    # each path's colormap from 0 to 0.85 in multiplier order, whatever the order of the runs
    assert [c.shade for c in info.curves] == [None, 0.0, 0.85, pytest.approx(0.425, abs=EXACT), 0.0, 0.85]


def test_sweep_info_splits_finished_and_diverged_points():
    configs = [run("eta", 2.0, mean=1.0, sd=0.1), run("eta", 1.0, mean=2.0, sd=0.2), run("eta", 4.0, mean=INF),
               run("alpha", 1.0, mean=1.5), run("base", 1.0, mean=3.0)]
    info = plots.sweep_info(configs, base_loss=3.0)
    assert info.eta == plots.PathPoints("η-scaling (± sd)", (1.0, 2.0), (2.0, 1.0), (0.2, 0.1), (4.0,))
    assert info.alpha == plots.PathPoints("α-scaling (± sd)", (1.0,), (1.5,), (0.0,), ())
    assert info.base_loss == 3.0 and info.diverged_y == 4.0  # twice the highest finite path mean, 2.0
    empty = plots.sweep_info([], base_loss=INF)
    assert empty == plots.SweepInfo(None, None, None, 2.0)


def spectra_result(lora):
    return NS(spectra={"weights": [3.0, 1.0, -0.5, 0.0], "signal": [2.0, 0.0], "lora": lora},
              trace_pairs=lambda: [{"rank": 1, "predicted": 2.0, "measured": 1.8}, {"rank": 2, "predicted": 1.0, "measured": 1.1}],
              purification=lambda: [{"alpha": a, "signal_lambda_max": a * a, "drift_abs_lambda_min": a, "lora_lambda_max": a * a}
                                    for a in (1.0, 4.0)],
              growth=lambda: {"signal_lambda_max": 2.0, "drift_abs_lambda_min": 1.0, "lora_lambda_max": 2.0})


LORA = {4.0: [-2.0, 0.0, 4.0], 1.0: [-1.0, 0.5, 2.0], 16.0: [-0.5, 1.0], 64.0: [5.0]}


def test_fig8_info_normalises_the_shown_spectra_and_keeps_the_positive_part():
    info = plots.fig8_info(spectra_result(LORA))
    assert info.weights == (3.0, 1.0) and info.signal == (2.0,)  # log axis: positive eigenvalues only
    # default: the smallest, middle (sorted index 2 of 4) and largest α; λ / λ_max against the quantile
    assert info.lora_spectra == ((1.0, (0.0, 0.5, 1.0), (-0.5, 0.25, 1.0)), (16.0, (0.0, 1.0), (-0.5, 1.0)),
                                 (64.0, (0.0,), (1.0,)))
    assert plots.fig8_info(spectra_result(LORA), show_alphas={4.0}).lora_spectra == ((4.0, (0.0, 0.5, 1.0), (-0.5, 0.0, 1.0)),)
    neg = plots.fig8_info(spectra_result({2.0: [-3.0, -1.0]}))
    assert neg.lora_spectra == ((2.0, (0.0, 1.0), (-3.0, -1.0)),)  # no positive λ_max to divide by
    assert info.exponents["signal_lambda_max"] == 2.0 and [g["alpha"] for g in info.growth] == [1.0, 4.0]
    assert [p["rank"] for p in info.trace_pairs] == [1, 2]


def test_renderers_write_pngs(tmp_path):
    configs = CONFIGS + [run("eta", 64.0, mean=INF)]
    files = [
        plots.render_fig2(plots.fig2_info(configs, eta=(16, 32, 64), alpha=(32, 64, 128)), tmp_path / "fig2.png"),
        plots.render_sweep(plots.sweep_info(configs, base_loss=1.0), tmp_path / "sweep.png"),
        plots.render_fig8(plots.fig8_info(spectra_result(LORA)), tmp_path / "fig8.png"),
    ]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 0
