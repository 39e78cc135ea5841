"""A run's traces (diagnostics.plots): the grouped numbers by value, the PNG smoke-tested."""

import math

import pytest

from lorascale.diagnostics.plots import TraceInfo, render_traces, trace_info, trace_summary

INF = math.inf
RECORDS = [
    {"step": 1, "loss": 3.0, "sd/all/ratio": 2.0, "sd/q_proj/ratio": 1.0, "sd/all/signal_align": -0.5, "fu/all/delta1": 5.0},
    {"step": 2, "sd/all/ratio": 4.0, "sd/q_proj/ratio": INF, "sd/all/signal_align": 0.5, "sd/all/drift_norm": 0.0,
     "sd/all/note": "n/a"},
    {"sd/all/ratio": 9.0},  # no step: not a training record
    {"step": 3, "sd/all/ratio": 6.0},
]


def test_trace_info_groups_by_metric_and_layer_type():
    info = trace_info(RECORDS, "sd")
    assert info.series == {
        "ratio": {"all": ((1, 2, 3), (2.0, 4.0, 6.0)), "q_proj": ((1, 2), (1.0, INF))},
        "signal_align": {"all": ((1, 2), (-0.5, 0.5))},
        "drift_norm": {"all": ((2,), (0.0,))},
    }
    # ratio is positive wherever finite; signal_align is an alignment (linear); drift_norm touches 0
    assert info.log_y == {"ratio"}
    fu = trace_info(RECORDS, "fu")
    assert fu.series == {"delta1": {"all": ((1,), (5.0,))}} and fu.log_y == {"delta1"}
    assert trace_info(RECORDS, "xx") == TraceInfo("xx", {}, frozenset())


def test_trace_summary_over_finite_values():
    s = trace_summary(trace_info(RECORDS, "sd"))
    assert s["all"]["ratio"] == {"mean": 4.0, "median": 4.0, "last": 6.0, "n": 3}
    assert s["all"]["signal_align"] == {"mean": 0.0, "median": 0.0, "last": 0.5, "n": 2}
    assert s["q_proj"] == {"ratio": {"mean": 1.0, "median": 1.0, "last": 1.0, "n": 1}}  # the inf is dropped
    assert set(s) == {"all", "q_proj"}


@pytest.mark.parametrize("prefix", ["sd", "xx"])  # a full grid and an empty one
def test_render_traces_writes_a_png(tmp_path, prefix):
    out = render_traces(trace_info(RECORDS, prefix), tmp_path / "d" / f"{prefix}.png", "title")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 0
