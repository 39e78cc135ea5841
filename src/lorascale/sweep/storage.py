"""A sweep's results in Optuna storage: one study per spec, one trial per run. No database of our own.

Storage URLs and how they open: :mod:`.backends`. The stored schema: :mod:`.records`.

A trial keeps, as user attrs: ``key`` (the point's stable key), ``point`` (its coordinates),
``label`` (its configuration's label, a column in optuna-dashboard), ``config`` (the full
TrainConfig), the outcome (``status``, ``final_ema_loss``, ``eval_metric``, ``eval_value``,
``val_loss``, ``wall_time``, ``message``, ``run_dir``; non-finite numbers as "inf"/"nan") and ``worker``
(who runs it; journal storages also keep a ``heartbeat`` time). The EMA loss curve is its
intermediate values (``trial.report``). Params for the dashboard's plots (:mod:`.params`): ``lr`` (log scale),
``rank``, ``alpha_mult``, ``seed``, each ranging over the spec's own values. Studies written before
kept ``log2_lr`` instead of ``lr``; records come from the ``point`` attr, so they read the same.

States: a finished run is COMPLETE with value = final EMA loss. A diverged run is finished too: it
is COMPLETE with value +inf and status "diverged", so it is never re-run and never mistaken for a
best trial. Failed and interrupted runs are FAIL and are re-run by the next ``lorascale sweep``.

Queue: every point is added as a WAITING trial, all of a spec's points validated before the first
is added. A worker claims the WAITING trial whose point came first in the spec (the number of the
point's first trial), moving it to RUNNING atomically in the storage as ``study.ask()`` does (which
would take the oldest trial instead): a point re-queued after an interruption keeps its place, ahead of
the points the spec puts after it, so a spec run seed by seed finishes seed 0 before seed 1 whatever was
interrupted. Two processes that enqueue at once may create two trials for one key: the lower-numbered
live trial wins and the other is closed as FAIL with status "duplicate" without running. Stale workers:
:mod:`.liveness`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Iterable, NamedTuple

from ..errors import ConfigError, ConfigErrors, StorageMissing
from ..interrupts import describe, shielded
from ..vocabulary import RunStatus
from .backends import Access, open_storage, release_sqlite, storage_lock
from .params import param_distributions, point_params
from .liveness import GRACE_S, HEARTBEAT_S, RequeueStale, beating, died_here, silent_for, worker_id
from .records import OUTCOME_ATTRS, RECORD_STATUSES, Outcome, PointCoords, Record

__all__ = ["Outcome", "Claim", "SweepStore", "study_names", "default_storage_url", "worker_id", "CURVE_POINTS"]

log = logging.getLogger(__name__)

CURVE_POINTS = 100  # the EMA curve is thinned to at most this many intermediate values (the last is exact)
METRIC_NAME = "final_ema_loss"  # the objective's name in the dashboard, as the user attr beside it


class Claim(NamedTuple):
    trial: object  # the claimed optuna.Trial
    number: int
    key: str
    train_config: dict  # the point's flat TrainConfig (stored as the trial's "config" attr)
    point: dict


def default_storage_url(spec_path: str | Path) -> str:
    """SQLite next to the spec: configs/sweep-tiny.yaml → sqlite:///…/configs/sweep-tiny.db."""
    return f"sqlite:///{Path(spec_path).resolve().with_suffix('.db')}"


def study_names(url: str) -> list[str]:
    """The studies in a storage, read without creating or changing anything."""
    import optuna

    with storage_lock(url, "read"):
        return optuna.study.get_all_study_names(open_storage(url, "read").storage)


class SweepStore:
    """One sweep's Optuna study, through a handful of operations the executors and the fit need."""

    def __init__(self, study, backend, requeue: RequeueStale, grace_s: float, url: str = "") -> None:
        self.study, self.backend, self._requeue, self.grace_s, self.url = study, backend, requeue, grace_s, url
        self._ids: dict[int, int] = {}

    @classmethod
    def open(cls, url: str, name: str, access: Access = "read", *, heartbeat_s: float = HEARTBEAT_S,
             grace_s: float = GRACE_S) -> "SweepStore":
        """``read`` changes nothing; ``write`` needs the study; ``create`` makes it (and the file) if missing."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        requeue = RequeueStale()
        with storage_lock(url, access):
            backend = open_storage(url, access, heartbeat_s=heartbeat_s, grace_s=grace_s, on_stale=requeue)
            if access == "create":
                study = optuna.create_study(study_name=name, storage=backend.storage, direction="minimize",
                                            load_if_exists=True)
                if study.metric_names is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        study.set_metric_names([METRIC_NAME])
            else:
                try:
                    study = optuna.load_study(study_name=name, storage=backend.storage)
                except KeyError:
                    names = optuna.study.get_all_study_names(backend.storage)
                    raise StorageMissing("study", f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}",
                                         "pass one of those names, or run `lorascale sweep` first") from None
        return cls(study, backend, requeue, grace_s, url)

    @property
    def name(self) -> str:
        return self.study.study_name

    def close(self) -> None:
        """Release the storage: a SQLite file is checkpointed and left out of WAL mode (see backends)."""
        release_sqlite(self.backend)

    # ---- writing --------------------------------------------------------------------------
    def save_spec(self, raw: dict, keys: set[str], extend: bool = False) -> None:
        """Store the spec of points ``keys`` with the study; refuse a spec that would add points to a
        study holding another spec's, unless ``extend`` says so (a fit would mix the two silently).

        A spec whose points the study already holds (a re-run, or part of the spec) is welcome, and so is
        the spec the study already stores: another ``sweep`` of it (a second machine) may still be adding
        its points, so the study can hold only some of them. The first spec stays the study's ``spec``
        attr; specs that extended it are kept in ``extended_by``.
        """
        held, spec, conflict = self._check_spec(raw, keys, extend)
        if conflict is not None:
            raise conflict
        if not held:
            self.study.set_user_attr("spec", spec)
        elif keys - held and not self._holds_spec(spec):
            self.study.set_user_attr("extended_by", [*self.study.user_attrs.get("extended_by", []), spec])

    def spec_conflict(self, raw: dict, keys: set[str], extend: bool = False) -> ConfigError | None:
        """Why storing spec ``raw`` of points ``keys`` would be refused (see :meth:`save_spec`); None if it would not."""
        return self._check_spec(raw, keys, extend)[2]

    def label_conflict(self, labels: dict[str, str]) -> ConfigError | None:
        """Why points ``key -> configuration label`` cannot join the study: some are stored under another
        label (a spec extending the study renamed a configuration). A stored point keeps its first label, so
        the fits would split one configuration in two; None if every shared point keeps its label."""
        stored = {t.user_attrs["key"]: t.user_attrs.get("label") for t in self.trials()}
        renamed = sorted({(stored[k], new) for k, new in labels.items() if k in stored and stored[k] != new})
        if not renamed:
            return None
        pairs = "; ".join(f"{new!r} is stored as {old!r}" for old, new in renamed)
        return ConfigError("configs", f"points of this spec are already in study {self.name!r} under other"
                           f" configuration names ({pairs}): the fits would split each configuration in two",
                           "name those configurations as the study stores them, or use a new study")

    def _holds_spec(self, spec: dict) -> bool:
        attrs = self.study.user_attrs
        return spec == attrs.get("spec") or spec in attrs.get("extended_by", [])

    def _check_spec(self, raw: dict, keys: set[str], extend: bool) -> tuple[set[str], dict, ConfigError | None]:
        """(the keys the study holds, ``raw`` as stored, why it would be refused or None)."""
        held = {t.user_attrs["key"] for t in self.trials()}
        spec = json.loads(json.dumps(raw, default=str))
        new = keys - held
        if not held or not new or extend or self._holds_spec(spec):
            return held, spec, None  # the stored spec itself may still be having its points added
        return held, spec, ConfigError("name", f"study {self.name!r} in {self.url} holds {len(held)} points of another"
                                       f" spec, and this spec would add {len(new)} new points to it",
                                       "give this spec a name of its own (a new study), or extend that study on"
                                       " purpose (`extend_study`)")

    def enqueue(self, entries: Iterable[tuple[str, dict, dict]]) -> int:
        """Add a WAITING trial per (key, point attrs, config dict) whose key has no live trial.

        All or nothing: every trial is built and checked (params inside their distributions, attrs
        JSON without non-finite numbers) before the first is added. Not ``study.enqueue_trial``:
        its ``skip_if_exists`` compares params, which two configurations can share and which a
        failed point must be allowed to repeat, and it stores no distributions until a claim.
        """
        from optuna.trial import TrialState, create_trial

        entries = [(key, PointCoords.from_dict(point), config) for key, point, config in entries]
        dists = param_distributions([c for _, c, _ in entries])
        live, trials, errors = self.live_keys(), [], []
        for key, c, config in entries:
            if key in live:
                continue
            live.add(key)
            params = point_params(c)
            attrs = {"key": key, "point": c.to_dict(), "label": c.config, "config": config}
            try:
                json.dumps(attrs, allow_nan=False)
                trials.append(create_trial(state=TrialState.WAITING, params=params,
                                           distributions={k: dists[k] for k in params}, user_attrs=attrs))
            except (TypeError, ValueError) as e:
                errors.append(ConfigError("spec", f"point {key} ({c.config}) cannot be stored: {e}",
                                          "give the point values Optuna can store (numbers and strings)"))
        ConfigErrors.raise_if_any(errors)
        self.study.add_trials(trials)
        return len(trials)

    def claim(self, worker: str | None = None) -> Claim | None:
        """Take the WAITING trial the spec puts first (WAITING → RUNNING, atomically); None when none is left.

        A stop signal is held back until the claim is whole, then the claim is handed back (recorded
        interrupted, so the next sweep runs it) and the signal raised."""
        claim = None
        try:
            with shielded():
                claim = self._claim(worker)
        except KeyboardInterrupt as e:
            if claim is not None:
                self.release(claim, e)
            raise
        return claim

    def release(self, claim: Claim, stop: BaseException) -> None:
        """Hand back a claim that never ran because of ``stop`` (Ctrl-C, SIGTERM): FAIL, re-run next time."""
        self.finish(claim, Outcome(RunStatus.INTERRUPTED, math.nan, message=f"interrupted by {describe(stop)} before it ran"))

    def _claim(self, worker: str | None) -> Claim | None:
        from optuna.trial import TrialState

        while True:
            trial = self._pop_first_waiting()
            if trial is None:
                return None
            try:
                self._beat(trial)  # at once: Optuna's heartbeat never fails a trial that has not beaten
                key = trial.user_attrs["key"]
                trial.set_user_attr("worker", worker or worker_id())
                live = self.trials((TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))  # after the claim
                first = min(t.number for t in live if t.user_attrs["key"] == key)
                if first < trial.number:
                    self._close_own(trial, RunStatus.DUPLICATE, f"trial {first} holds this point")
                    continue
                return Claim(trial, trial.number, key, trial.user_attrs["config"], trial.user_attrs["point"])
            except Exception as e:  # a half-made claim (the database locked past its timeout): hand the trial
                self._abandon(trial, e)  # back, or it would stay RUNNING with no worker to finish it
                raise

    def heartbeat(self, claim: Claim, interval: float):
        """``with store.heartbeat(claim, 30):`` beats every ``interval`` seconds while a run is going."""
        return beating(lambda: self._beat(claim.trial), interval, f"trial {claim.number}")

    def finish(self, claim: Claim, out: Outcome) -> None:
        """Record a run. Diverged: COMPLETE with value +inf; failed/interrupted: FAIL (re-run later).

        The outcome takes several writes (attrs one by one, then the state); a stop signal (Ctrl-C,
        SIGTERM) is held back until they are all done, so a RUNNING trial never carries half an outcome.
        """
        with shielded():
            self._finish(claim, out)

    def _finish(self, claim: Claim, out: Outcome) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        trial = claim.trial
        for step, v in _thin(out.ema_curve, CURVE_POINTS):
            if math.isfinite(v):
                trial.report(v, step)
        finite = out.final_ema_loss is not None and math.isfinite(out.final_ema_loss)
        if out.status == RunStatus.COMPLETE and not finite:
            out = replace(out, status=RunStatus.DIVERGED)  # a non-finite "complete" loss diverged
        for k, v in out.stored_attrs().items():
            trial.set_user_attr(k, v)
        # skip_if_finished: a stale check may fail the trial between the attrs and the tell. Optuna then
        # raises a plain ValueError ("Cannot tell a FAIL trial"); the state read back says which write won
        if out.status == RunStatus.COMPLETE:
            self.study.tell(trial, float(out.final_ema_loss), skip_if_finished=True)
        elif out.status == RunStatus.DIVERGED:
            self.study.tell(trial, math.inf, skip_if_finished=True)
        else:
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        wanted = TrialState.FAIL if out.status not in (RunStatus.COMPLETE, RunStatus.DIVERGED) else TrialState.COMPLETE
        if self.backend.storage.get_trial(self._id_of(claim.number)).state != wanted:
            raise UpdateFinishedTrialError(f"trial {claim.number} was finished by another process before this"
                                           f" outcome ({out.status.value}) could be told")

    def fail_stale(self) -> list[int]:
        """Fail RUNNING trials whose worker is gone and queue their points again; their numbers.

        Gone: its process died on this host, or (journal) its heartbeat attr is older than the grace
        period, or (RDB) Optuna's heartbeat says so through ``fail_stale_trials``.
        """
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        n0, now = len(self._requeue.requeued), time.time()
        for t in self.trials((TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker", "?")
            if died_here(worker):
                why = f"worker {worker} died"
            elif self.backend.kind == "journal" and silent_for(t, now) > self.grace_s:
                why = f"worker {worker} silent for {silent_for(t, now):.0f} s"
            else:
                continue
            try:
                self._fail(t.number, RunStatus.INTERRUPTED, why)
            except UpdateFinishedTrialError:
                continue  # it finished meanwhile, or another process failed it first
            self._requeue(self.study, t)
        if self.backend.kind != "journal":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # calls self._requeue per trial it fails
        return sorted(self._requeue.requeued[n0:])

    # ---- reading --------------------------------------------------------------------------
    def trials(self, states=None) -> list:
        """Frozen trials of sweep points (with a ``key``), sorted by number."""
        return [t for t in self.study.get_trials(deepcopy=False, states=states) if "key" in t.user_attrs]

    def live_keys(self) -> set[str]:
        """Keys with a WAITING, RUNNING or COMPLETE trial: queued, running or finished."""
        from optuna.trial import TrialState

        return {t.user_attrs["key"] for t in self.trials((TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))}

    def counts(self, keys: set[str] | None = None) -> dict[str, int]:
        """Trials per state name (complete, fail, running, waiting), over ``keys`` if given."""
        out: dict[str, int] = {}
        for t in self.trials():
            if keys is None or t.user_attrs["key"] in keys:
                out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
        return out

    def pending(self) -> int:
        """How many of the study's points are queued or running (none of their trials finished)."""
        return self.point_states({t.user_attrs["key"] for t in self.trials()})["queued"]

    def point_states(self, keys: set[str]) -> dict[str, int]:
        """Each of ``keys`` counted once, by where it stands: ``finished`` (COMPLETE, diverged runs
        included), ``queued`` (WAITING or RUNNING), ``failed`` (its latest run failed or was
        interrupted) or ``missing`` (never enqueued). Retries and duplicates that never ran do not count."""
        from optuna.trial import TrialState

        states: dict[str, set] = defaultdict(set)
        for t in self.trials():
            if t.user_attrs["key"] in keys and _status(t) != RunStatus.DUPLICATE:
                states[t.user_attrs["key"]].add(t.state)
        out = {"finished": 0, "queued": 0, "failed": 0, "missing": 0}
        for k in keys:
            s = states.get(k, set())
            if TrialState.COMPLETE in s:
                out["finished"] += 1
            elif s & {TrialState.WAITING, TrialState.RUNNING}:
                out["queued"] += 1
            else:
                out["failed" if s else "missing"] += 1
        return out

    def done_keys(self) -> set[str]:
        from optuna.trial import TrialState

        return {t.user_attrs["key"] for t in self.trials((TrialState.COMPLETE,))}

    def records(self) -> list[Record]:
        """One record per point: its finished trial, else its latest failed one (duplicates never ran)."""
        from optuna.trial import TrialState

        best: dict[str, object] = {}
        for t in self.trials((TrialState.COMPLETE, TrialState.FAIL)):
            if _status(t) not in RECORD_STATUSES:
                continue
            old = best.get(t.user_attrs["key"])
            if old is None or (old.state != TrialState.COMPLETE
                               and (t.state == TrialState.COMPLETE or t.number > old.number)):
                best[t.user_attrs["key"]] = t
        return [self._record(t) for t in sorted(best.values(), key=lambda t: t.number)]

    # ---- internals ------------------------------------------------------------------------
    def _record(self, t) -> Record:
        a = t.user_attrs
        try:
            return Record(PointCoords.from_dict(a["point"]), Outcome.from_stored(
                {k: a[k] for k in OUTCOME_ATTRS if k in a} | {"status": _status(t)},
                sorted(t.intermediate_values.items())))
        except ConfigError as e:
            raise ConfigError("storage", f"trial {t.number} of study {self.name}: {e.message}", e.fix) from None

    def _pop_first_waiting(self):
        """The WAITING trial whose point the spec put first, moved to RUNNING; None when none is left.

        A point's place is the number of its first trial, so a re-queued point (a new trial at the end)
        runs where the spec put it. Claimed as ``study.ask()`` claims its oldest one: the storage's
        WAITING → RUNNING transition succeeds for one process only; another process's claim moves on."""
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        trials, place = self.trials(), {}
        for t in trials:  # sorted by number: the first trial of each key sets its place
            place.setdefault(t.user_attrs["key"], t.number)
        waiting = sorted((t for t in trials if t.state == TrialState.WAITING),
                         key=lambda t: (place[t.user_attrs["key"]], t.number))
        for t in waiting:
            tid = self._id_of(t.number)
            try:
                if self.backend.storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                    return optuna.Trial(self.study, tid)
            except UpdateFinishedTrialError:
                continue  # another process claimed and finished it since the look
        return None

    def _beat(self, trial) -> None:
        if self.backend.kind == "journal":  # Optuna has no heartbeat for the journal: an attr instead
            trial.set_user_attr("heartbeat", time.time())
        else:
            self.backend.storage.record_heartbeat(self._id_of(trial.number))

    def _close_own(self, trial, status: RunStatus, message: str) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("status", str(status))
        trial.set_user_attr("message", message)
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)  # a stale check may have failed it first

    def _abandon(self, trial, error: BaseException) -> None:
        """Fail a trial whose claim broke off, so its point is queued again; if even that fails, the
        heartbeat (recorded first) lets the stale check fail it later."""
        try:
            self._close_own(trial, RunStatus.INTERRUPTED, f"its claim broke off: {type(error).__name__}: {error}")
        except Exception as e:
            log.warning("trial %d: its claim broke off (%s: %s) and it could not be handed back (%s: %s); the stale"
                        " check will fail it", trial.number, type(error).__name__, error, type(e).__name__, e)

    def _fail(self, number: int, status: RunStatus, message: str) -> None:
        """Fail another worker's RUNNING trial; UpdateFinishedTrialError if it finished meanwhile."""
        from optuna.trial import TrialState

        st, tid = self.backend.storage, self._id_of(number)
        st.set_trial_user_attr(tid, "status", str(status))
        st.set_trial_user_attr(tid, "message", message)
        if not st.set_trial_state_values(tid, state=TrialState.FAIL):
            raise AssertionError(f"trial {number} could not be failed")

    def _id_of(self, number: int) -> int:
        """The storage's id of trial ``number``, which BaseStorage's per-trial methods take.

        Optuna's Trial and FrozenTrial keep it only in a private attribute, so it is looked up
        through the storage's public API (one query, cached). The one place that maps numbers to ids.
        """
        if number not in self._ids:
            st = self.backend.storage
            sid = st.get_study_id_from_name(self.name)
            self._ids[number] = st.get_trial_id_from_study_id_trial_number(sid, number)
        return self._ids[number]


def _status(t) -> str | None:
    """A trial's run status; a FAIL trial without one (failed by Optuna's heartbeat), or with a finished
    one, is interrupted.

    A COMPLETE trial finished: unless its attr says complete or diverged, it is diverged when its value is
    +inf, else complete. (A stale check can write "interrupted" between a worker's outcome attrs and its
    ``tell``; its FAIL then loses, so the run is finished and never re-run, and must not read as interrupted.)"""
    from optuna.trial import TrialState

    status = t.user_attrs.get("status")
    if t.state == TrialState.COMPLETE and status not in (RunStatus.COMPLETE, RunStatus.DIVERGED):
        return RunStatus.DIVERGED if t.value == math.inf else RunStatus.COMPLETE
    if t.state == TrialState.FAIL and status not in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.DUPLICATE):
        # the other race: a stale check failed the trial after the worker wrote "complete" but before its
        # tell; the point was re-queued and runs again, so this attempt counts as interrupted
        return RunStatus.INTERRUPTED
    return status


def _thin(curve, n: int) -> list:
    curve = list(curve)
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]
