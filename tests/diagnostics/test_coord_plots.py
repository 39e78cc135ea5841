"""The coordinate check's figures: the plotted numbers by value, the PNG smoke-tested."""

import math

import pytest

from lorascale.diagnostics.coord_fit import Measurement, fit_axis
from lorascale.diagnostics.coord_plots import (CoordLine, CoordPanel, coord_plot_info, render_coord_check,
                                               terms_plot_info)

M = Measurement


def measurements():
    out = []
    for r, (a, b) in {4: (1.0, 4.0), 16: (2.0, 8.0)}.items():  # two seeds: geometric means 2 and 4
        for seed, v in ((0, a), (1, b)):
            out += [M("A", 64, r, seed, 1, "all", "z_b", v, 1e-3), M("A", 64, r, seed, 2, "all", "z_b", 10 * v, 1e-3),
                    M("A", 64, r, seed, 2, "all", "delta1", 0.0, 1e-3), M("A", 64, r, seed, 2, "all", "delta2", v, 1e-3),
                    M("A", 64, r, seed, 1, "q_proj", "z_b", 99.0, 1e-3)]  # another layer type: not plotted
    out.append(M("A", 64, 16, 0, 1, "all", "z_b", 1e6, 2e-3, eta_scale=2.0))  # the η-order run: not plotted
    for w, v in ((64, 1.0), (128, 1.0)):  # a width axis at rank 4 for config B
        out += [M("B", w, 4, 0, 1, "all", "z_b", v, 1e-3)]
    return out


def test_coord_plot_info_one_line_per_step_geometric_mean_and_seed_range():
    ms = measurements()
    fits = fit_axis(ms, "A", "rank", 64, ["z_b", "delta1", "delta2"]) + fit_axis(ms, "B", "width", 4, ["z_b"])
    info = coord_plot_info(ms, fits, "z_b")
    assert info.title == "feature update ‖s·B·A·x‖"
    assert [(p.config, p.axis, p.at) for p in info.panels] == [("A", "rank", 64), ("B", "width", 4)]
    t1, t2 = info.panels[0].lines
    # rel=1e-9: float rounding only
    assert t1 == CoordLine("t=1", (4, 16), pytest.approx((2.0, 4.0), rel=1e-9), (1.0, 2.0), (4.0, 8.0), pytest.approx(0.5, rel=1e-9))
    # rel=1e-9: float rounding only
    assert t2.label == "t=2" and t2.mean == pytest.approx((20.0, 40.0), rel=1e-9) and t2.slope == pytest.approx(0.5, rel=1e-9)
    assert info.panels[1] == CoordPanel("B", "width", 4, (CoordLine("t=1", (64, 128), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0),
                                                                    pytest.approx(0.0, abs=1e-12)),))


def test_terms_plot_info_one_line_per_term_and_zero_terms_drop_their_points():
    ms = measurements()
    info = terms_plot_info(ms, fit_axis(ms, "A", "rank", 64, ["delta1", "delta2", "delta3"]), step=2)
    (panel,) = info.panels
    d1, d2 = panel.lines  # δ³ was never measured
    assert d1.label == "δ¹" and d1.sizes == () and d1.slope is None  # exactly 0 (Init[A]'s δ¹): nothing on log axes
    # rel=1e-9: float rounding only
    assert d2.label == "δ²" and d2.mean == pytest.approx((2.0, 4.0), rel=1e-9) and math.isclose(d2.slope, 0.5)


def test_render_writes_a_png(tmp_path):
    ms = measurements()
    fits = fit_axis(ms, "A", "rank", 64, ["z_b", "delta1"]) + fit_axis(ms, "B", "width", 4, ["z_b"])
    for info, name in ((coord_plot_info(ms, fits), "a.png"), (terms_plot_info(ms, fits, 2), "b.png"),
                       (coord_plot_info([], []), "empty.png")):
        out = render_coord_check(info, tmp_path / "f" / name, {"A": "Init[A] α=1"})
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 0
