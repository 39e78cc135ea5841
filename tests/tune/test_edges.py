"""tune's answer at the edge of what it searched: which field to widen, and to what (hand-built searches)."""

import pytest

from lorascale.errors import ConfigWarning
from lorascale.tune.edges import WIDEN, probe_edges, search_edges
from lorascale.tune.request import FFT_PROBE_LOG2_LR

PROBE = [2.0**x for x in FFT_PROBE_LOG2_LR]  # 2^-18, 2^-16, …, 2^-8
BOX = (0.1, 10.0)  # alpha_min, alpha_max
PATH = [(2.44e-4, a) for a in (1.0, 0.1, 0.251, 0.631, 3.98, 10.0)]  # the α-path at η_FFT, prior first


@pytest.mark.parametrize("lr, side", [(2.0**-18, "lowest"), (2.0**-8, "highest")])
def test_a_probe_at_either_end_of_its_grid_asks_for_lr_fft(lr, side):
    [w] = probe_edges(lr, PROBE)
    assert isinstance(w, ConfigWarning) and w.field == "lr_fft" and side in w.message and "`lr_fft`" in w.fix


def test_a_probe_inside_its_grid_says_nothing():
    assert probe_edges(2.0**-12, PROBE) == []
    assert probe_edges(2.0**-16, PROBE) == []  # one point in from the end is an optimum with both neighbours


def test_alpha_at_the_bottom_of_the_path_moves_alpha_min_two_octaves_down():
    [w] = search_edges((2.44e-4, 0.1), PATH, lr_fft=2.44e-4, lr_span=0.0, alpha_box=BOX)
    assert w.field == "alpha_min"
    # 0.1 / 4 = 0.025; the second tune keeps this run's η_FFT, so it spends nothing on the probe again
    assert w.fix == "re-run with `alpha_min` 0.025, `lr_fft` 0.000244 (this run's) and a new `tune_dir`"
    # the probe's η_FFT is a power of 2: the fix gives it exactly (3 digits, 0.000977, was a different rate)
    [exact] = search_edges((2.0**-10, 0.1), PATH, lr_fft=2.0**-10, lr_span=0.0, alpha_box=BOX)
    assert "`lr_fft` 0.0009765625 (this run's)" in exact.fix
    assert WIDEN == 4.0


def test_alpha_at_the_top_moves_alpha_max_up_and_an_inner_alpha_is_no_edge():
    [w] = search_edges((2.44e-4, 10.0), PATH, lr_fft=2.44e-4, lr_span=0.0, alpha_box=BOX)
    assert w.field == "alpha_max" and "`alpha_max` 40" in w.fix
    for a in (1.0, 0.251, 3.98):
        assert search_edges((2.44e-4, a), PATH, lr_fft=2.44e-4, lr_span=0.0, alpha_box=BOX) == []


def test_a_path_cut_short_by_compute_asks_for_candidates_not_a_wider_box():
    short = [(2.44e-4, 1.0), (2.44e-4, 0.1)]  # a compute cap left 2 candidates: the prior and alpha_min
    [w] = search_edges((2.44e-4, 1.0), short, lr_fft=2.44e-4, lr_span=0.0, alpha_box=BOX)
    assert w.field == "candidates" and "the largest of the 2 searched, inside [0.1, 10]" in w.message
    assert w.fix.startswith("raise `candidates` or `compute`")
    [low] = search_edges((2.44e-4, 0.1), short, lr_fft=2.44e-4, lr_span=0.0, alpha_box=BOX)
    assert low.field == "alpha_min"  # 0.1 is the box's own edge


def test_eta_edges_count_only_when_eta_was_searched():
    sobol = [(1e-3, 1.0), (2.6e-4, 0.3), (3.9e-3, 2.0), (7e-4, 5.0)]  # lr_span 2: η_FFT·2^±2
    [w] = search_edges((3.9e-3, 2.0), sobol, lr_fft=1e-3, lr_span=2.0, alpha_box=BOX)
    assert w.field == "lr_span" and "highest" in w.message and "`lr_span` 4" in w.fix
    # Sobol points never land on the box's edge, so more candidates only get closer to it: the smallest α
    # searched moves the box (alpha_min two octaves down), more candidates being the other way
    both = search_edges((2.6e-4, 0.3), sobol, lr_fft=1e-3, lr_span=2.0, alpha_box=BOX)  # the smallest α and the lowest η
    assert [w.field for w in both] == ["alpha_min", "lr_span"]
    assert both[0].fix.startswith("re-run with `alpha_min` 0.025 (or more `candidates`)") and "Sobol" in both[0].message
    # on the α-path every candidate shares η_FFT: no η edge to report
    assert [w.field for w in search_edges((2.44e-4, 0.1), PATH, 2.44e-4, 0.0, BOX)] == ["alpha_min"]


def test_an_eta_edge_at_the_widest_span_moves_lr_fft_instead():
    """lr_span 9 + 2 = 11 is past the request's cap of 10, which TuneRequest would refuse: the fix widens to the
    cap; at the cap already it centres the search on the chosen rate instead."""
    from lorascale.tune.request import LR_SPAN_MAX, TuneRequest

    wide = [(1e-3, 2.0), (2.0**-10 * 1e-3, 0.3), (2.0**10 * 1e-3, 1.0)]  # α 1: inside the α searched
    assert LR_SPAN_MAX == 10.0 and any(getattr(m, "le", None) == LR_SPAN_MAX for m in TuneRequest.model_fields["lr_span"].metadata)
    [w9] = search_edges((2.0**10 * 1e-3, 1.0), wide, lr_fft=1e-3, lr_span=9.0, alpha_box=BOX)
    assert w9.field == "lr_span" and "`lr_span` 10," in w9.fix
    [w] = search_edges((2.0**10 * 1e-3, 1.0), wide, lr_fft=1e-3, lr_span=10.0, alpha_box=BOX)
    assert w.field == "lr_span" and w.fix.startswith(f"re-run with `lr_fft` {2.0**10 * 1e-3!r}")
