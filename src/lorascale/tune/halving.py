"""Successive halving over the members of one pack: pure rung arithmetic, and the callback that applies it.

Synchronous successive halving (Jamieson & Talwalkar 2016; the rungs of Li et al.'s ASHA): n candidates
start; at rung i (step ``rungs[i]``) only the best ⌈n_i/η⌉ by EMA(0.1) training loss go on, until the
survivors reach the full budget. In a pack every member reaches a rung at the same step, so all of a
rung's values are known before anyone is stopped. Optuna's ``SuccessiveHalvingPruner`` decides one
trial at a time as it reports (the first trials at a rung are promoted against nothing), which suits
asynchronous workers, not a pack; the decision here is the same rule taken with every value at hand.
A stopped member ends early with its evaluation, and its Optuna trial is recorded PRUNED.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..train.callbacks import Callback

__all__ = ["rung_steps", "survivors", "planned_member_steps", "planned_finalists", "pack_sizes", "HalvingCoordinator",
           "TrialRungs"]


def rung_steps(total_steps: int, n_candidates: int, reduction: int, first: float = 0.0) -> tuple[int, ...]:
    """Steps at which candidates are cut, before the full budget: ..., T/η², T/η, one fewer than ⌈log_η n⌉ so
    that 2 … η candidates run the whole budget (the seed check compares finalists; 3 candidates at η = 3 get
    no rung), none below 1 step and none before ``first``·T (to within the rounding to a step).
    The bound applies to the exact rung T/η^i before it is rounded to a step: at T = 100 the rung 100/3
    is step 33 and passes ``first`` = 1/3 (compared after rounding, 33 < 33.3 dropped it, and tune's
    6-rate η_FFT probe ran every rate to the end).

    ``first`` exists because on short budgets the early EMA losses rank by noise: in the MiniLM headline
    (150 steps) every candidate lay within one seed-std at step 17, and the cut there removed the
    low-η·α candidates that separate only later (docs/results/headline.md)."""
    if n_candidates <= 1 or reduction < 2:
        return ()
    levels = 0  # ⌈log_η n⌉ in integers (math.log(125, 5) is 3.0000000000000004: one cut too many)
    while reduction**levels < n_candidates:
        levels += 1
    n_cuts = max(0, levels - 1)
    exact = [total_steps / reduction**i for i in range(1, n_cuts + 1)]
    bound = first * total_steps * (1 - 1e-12)  # float slack: 100/3 against (1/3)·100
    steps = sorted({max(1, round(x)) for x in exact if x >= bound})
    return tuple(s for s in steps if s < total_steps)


def pack_sizes(n_candidates: int, max_members: int, unit: int = 1) -> list[int]:
    """Sizes of the packs that train ``n_candidates`` when at most ``max_members`` fit in one.

    Each pack halves its own members, so a split matches one group's schedule only when every pack but the
    last holds a multiple of ``unit`` = η^(number of rungs): such a pack keeps exactly 1/η of its members at
    each rung, and the sum of the ⌈·⌉ survivors equals the group's ⌈n/η^i⌉. So: full packs of the largest
    multiple of ``unit`` that fits, then the remainder (12 with room for 11, η = 3, one rung: 9 + 3, keeping
    3 + 1 = ⌈12/3⌉; an 11 + 1 split keeps 4 + 1). When not even ``unit`` members fit, no split can match the
    plan, and the packs are as few and as even as possible."""
    if n_candidates <= 0:
        return []
    k = max(1, max_members)
    if n_candidates <= k:
        return [n_candidates]
    if unit <= k:
        m = k // unit * unit
        return [m] * (n_candidates // m) + ([n_candidates % m] if n_candidates % m else [])
    n_packs = math.ceil(n_candidates / k)
    small, extra = divmod(n_candidates, n_packs)
    return [small + 1] * extra + [small] * (n_packs - extra)


def deal(n_candidates: int, sizes: list[int]) -> list[list[int]]:
    """Candidate indices 0 … n−1 dealt into packs of ``sizes``, each pack spread over the whole order.

    Each pack halves on its own, so a pack holding one slice of the α-path (all of its largest α, say) would
    carry its best ⌈k/η⌉ on even when they are worse than candidates another pack cuts. Dealt in turn (each
    index to the pack furthest behind its share), every pack samples the whole path, and its survivors stand
    for the group's. Deterministic; ``sum(sizes)`` must be ``n_candidates``."""
    assert sum(sizes) == n_candidates, (sizes, n_candidates)
    packs: list[list[int]] = [[] for _ in sizes]
    for i in range(n_candidates):
        # the pack whose filled share lags most behind where index i stands (ties: the earlier pack)
        j = min((j for j, k in enumerate(sizes) if len(packs[j]) < k),
                key=lambda j: ((len(packs[j]) + 1) / sizes[j], j))
        packs[j].append(i)
    return packs


def survivors(values: dict[str, float], reduction: int, entered: int | None = None) -> set[str]:
    """The ⌈n/η⌉ names with the lowest values (non-finite values never survive unless all are); ``entered``:
    n when more entered the rung than report at it (those that diverged on the way rank last, so they take
    cut places, not survivors' places)."""
    keep = min(len(values), max(1, math.ceil(max(entered or 0, len(values)) / reduction)))
    ranked = sorted(values, key=lambda k: (not math.isfinite(values[k]), values[k], k))
    return set(ranked[:keep])


def planned_member_steps(total_steps: int, n_candidates: int, reduction: int, first: float = 0.0) -> int:
    """Member-steps the schedule spends if nobody diverges: Σ_i n_i·(s_i − s_{i−1})."""
    alive, done, spent = n_candidates, 0, 0
    for s in (*rung_steps(total_steps, n_candidates, reduction, first), total_steps):
        spent += alive * (s - done)
        done = s
        alive = max(1, math.ceil(alive / reduction))
    return spent


def planned_finalists(total_steps: int, n_candidates: int, reduction: int, first: float = 0.0) -> int:
    """Candidates that run the whole budget if nobody diverges."""
    alive = n_candidates
    for _ in rung_steps(total_steps, n_candidates, reduction, first):
        alive = max(1, math.ceil(alive / reduction))
    return alive


class HalvingCoordinator:
    """Shared by one callback per member: collects each rung's EMA losses, then stops the worst members.

    ``on_cut(name, step, value, kept)`` is told every rung decision (to record it in Optuna).
    """

    def __init__(self, names: Sequence[str], rungs: Sequence[int], reduction: int,
                 on_cut: Callable[[str, int, float, bool], None] | None = None):
        self.alive = set(names)
        self.entered = len(self.alive)  # members alive after the last rung: the next rung keeps ⌈entered/η⌉
        self.rungs, self.reduction, self.on_cut = set(rungs), reduction, on_cut
        self.pending: dict[int, dict[str, float]] = {}
        self.contexts: dict[str, object] = {}
        self.cut_at: dict[str, int] = {}

    def callback(self, name: str) -> Callback:
        return _MemberRung(self, name)

    def report(self, name: str, ctx, step: int, value: float) -> None:
        self.contexts[name] = ctx
        if step in self.rungs and name in self.alive:
            self.pending.setdefault(step, {})[name] = value
            self._decide_ready()

    def ended(self, name: str) -> None:
        """A member stopped for another reason (diverged, finished): the rungs no longer wait for it."""
        self.alive.discard(name)
        for values in self.pending.values():
            values.pop(name, None)
        self._decide_ready()

    def _decide_ready(self) -> None:
        for step in sorted(self.pending):
            values = self.pending[step]
            if not values or not set(values) >= self.alive:
                continue  # some running member has not reached this rung yet
            kept = survivors(values, self.reduction, self.entered)
            for n, v in values.items():
                if self.on_cut is not None:
                    self.on_cut(n, step, v, n in kept)
                if n not in kept:
                    self.contexts[n].stop_reason = f"pruned by successive halving at step {step}"
                    self.cut_at[n] = step
                    self.alive.discard(n)
            self.entered = len(kept)
            del self.pending[step]


class _MemberRung(Callback):
    def __init__(self, coordinator: HalvingCoordinator, name: str):
        self.c, self.name = coordinator, name

    def on_step_end(self, ctx, logs: dict) -> None:
        self.c.report(self.name, ctx, ctx.step, ctx.ema_loss)

    def on_train_end(self, ctx, summary: dict) -> None:
        self.c.ended(self.name)


class TrialRungs(Callback):
    """Successive halving for a candidate that trains alone (DoRA, PiSSA, OLoRA cannot be members):
    its EMA loss is reported to its Optuna trial at each rung, and the study's ``SuccessiveHalvingPruner``
    decides against the candidates that reached that rung before it (the asynchronous rule; the first
    candidates at a rung go on against nothing, so this spends more than a pack's synchronous halving)."""

    def __init__(self, trial, rungs: Sequence[int], reduction: int):
        self.trial = trial
        # the pruner (min_resource = the first rung, reduction_factor = η) decides rung i at resource
        # rungs[0]·η^i, while the rungs are the rounded T/η^k: at T = 150 those are steps 17 and 50, the
        # pruner's 17 and 51. Each rung is reported at the resource the pruner decides it at.
        ordered = sorted(rungs)
        self.resource = {step: ordered[0] * reduction**i for i, step in enumerate(ordered)}
        self.cut_at: int | None = None

    def on_step_end(self, ctx, logs: dict) -> None:
        if ctx.step not in self.resource or not math.isfinite(ctx.ema_loss):
            return
        self.trial.report(ctx.ema_loss, self.resource[ctx.step])
        if self.trial.should_prune():
            ctx.stop_reason = f"pruned by successive halving at step {ctx.step}"
            self.cut_at = ctx.step
