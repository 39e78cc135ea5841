"""The search figure's data: every candidate, the rungs, and the seed check's runs marked with the answer."""

from types import SimpleNamespace

import pytest

from lorascale.tune.plots import render_search, search_info
from lorascale.tune.search import Candidate, StageResult


def _c(n, lr, a, steps, loss, seed=0, cut=None):
    return Candidate(n, lr, a, "complete", steps, cut, loss, seed=seed,
                     curve=[[s, 2.0 - s * (2.0 - loss) / steps] for s in range(1, steps + 1)])


def test_search_info_draws_candidates_rungs_and_the_seed_check(tmp_path):
    search = StageResult("search", 30, 3, [_c(0, 1e-3, 1.0, 10, 1.9, cut=10), _c(1, 1e-3, 0.25, 30, 1.5),
                                           _c(2, 1e-3, 0.63, 30, 1.4)], 70, 90, best=1, rungs=[10])
    confirm = StageResult("confirm", 30, 3, [_c(0, 1e-3, 0.63, 30, 1.7, seed=1), _c(1, 1e-3, 0.25, 30, 1.45, seed=1)],
                          60, 60, best=1)
    result = SimpleNamespace(search=search, confirm=confirm, config=SimpleNamespace(model="m", adapter=SimpleNamespace(rank=4)))
    info = search_info(result)
    assert [line.chosen for line in info.lines] == [False, True, False] and info.rungs == (10,)
    assert info.lines[0].pruned_at == 10 and len(info.lines[1].steps) == 30
    # the seed check's runs: the chosen configuration's (α = 0.25) is the one drawn as the answer
    assert [line.chosen for line in info.checks] == [False, True] and "seed 1" in info.checks[1].label
    assert "+ 60 checking" in info.title
    assert render_search(info, tmp_path / "s.png").stat().st_size > 10_000


def test_the_y_range_follows_the_candidates_that_passed_the_first_rung():
    # a blown-up candidate (EMA 20 when cut) and the finalists, from 2 − 0.5/30 at step 1 (α = 0.25's line) down
    # to 1.4: the range is 1.4 … 1.9833 with a 5% margin, not 1.4 … 20, where the finalists would be a flat line
    blown = Candidate(0, 1e-3, 10.0, "complete", 10, 10, 20.0, seed=0, curve=[[1, 2.0], [5, 8.0], [10, 20.0]])
    search = StageResult("search", 30, 3, [blown, _c(1, 1e-3, 0.25, 30, 1.5), _c(2, 1e-3, 0.63, 30, 1.4)], 70, 90,
                         best=1, rungs=[10])
    result = SimpleNamespace(search=search, confirm=None, config=SimpleNamespace(model="m", adapter=SimpleNamespace(rank=4)))
    lo, hi = search_info(result).ylim
    check = Candidate(1, 1e-3, 0.25, "complete", 30, None, 1.2, seed=1, curve=[[s, 1.9 - s * 0.7 / 30] for s in range(1, 31)])
    checked = result.__class__(**{**vars(result), "confirm": StageResult("confirm", 30, 3, [check], 30, 30, best=0)})
    top = 2.0 - 0.5 / 30
    # a seed check that dips lower (to 1.9 − 0.7 = 1.2; it starts below the top) stays on the axis
    check_pad = 0.05 * (top - 1.2)
    assert search_info(checked).ylim == pytest.approx((1.2 - check_pad, top + check_pad), abs=1e-12)  # rounding only
    pad = 0.05 * (top - 1.4)
    assert (lo, hi) == pytest.approx((1.4 - pad, top + pad), abs=1e-12)  # float arithmetic of a few terms
