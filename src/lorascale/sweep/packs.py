"""A sweep worker's packs: up to K claimed points trained as members of one frozen base.

A worker claims its points one by one, each atomically (:meth:`SweepStore.claim`), so no point is
ever held by two workers; it then groups what it holds by :func:`~lorascale.train.members.pack_key`
(same model, data, task, budget and batch shape) and trains each group as one pack. Points that fit
no group (full finetuning, DoRA/PiSSA/OLoRA, a lone budget) run on their own. Each claimed trial keeps its own
heartbeat from its claim until its result is stored (:class:`~.liveness.ClaimBeats`), so a worker killed
with ``kill -9`` leaves every one of its points to the stale check, which queues them again, and a
point waiting for the worker's next group is never taken for dead; each result is committed as its
member ends (a member that diverged at step 3 stays diverged when the pack is interrupted later).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

from ..interrupts import describe, shielded
from ..vocabulary import RunStatus
from .liveness import HEARTBEAT_S, ClaimBeats
from .records import Outcome
from .storage import Claim, SweepStore

__all__ = ["claim_pack", "group_claims", "run_pack", "train_pack_objective", "sequential_pack_objective",
           "auto_members", "auto_members_for", "MAX_AUTO_MEMBERS", "claim_config", "store_outcome"]

log = logging.getLogger(__name__)

MAX_AUTO_MEMBERS = 16  # past this a pack's stacked batch stops paying on one device (bench/bench_members.py)


def claim_pack(store: SweepStore, k: int) -> list[Claim]:
    """Claim up to ``k`` queued points (fewer when the queue runs out)."""
    claims: list[Claim] = []
    try:
        while len(claims) < k:
            c = store.claim()
            if c is None:
                break
            claims.append(c)
    except KeyboardInterrupt as e:  # stopped while claiming: the points held so far go back to the queue
        for c in claims:
            store.release(c, e)
        raise
    return claims


def claim_config(store: SweepStore, claim: Claim):
    """The claim's TrainConfig with its own run directory for this attempt (train never overwrites a run)."""
    from ..train.config import TrainConfig

    cfg = TrainConfig.from_flat(claim.train_config)
    # the storage's own tag: two storages holding a study of the same name never share run directories
    tag = hashlib.sha1(store.url.encode()).hexdigest()[:6]
    root = Path(cfg.out_dir) if cfg.out_dir else Path("runs") / f"sweep-{store.name}-{tag}"
    return cfg.replace(out_dir=str(root / f"{claim.key}-t{claim.number}"))


def group_claims(store: SweepStore, claims: Sequence[Claim]) -> list[list[tuple[Claim, object]]]:
    """Claims with their configs, grouped by pack key in claim order; configs no pack can hold (full
    finetuning, DoRA, PiSSA, OLoRA: :func:`~lorascale.train.members.solo_reason`) alone, and so is a
    stored config that no longer validates (config None: its run records it failed)."""
    from ..train.members import pack_key, solo_reason

    groups: dict[tuple, list] = {}
    for c in claims:
        try:
            cfg = claim_config(store, c)
        except Exception:  # alone: run_claim builds it again inside its try and records the error
            cfg = None
        key = ("alone", c.number) if cfg is None or solo_reason(cfg) is not None else pack_key(cfg)
        groups.setdefault(key, []).append((c, cfg))
    return list(groups.values())


def train_pack_objective(cfgs: Sequence, on_end: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """The real pack objective: :func:`lorascale.train.members.train_members`, reporting each member as it ends."""
    from ..train.members import train_members

    hook = None if on_end is None else (lambda i, result: on_end(i, Outcome.from_result(result)))
    return [Outcome.from_result(r) for r in train_members(list(cfgs), progress=False, on_member_end=hook)]


def sequential_pack_objective(objective: Callable) -> Callable:
    """A pack objective that runs a single-run objective on each config in turn (fakes, full finetuning)."""

    def run(cfgs: Sequence, on_end: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
        outs = []
        for i, cfg in enumerate(cfgs):
            outs.append(_as_outcome(objective(cfg)))
            if on_end is not None:
                on_end(i, outs[-1])
        return outs

    return run


def run_pack(store: SweepStore, group: list[tuple[Claim, object]], pack_objective: Callable,
             heartbeat_s: float = HEARTBEAT_S, beats: ClaimBeats | None = None) -> list[Outcome]:
    """Train one group and record each member's trial as the member ends (``pack_objective(cfgs, on_end)``
    calls ``on_end(i, outcome)`` then); an interrupt records the members still running as interrupted, and a
    crash of the pack records them as failed. ``beats`` keeps the claims alive (the worker's, which beat
    from the claim on); without it the pack beats its own."""
    claims = [c for c, _ in group]
    recorded: dict[int, Outcome] = {}

    def record(i: int, out) -> None:
        if i not in recorded:
            out = _as_outcome(out)
            store_outcome(store, claims[i], out)
            recorded[i] = out  # only once stored: a failed write leaves it to the records after the pack
            beats.stop(claims[i])

    def on_end(i: int, out) -> None:  # called from inside the pack's training loop
        try:
            record(i, out)
        except Exception as e:  # a storage error must not stop the other members: retried after the pack
            log.warning("trial %d's result could not be stored as its member ended (%s); retried when the pack ends",
                        claims[i].number, e)

    with ExitStack() as own:
        if beats is None:
            beats = own.enter_context(ClaimBeats(store, heartbeat_s)).start(claims)
        t0 = time.perf_counter()
        try:
            outs = list(_call_pack_objective(pack_objective, [cfg for _, cfg in group], on_end))
            if len(outs) != len(claims):
                raise RuntimeError(f"the pack objective returned {len(outs)} outcomes for {len(claims)} configs")
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: every member recorded, then the worker stops
            with shielded():
                for i in range(len(claims)):
                    record(i, Outcome(RunStatus.INTERRUPTED, math.nan, wall_time=time.perf_counter() - t0,
                                      message=f"interrupted by {describe(e)}"))
            raise
        except Exception as e:  # a crash must not end the sweep: stored as failed, retried by the next sweep
            failed = Outcome(RunStatus.FAILED, math.nan, wall_time=time.perf_counter() - t0, message=f"{type(e).__name__}: {e}")
            outs = [failed] * len(claims)  # the members that ended before it keep their own results
        with shielded():  # every member recorded before a stop signal lands: none left RUNNING with its result lost
            for i, out in enumerate(outs):
                record(i, out)
    return [recorded[i] for i in range(len(claims))]


def _call_pack_objective(pack_objective: Callable, cfgs: list, on_end: Callable) -> list:
    """``pack_objective(cfgs, on_end)``; an objective written before ``on_end`` (one parameter) is called with the
    configs alone, and its members are stored when it returns."""
    import inspect

    try:
        inspect.signature(pack_objective).bind(cfgs, on_end)
    except TypeError:
        return pack_objective(cfgs)
    except ValueError:  # no signature to read (a builtin): the current protocol
        pass
    return pack_objective(cfgs, on_end)


def store_outcome(store: SweepStore, claim: Claim, out: Outcome) -> None:
    """Record ``out`` on the claim's trial; a trial the stale check failed meanwhile keeps its re-queue."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        store.finish(claim, out)
    except UpdateFinishedTrialError:  # presumed dead and failed meanwhile (re-queued): this attempt's result is dropped
        log.warning("trial %d was presumed dead and re-queued; this attempt's result (%s) is dropped", claim.number,
                    out.status.value)


def auto_members(cfg, cap: int = MAX_AUTO_MEMBERS) -> int:
    """K for ``--members auto``: as many members as the device's free memory holds (at most ``cap``).

    Memory per member from :func:`~lorascale.train.members.estimate_for`; free memory is CUDA's free
    bytes on a GPU, else the machine's available memory (Linux ``MemAvailable``).
    """
    import torch

    from ..adapters import plan_lora
    from ..data import load_examples
    from ..models import load_model
    from ..train.members.memory import estimate_for, members_that_fit
    from ..train.members.pack import packable

    if not packable(cfg):
        return 1
    loaded = load_model(cfg.model, quiet=True)
    plan = plan_lora(loaded.model, cfg.adapter, loaded.default_targets)
    n_trainable = sum(ly.rank * (ly.d_in + ly.d_out) for ly in plan.layers)  # A: r×d_in, B: d_out×r per layer
    use_cuda = torch.cuda.is_available()
    # the data decides an unset task: a contrastive pair set doubles the rows (query and positive)
    task = cfg.task if cfg.task is not None else load_examples(cfg.data).kind.task
    est = estimate_for(loaded.model, n_trainable, cfg.replace(task=task), bf16=use_cuda and cfg.precision != "fp32")
    budget = torch.cuda.mem_get_info()[0] if use_cuda else _available_memory()
    return max(1, members_that_fit(budget, est, max_members=cap))


def auto_members_for(cfgs: Sequence, cap: int = MAX_AUTO_MEMBERS) -> int:
    """K for a sweep's points: :func:`auto_members` of the packable point of the largest rank (a pack mixes
    ranks, and a member's factors and optimizer state grow with its rank); 1 when no point can be a member."""
    from ..train.members.pack import packable

    members = [c for c in cfgs if packable(c)]
    return auto_members(max(members, key=lambda c: c.adapter.rank), cap) if members else 1


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _as_outcome(x) -> Outcome:
    return x if isinstance(x, Outcome) else Outcome.from_result(x)
