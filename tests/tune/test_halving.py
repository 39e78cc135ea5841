"""Successive halving's rung arithmetic by hand, and the coordinator on fake member contexts."""

import math
from types import SimpleNamespace

import pytest

from lorascale.tune.halving import (HalvingCoordinator, deal, pack_sizes, planned_finalists, planned_member_steps,
                                   rung_steps, survivors)


@pytest.mark.parametrize("steps, n, eta, rungs", [
    (150, 27, 3, (17, 50)),  # 27 → 9 at 150/9 ≈ 17, 9 → 3 at 50, 3 run to 150
    (150, 18, 3, (17, 50)),  # ⌈log3 18⌉ − 1 = 2 cuts
    (9, 6, 3, (3,)),  # ⌈log3 6⌉ − 1 = 1 cut
    (100, 8, 2, (25, 50)),  # 8 → 4 → 2, and the last two run the whole budget
    (100, 1, 3, ()),  # nothing to cut
    (2, 27, 3, (1,)),  # rungs below one step collapse
    (1000, 125, 5, (40, 200)),  # 125 = 5³: two cuts (125 → 25 → 5); log(125, 5) rounds above 3 in floats
    (1000, 126, 5, (8, 40, 200)),
])
def test_rung_steps(steps, n, eta, rungs):
    assert rung_steps(steps, n, eta) == rungs


@pytest.mark.parametrize("steps, n, eta, first, rungs", [
    (150, 18, 3, 1 / 3, (50,)),  # 17 < 150/3 is dropped; 50 = 150/3 stays (the bound is inclusive)
    (150, 27, 3, 0.34, ()),  # 50 < 51: no rung left, everyone runs the whole budget
    (100, 8, 2, 0.3, (50,)),  # 25 dropped
    (9, 6, 3, 1 / 3, (3,)),
    (100, 6, 3, 1 / 3, (33,)),  # the exact rung 100/3 meets the bound, then rounds to step 33
    (100, 27, 3, 1 / 3, (33,)),  # 100/9 ≈ 11.1 < 33.3: dropped
    (100, 6, 3, 0.335, ()),  # 33.3 < 33.5: dropped, though 34 would round past it
])
def test_no_rung_before_the_first(steps, n, eta, first, rungs):
    assert rung_steps(steps, n, eta, first) == rungs


def test_planned_member_steps_by_hand():
    assert planned_member_steps(150, 27, 3) == 27 * 17 + 9 * (50 - 17) + 3 * (150 - 50)  # 459 + 297 + 300
    assert planned_member_steps(9, 6, 3) == 6 * 3 + 2 * 6
    assert planned_member_steps(100, 1, 3) == 100
    # no rung before T/3: 12 start, ⌈12/3⌉ = 4 pass the only rung (50), not the ⌈12/9⌉ = 2 of the full schedule
    assert planned_member_steps(150, 12, 3, 1 / 3) == 12 * 50 + 4 * 100
    assert planned_finalists(150, 12, 3, 1 / 3) == 4 and planned_finalists(150, 12, 3) == 2
    assert planned_finalists(150, 27, 3, 0.34) == 27  # no rung: every candidate is a finalist
    # tune's η_FFT probe at 100 steps: 6 rates to step 33, the best ⌈6/3⌉ = 2 to 100
    assert planned_member_steps(100, 6, 3, 1 / 3) == 6 * 33 + 2 * 67 == 332


def test_survivors_keep_the_best_third_and_never_a_nan():
    v = {"a": 3.0, "b": 1.0, "c": 2.0, "d": math.nan, "e": 0.5, "f": 9.0, "g": math.inf}
    assert survivors(v, 3) == {"e", "b", "c"}  # ⌈7/3⌉ = 3 lowest; NaN and inf last
    assert survivors({"a": math.nan, "b": math.nan}, 2) == {"a"}  # someone always goes on (ties by name)


def test_coordinator_waits_for_every_running_member_then_cuts():
    names = ["m0", "m1", "m2", "m3", "m4", "m5"]
    cut_log = []
    c = HalvingCoordinator(names, rungs=[3], reduction=3, on_cut=lambda n, s, v, kept: cut_log.append((n, kept)))
    ctx = {n: SimpleNamespace(stop_reason=None) for n in names}
    values = {"m0": 5.0, "m1": 1.0, "m2": 4.0, "m3": 2.0, "m4": 6.0, "m5": 3.0}
    for n in names[:5]:
        c.report(n, ctx[n], 3, values[n])
    assert all(x.stop_reason is None for x in ctx.values()) and cut_log == []  # m5 has not reported yet
    c.ended("m5")  # m5 diverges instead: the rung no longer waits for it
    assert {n for n in names if ctx[n].stop_reason} == {"m0", "m2", "m4"}  # ⌈5/3⌉ = 2 kept: m1, m3
    assert sorted(n for n, kept in cut_log if kept) == ["m1", "m3"] and c.cut_at == {"m0": 3, "m2": 3, "m4": 3}
    c.report("m1", ctx["m1"], 4, 0.1)  # not a rung: nothing happens
    assert ctx["m1"].stop_reason is None


def test_members_that_diverged_before_a_rung_take_cut_places_not_survivors_places():
    """9 entered the rung, so ⌈9/3⌉ = 3 go on, as synchronous halving plans: the 3 that diverged on the way
    rank last. Counting only the 6 that reported would keep 2 and cut the 3rd best, inside the planned top 3."""
    names = [f"m{i}" for i in range(9)]
    c = HalvingCoordinator(names, rungs=[3, 6], reduction=3)
    ctx = {n: SimpleNamespace(stop_reason=None) for n in names}
    for n in names[6:]:
        c.ended(n)  # diverged before step 3
    for i, n in enumerate(names[:6]):
        c.report(n, ctx[n], 3, float(i))
    assert {n for n in names[:6] if ctx[n].stop_reason is None} == {"m0", "m1", "m2"}
    c.ended("m2")  # diverges before the next rung: of the 3 that entered it, ⌈3/3⌉ = 1 goes on
    c.report("m0", ctx["m0"], 6, 1.0)
    c.report("m1", ctx["m1"], 6, 0.5)
    assert ctx["m1"].stop_reason is None and ctx["m0"].stop_reason == "pruned by successive halving at step 6"


def test_dealt_packs_each_span_the_whole_candidate_order():
    """Each pack halves on its own: dealt in turn, each samples the whole α-path instead of one slice."""
    assert deal(12, [9, 3]) == [[0, 1, 2, 4, 5, 6, 8, 9, 10], [3, 7, 11]]
    assert deal(18, [6, 6, 6]) == [[0, 3, 6, 9, 12, 15], [1, 4, 7, 10, 13, 16], [2, 5, 8, 11, 14, 17]]
    assert deal(5, [5]) == [[0, 1, 2, 3, 4]]
    for n, sizes in ((12, [9, 3]), (27, [9, 9, 9]), (7, [3, 2, 2]), (14, [12, 2])):
        packs = deal(n, sizes)
        assert [len(p) for p in packs] == sizes and sorted(i for p in packs for i in p) == list(range(n))
        for p in packs:  # no pack's members crowd one end: each reaches into the last third of the order
            assert max(p) >= n * 2 / 3 - 1


@pytest.mark.parametrize("n, k, unit, sizes", [
    (12, 11, 3, [9, 3]),  # the SmolLM2 α-path rerun: 11 fit; 9 + 3 keep 3 + 1 = ⌈12/3⌉ (11 + 1 kept 4 + 1)
    (8, 7, 3, [6, 2]),  # 2 + 1 = ⌈8/3⌉ = 3 (4 + 4 would keep 2 + 2)
    (14, 13, 3, [12, 2]),  # 4 + 1 = ⌈14/3⌉
    (27, 10, 9, [9, 9, 9]),  # two rungs: 9 → 3 → 1 per pack, 27 → 9 → 3 in all
    (12, 32, 3, [12]),  # everyone fits: one pack
    (12, 2, 3, [2] * 6),  # not even η fit: as few and as even as possible (the plan cannot be met)
    (7, 3, 9, [3, 2, 2]),
    (6, 1, 1, [1] * 6),  # one at a time
    (0, 4, 3, []),
])
def test_pack_sizes_halve_as_one_group_would(n, k, unit, sizes):
    assert pack_sizes(n, k, unit) == sizes and sum(sizes) == n and max(sizes, default=0) <= k


@pytest.mark.parametrize("n, k", [(12, 11), (8, 7), (14, 13), (20, 7), (6, 4)])
def test_packs_of_a_multiple_of_eta_keep_the_planned_finalists(n, k):
    # one rung at T/3 (T = 9, first = 1/3): the packs' survivors add up to the group's ⌈n/3⌉, so the
    # member-steps are the plan's
    [rung] = rung_steps(9, n, 3, 1 / 3)  # every pack is cut at the group's rung, step 3
    sizes = pack_sizes(n, k, 3)
    assert sum(math.ceil(s / 3) for s in sizes) == math.ceil(n / 3) == planned_finalists(9, n, 3, 1 / 3)
    assert sum(s * rung + math.ceil(s / 3) * (9 - rung) for s in sizes) == planned_member_steps(9, n, 3, 1 / 3)


def test_a_run_alone_is_decided_at_every_rung_by_optunas_pruner():
    """Rungs are the rounded T/η^k (T = 150, 18 candidates, no first_rung: steps 17 and 50); Optuna's
    SuccessiveHalvingPruner (min_resource 17, η = 3) decides at resources 17 and 51. Reported at its own
    step 50, the second rung was never decided, so nobody was cut there."""
    import optuna

    from lorascale.tune.halving import TrialRungs

    rungs = rung_steps(150, 18, 3)
    assert rungs == (17, 50)
    study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner(
        min_resource=rungs[0], reduction_factor=3, min_early_stopping_rate=0))

    def run(losses):  # EMA loss at steps 17 and 50
        cb = TrialRungs(study.ask(), rungs, 3)
        for step, loss in zip(rungs, losses):
            ctx = SimpleNamespace(step=step, ema_loss=loss, stop_reason=None)
            cb.on_step_end(ctx, {})
            if ctx.stop_reason:
                break
        return cb

    first = run([1.0, 1.0])  # alone at both rungs: goes on against nothing
    assert first.cut_at is None and sorted(first.trial.storage.get_trial(first.trial._trial_id).intermediate_values) == [17, 51]
    second = run([0.9, 2.0])  # best at the first rung, worse than the first at the second: cut there
    assert second.cut_at == 50
