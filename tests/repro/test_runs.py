"""repro/runs.py: a benchmark's runs read back, and the training time they recorded."""

from types import SimpleNamespace

import pytest

from lorascale.repro.runs import wall_seconds


def _run(wall_time, pack_members=None):
    summary = {"wall_time": wall_time}
    if pack_members is not None:
        summary["pack_members"] = pack_members
    return SimpleNamespace(summary=summary)


def test_a_packs_time_is_shared_by_its_members_and_unknown_sizes_are_counted_apart():
    # two members of one 12 s pack (each records the pack's wall time) cost 12 s, not 24; a run alone its own 5 s
    assert wall_seconds([_run(12.0, 2), _run(12.0, 2), _run(5.0, 1)]) == (pytest.approx(17.0, rel=1e-12), 0)
    # a summary written before pack_members was kept may be a member: not counted, but counted as untimed;
    # an unfinished run (None) is neither
    assert wall_seconds([_run(12.0), _run(5.0, 1), None]) == (pytest.approx(5.0, rel=1e-12), 1)
