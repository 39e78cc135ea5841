"""repro/timing.py: the training time a benchmark's runs recorded, read back with them."""

from types import SimpleNamespace

import pytest

from lorascale.repro.timing import run_timing, timing_text, wall_seconds

ABSENT = object()


def _run(wall_time, pack=ABSENT):
    summary = {"wall_time": wall_time}
    if pack is not ABSENT:
        summary["pack"] = pack
    return SimpleNamespace(summary=summary)


def test_a_pack_counts_once_at_its_last_member_and_unknown_runs_apart():
    # a pack of three (each member counts from the pack's start; one diverged and ended at 4 s, the others
    # at 12 s) took 12 s, not 28; a second pack 6 s; a run alone its own 5 s
    runs = [_run(12.0, "p1"), _run(4.0, "p1"), _run(12.0, "p1"), _run(6.0, "p2"), _run(5.0, None)]
    assert wall_seconds(runs) == (pytest.approx(12.0 + 6.0 + 5.0, rel=1e-12), 0)
    # a summary written before packs were named may be a member's: not counted, counted as untimed; an
    # unfinished run (None) is neither
    assert wall_seconds([_run(12.0), _run(5.0, None), None]) == (pytest.approx(5.0, rel=1e-12), 1)
    # for a report: unfinished runs left out, and the figures in words
    t = run_timing([_run(12.0), _run(5.4, None), None])
    assert t == {"runs": 2, "run_seconds": 5, "runs_untimed": 1} and timing_text(t) == "1 of 2 runs, 5 s"
    assert timing_text(run_timing([_run(3.0)])).startswith("1 runs, time not known")
