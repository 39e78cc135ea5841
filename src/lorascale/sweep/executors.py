"""Running a sweep: enqueue every point once, then workers claim and run them.

Optuna storage holds the queue and the results; it is the only thing workers share, so local
processes, Ray tasks on other machines and a second ``lorascale sweep`` started elsewhere can work
on one study at once without running a point twice (see :mod:`lorascale.sweep.storage`).

* ``local``: N worker processes (spawned, so torch starts clean), each with cores // N threads; how
  they stop on Ctrl-C, SIGTERM or the death of their parent: :mod:`.processes`.
* ``members`` K > 1: a worker claims up to K points and trains the compatible ones as members of one
  frozen base (:mod:`.packs`); results equal separate runs (:mod:`lorascale.train.members`).
* ``ray``: one Ray task per pack (per queued trial when K = 1), each with its own resources (``num_gpus=1``…), on an
  existing cluster (``address``) or a local one. Ray only schedules; the task claims its trial from
  the same storage, which must therefore be reachable from every node (a database URL, or a file
  on a shared filesystem).

Resume: finished points (COMPLETE, diverged included) are never re-run; failed and interrupted
trials, and RUNNING trials whose worker is gone, are enqueued again. Each result is committed when
its run ends, so a worker killed mid-trial loses only that trial.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from typing import Callable, NamedTuple

from ..errors import ConfigError, StorageMissing
from ..interrupts import describe
from ..vocabulary import RunStatus
from .backends import local_path
from .liveness import GRACE_S, HEARTBEAT_S, ClaimBeats
from .records import Outcome
from .run_settings import SweepRunSettings
from .spec import SweepSpec
from .inputs import check_inputs
from .processes import run_processes
from .packs import (auto_members_for, claim_config, claim_pack, group_claims, run_pack, sequential_pack_objective,
                    store_outcome, train_pack_objective)
from .storage import Claim, SweepStore

__all__ = ["SweepResult", "SweepPlan", "run_sweep", "plan_sweep", "worker_loop", "run_claim", "train_objective"]

log = logging.getLogger(__name__)

_THREADS: int | None = None
RAY_CANCEL_WAIT_S = 30.0  # how long an interrupted driver waits for its cancelled Ray tasks to record their trials


class SweepPlan(NamedTuple):
    points: int
    done: int  # finished in storage already
    queued: int  # waiting or running in storage
    to_run: int  # neither: this command enqueues them


class SweepResult(NamedTuple):
    study: str
    storage: str
    points: int
    done_before: int
    ran: int  # runs this command (or its workers) finished
    counts: dict  # trials of this spec's points per state
    by_point: dict  # this spec's points per state, each once (SweepStore.point_states)


def train_objective(cfg) -> Outcome:
    """The real objective: ``lorascale.train.loop.train`` on one point's config."""
    from ..train.loop import train

    if _THREADS:
        import torch

        torch.set_num_threads(_THREADS)
    return Outcome.from_result(train(cfg, progress=False))


def run_claim(store: SweepStore, claim: Claim, objective: Callable, heartbeat_s: float = HEARTBEAT_S,
              beats: ClaimBeats | None = None) -> Outcome:
    """Run one claimed point and record it; an exception in the run, or a stored config that no longer
    validates, is recorded as "failed". ``beats`` keeps the claim alive (the worker's); without it the run
    beats its own."""
    with ExitStack() as own:
        if beats is None:
            beats = own.enter_context(ClaimBeats(store, heartbeat_s)).start([claim])
        t0 = time.perf_counter()
        try:
            cfg = claim_config(store, claim)  # one run directory per attempt: train never overwrites a run
            out = _as_outcome(objective(cfg))
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: recorded, then the worker stops
            store_outcome(store, claim, Outcome(RunStatus.INTERRUPTED, math.nan, wall_time=time.perf_counter() - t0,
                                         message=f"interrupted by {describe(e)}"))
            beats.stop(claim)
            raise
        except Exception as e:  # a crash of one run must not end the sweep; it is stored and retried later
            out = Outcome(RunStatus.FAILED, math.nan, wall_time=time.perf_counter() - t0, message=f"{type(e).__name__}: {e}")
        store_outcome(store, claim, out)
        beats.stop(claim)
    return out


def worker_loop(url: str, study: str, objective: Callable | str = train_objective, *, threads: int | None = None,
                heartbeat_s: float = HEARTBEAT_S, grace_s: float = GRACE_S, max_trials: int | None = None,
                on_trial: Callable[[Claim, Outcome], None] | None = None, members: int = 1,
                pack_objective: Callable | str | None = None) -> int:
    """Claim and run points until the queue is empty (or ``max_trials``); returns how many it ran.

    ``members`` > 1: claim up to that many points at a time and train the compatible ones as members of
    one frozen base (:mod:`lorascale.sweep.packs`); ``pack_objective(cfgs, on_end) -> [Outcome]`` trains a
    group and calls ``on_end(i, outcome)`` as member ``i`` ends, which stores it
    (default: ``train_members`` for the real objective, else ``objective`` on each config in turn).
    """
    if threads:
        _set_threads(threads)
    objective = resolve_objective(objective)
    if pack_objective is None:
        pack_objective = train_pack_objective if objective is train_objective else sequential_pack_objective(objective)
    pack_objective = resolve_objective(pack_objective)
    store = SweepStore.open(url, study, "write", heartbeat_s=heartbeat_s, grace_s=grace_s)
    n = 0
    try:
        while max_trials is None or n < max_trials:
            want = members if max_trials is None else min(members, max_trials - n)
            claims = claim_pack(store, want) if want > 1 else [c for c in [store.claim()] if c is not None]
            if not claims:
                if store.fail_stale():  # a dead worker's points go back into the queue
                    continue
                break
            try:
                with ClaimBeats(store, heartbeat_s) as beats:  # every claim beats until it is stored, not just its group
                    beats.start(claims)
                    for group in group_claims(store, claims) if len(claims) > 1 else [[(claims[0], None)]]:
                        if len(group) == 1:
                            outs = [run_claim(store, group[0][0], objective, beats=beats)]
                        else:
                            outs = run_pack(store, group, pack_objective, beats=beats)
                        for (claim, _), out in zip(group, outs):
                            n += 1
                            if on_trial is not None:
                                on_trial(claim, out)
            except KeyboardInterrupt as e:  # claims not recorded yet (groups not reached) are handed back
                _release_unfinished(store, claims, e)
                raise
    finally:
        store.close()
    return n


def _release_unfinished(store: SweepStore, claims: list[Claim], stop: BaseException) -> None:
    from optuna.exceptions import UpdateFinishedTrialError

    for claim in claims:
        try:
            store.release(claim, stop)
        except UpdateFinishedTrialError:  # recorded already (run, interrupted or released)
            pass


def plan_sweep(spec: SweepSpec, url: str, extend_study: bool = False) -> SweepPlan:
    """What ``run_sweep`` would do, read without writing (a missing storage file means nothing is done);
    raises what ``run_sweep`` would refuse about the stored study (another spec under this name)."""
    keys = {p.key for p in spec.points}
    try:
        store = SweepStore.open(url, spec.name)
    except StorageMissing as e:
        _, path = local_path(url)
        if e.field == "study" or (path is not None and not path.exists()):
            return SweepPlan(len(keys), 0, 0, len(keys))  # nothing stored yet
        raise
    conflict = store.spec_conflict(spec.raw, keys, extend_study) or store.label_conflict({p.key: p.label for p in spec.points})
    if conflict is not None:
        raise conflict
    done = store.done_keys() & keys
    queued = _pending(store, keys) - done
    return SweepPlan(len(keys), len(done), len(queued), len(keys - done - queued))


def run_sweep(spec: SweepSpec, url: str, *, workers: int = 1, backend: str = "local", address: str | None = None,
              objective: Callable | str = train_objective, progress: bool = True, heartbeat_s: float = HEARTBEAT_S,
              grace_s: float = GRACE_S, cpus: float | None = None, gpus: float | None = None,
              members: int | str = 1, pack_objective: Callable | str | None = None,
              extend_study: bool = False) -> SweepResult:
    """Run every point of ``spec`` not finished in ``url`` and return what happened.

    Refused before anything is stored: a model or dataset that does not resolve, the ray backend
    without ray installed, and a spec that would add points to a study of the same name holding
    another spec's points, unless ``extend_study``.

    ``objective(cfg) -> Outcome | RunResult`` defaults to the real ``train``; with several workers or
    Ray it must be importable by name (a module-level function), since it is sent to other processes.
    ``members``: up to K compatible points train at once on one frozen base ("auto": as many as fit in
    memory, :func:`~lorascale.sweep.packs.auto_members_for`).
    """
    run = SweepRunSettings(workers=workers, backend=backend, address=address, members=members, cpus_per_trial=cpus,
                           gpus_per_trial=gpus)  # every problem at once, each naming its setting
    workers, backend, members = run.workers, run.backend, run.members
    if backend == "ray":
        _import_ray()
    check_inputs(spec)
    if members == "auto":
        members = auto_members_for([p.train for p in spec.points])
        log.info("members auto: %d members per pack", members)
    store = SweepStore.open(url, spec.name, "create", heartbeat_s=heartbeat_s, grace_s=grace_s)
    try:
        keys = {p.key for p in spec.points}
        renamed = store.label_conflict({p.key: p.label for p in spec.points})
        if renamed is not None:
            raise renamed
        store.save_spec(spec.raw, keys, extend=extend_study)
        done_before = len(store.done_keys() & keys)
        store.fail_stale()
        store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)
        todo = _pending(store, keys)
        bar = _bar(len(keys), done_before, spec.name, progress)
        kw = dict(heartbeat_s=heartbeat_s, grace_s=grace_s, members=members, pack_objective=pack_objective)
        try:
            if backend == "ray":
                from optuna.trial import TrialState

                res = spec.resources
                n_tasks = math.ceil(len(store.trials((TrialState.WAITING,))) / members)  # one task per pack
                ran = _run_ray(url, spec.name, objective, n_tasks, address, res.cpus if cpus is None else cpus,
                               res.gpus if gpus is None else gpus, bar, kw)
            elif workers == 1:
                # a pack's members finish together: tqdm would print the first and skip the rest (its minimum
                # interval), showing 1 of 4 done and an ETA from that until the next pack; each is printed
                ran = worker_loop(url, spec.name, objective, on_trial=lambda c, o: (bar.update(1), bar.refresh()), **kw)
            else:
                ran = _run_processes(store, url, spec.name, objective, workers, todo, bar, kw)
        finally:
            bar.close()
        return SweepResult(spec.name, url, len(keys), done_before, ran, store.counts(keys), store.point_states(keys))
    finally:
        store.close()  # the last one out leaves a SQLite file out of WAL mode, readable from read-only media


# --------------------------------------------------------------------------------------------


def _run_processes(store, url, name, objective, workers, todo, bar, kw) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    shown = 0

    def show() -> int:
        nonlocal shown
        finished = len(todo) - len(_pending(store, todo))
        bar.update(finished - shown)
        shown = finished
        return finished

    run_processes(url, name, objective, workers, max(1, cores // workers), kw, show)
    return show()


def _ray_trial(url, name, objective, threads, kw) -> int:
    """One Ray task: claim one pack of queued trials (one trial when members = 1) from storage and run it."""
    return worker_loop(url, name, objective, threads=threads, max_trials=kw["members"], **kw)


def _run_ray(url, name, objective, n_tasks, address, cpus, gpus, bar, kw) -> int:
    ray = _import_ray()
    owned = not ray.is_initialized()  # a caller's own ray session is left as it was
    if owned:
        _init_ray(ray, address)
    refs: list = []
    try:
        # max_retries=0: a task that dies leaves its trial RUNNING; stale detection re-queues it
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_ray_trial)
        ran = 0
        try:
            for _ in range(n_tasks):  # appended one by one: an interrupt mid-submission still cancels those sent
                refs.append(task.remote(url, name, objective, max(1, int(cpus)), kw))
            while refs:
                done, refs = ray.wait(refs, num_returns=1)
                n = ray.get(done[0])
                ran += n
                bar.update(n)
        except BaseException:  # Ctrl-C, SIGTERM or a SystemExit in the driver: the tasks' trials are recorded interrupted
            _cancel_ray_tasks(ray, refs)
            raise
        return ran
    finally:
        if owned:
            ray.shutdown()  # disconnects from a cluster; stops a local instance we started


def _init_ray(ray, address) -> None:
    """``ray.init``, keeping the driver's own SIGTERM handler (the CLI's, which raises like Ctrl-C) where it has
    one: Ray installs sys.exit for SIGTERM. Without a handler of ours, Ray's stays; its SystemExit cancels the
    tasks too (:func:`_run_ray` catches any exception)."""
    ours = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        ray.init(address=address)
    finally:
        if callable(ours):
            signal.signal(signal.SIGTERM, ours)


def _cancel_ray_tasks(ray, refs, wait_s: float = RAY_CANCEL_WAIT_S) -> None:
    """Stop the driver's Ray tasks before it shuts Ray down.

    ``ray.cancel`` raises KeyboardInterrupt inside a running task, where :func:`run_claim` records its
    trial interrupted, as a local worker does on Ctrl-C; a task not yet started never claims a trial.
    Without this, ``ray.shutdown`` kills the workers mid-trial and their trials wait as RUNNING until
    stale detection re-queues them (``grace_s`` later).
    """
    for ref in refs:
        ray.cancel(ref)
    if refs:  # the tasks store their outcome, then end; the rest is up to stale detection
        ray.wait(refs, num_returns=len(refs), timeout=wait_s)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("backend", "ray is not installed",
                          "pip install 'lorascale[ray]' (or pip install 'ray[default]'), or use the local backend") from None
    return ray


def _pending(store: SweepStore, keys) -> set[str]:
    from optuna.trial import TrialState

    return {t.user_attrs["key"] for t in store.trials((TrialState.WAITING, TrialState.RUNNING))} & set(keys)


def _bar(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"sweep {name}", unit="run", disable=not enabled, file=sys.stderr)


def _as_outcome(x) -> Outcome:
    return x if isinstance(x, Outcome) else Outcome.from_result(x)


def resolve_objective(objective: Callable | str) -> Callable:
    """A callable, or "package.module:function" (importable by worker processes and Ray tasks)."""
    if callable(objective):
        return objective
    mod, _, fn = str(objective).partition(":")
    return getattr(importlib.import_module(mod), fn)


def _set_threads(n: int) -> None:
    """Split the cores: torch reads OMP_NUM_THREADS at import; an already imported torch is set directly."""
    global _THREADS
    _THREADS = n
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
