"""A sweep's results in Optuna storage: one study per spec, one trial per run. No database of our own.

Storage URLs: ``sqlite:///path.db`` (the default, next to the spec), any SQLAlchemy URL such as
``postgresql://user@host/db`` for several machines, or ``journal:path.log`` for Optuna's journal
file. optuna-dashboard opens all three.

A trial keeps, as user attrs: ``key`` (the point's stable key), ``point`` (its coordinates),
``config`` (the full TrainConfig), ``status`` (complete | diverged | failed | interrupted),
``final_ema_loss``, ``eval_metric``, ``eval_value``, ``val_loss``, ``wall_time``, ``message``,
``run_dir`` (the run's metrics.jsonl) and ``worker``/``heartbeat`` (who runs it, last sign of life). The EMA loss curve is its intermediate
values (``trial.report``); params ``log2_lr``, ``rank``, ``alpha_mult``, ``seed`` serve the dashboard.

States: a finished run is COMPLETE with value = final EMA loss. A diverged run is finished too: it
is COMPLETE with value +inf, status "diverged" and the loss it reached in ``final_ema_loss``, so it
is never re-run and never mistaken for a best trial. Failed and interrupted runs are FAIL and are
re-run by the next ``lorascale sweep``.

Claiming: each point is enqueued as a WAITING trial; a worker claims one by moving it WAITING →
RUNNING, the atomic transition Optuna's own ``Study.ask`` uses. Two processes that enqueue at once
may create two trials for one key: the lower-numbered live trial wins and the other is closed as
FAIL with status "duplicate" without running. A worker beats a heartbeat attr while it runs; a
RUNNING trial whose worker is gone (its process is dead on this host, or its heartbeat is older
than the grace period) is failed as "interrupted" and enqueued again.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from ..errors import ConfigError
from .fit import STATUSES, Record

__all__ = ["Outcome", "Claim", "SweepStore", "open_storage", "default_storage_url", "worker_id", "CURVE_POINTS"]

CURVE_POINTS = 100  # the EMA curve is thinned to at most this many intermediate values (the last is exact)
_PARAMS = None  # built lazily: optuna distributions of the dashboard params


class Outcome(NamedTuple):
    """What a run produced (the fields of ``lorascale.train.loop.RunResult`` the sweep keeps)."""

    status: str  # complete | diverged | failed | interrupted
    final_ema_loss: float
    eval_metric: str | None = None
    eval_value: float | None = None
    val_loss: float | None = None
    wall_time: float = 0.0
    ema_curve: tuple = ()
    message: str = ""
    run_dir: str | None = None

    @classmethod
    def from_result(cls, result) -> "Outcome":
        run_dir = getattr(result, "run_dir", None)
        return cls(result.status, result.final_ema_loss, result.eval_metric, result.eval_value, result.val_loss,
                   result.wall_time, tuple(result.ema_curve), result.message, None if run_dir is None else str(run_dir))


class Claim(NamedTuple):
    trial_id: int
    number: int
    key: str
    config: dict
    point: dict


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_storage_url(spec_path: str | Path) -> str:
    """SQLite next to the spec: configs/sweep-tiny.yaml → sqlite:///…/configs/sweep-tiny.db."""
    p = Path(spec_path).resolve()
    return f"sqlite:///{p.with_suffix('.db')}"


def open_storage(url: str, must_exist: bool = False):
    """An Optuna storage for a URL (see the module doc). ``must_exist``: refuse to create a new file."""
    import optuna

    if url.startswith("journal:"):
        path = url[len("journal:"):].removeprefix("//")
        _check_file(path, url, must_exist)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError("--storage", f"{url!r} is not a storage URL; use sqlite:///FILE.db, journal:FILE.log"
                          " or a database URL such as postgresql://user@host/db")
    if url.startswith("sqlite:///"):
        _check_file(url[len("sqlite:///"):], url, must_exist)
    sqlite = url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}  # wait for other workers' writes
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:  # SQLAlchemy raises many kinds: bad dialect, unreachable server, ...
        raise ConfigError("--storage", f"cannot open {url}: {e}") from None
    if sqlite:
        _sqlite_setup(rdb.engine)
    return optuna.storages.get_storage(rdb)  # Optuna's cache: finished trials are read once


def _sqlite_setup(engine) -> None:
    """Make SQLite's transactions serializable, and cheap.

    * Python's sqlite3 driver runs a SELECT outside any transaction and opens one only at the next
      write, so two processes can both read a trial as WAITING and both move it to RUNNING (we
      measured 1–6 double claims in 60 with 4 processes). Every transaction here starts with
      ``BEGIN IMMEDIATE`` instead (SQLAlchemy's recipe for pysqlite), so a read-then-write such as a
      claim holds the write lock throughout; others wait up to the 60 s busy timeout.
    * WAL journal with synchronous=NORMAL: a commit costs ~1 ms instead of an fsync (~20 ms). Safe
      against a crashed process; a power cut may lose the last commits. SQLite files belong on a
      local disk; use a database server across machines.
    """
    from sqlalchemy import event

    def on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # the driver stops issuing its own BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened while Optuna created its tables predate the listeners


def _check_file(path: str, url: str, must_exist: bool) -> None:
    if must_exist and not Path(path).is_file():
        raise ConfigError("--storage", f"{url}: {path} does not exist; run `lorascale sweep` first")


class SweepStore:
    """One sweep's Optuna study, through a handful of operations the executors and the fit need."""

    def __init__(self, study) -> None:
        self.study = study
        self._storage = study._storage  # the storage behind Study.ask/tell: its public BaseStorage API
        self._sid = study._study_id

    @classmethod
    def open(cls, url: str, name: str, create: bool = False) -> "SweepStore":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(url, must_exist=not create)
        if create:
            return cls(optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True))
        try:
            return cls(optuna.load_study(study_name=name, storage=storage))
        except KeyError:
            names = optuna.study.get_all_study_names(storage)
            raise ConfigError("--study", f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}") from None

    @property
    def name(self) -> str:
        return self.study.study_name

    # ---- writing --------------------------------------------------------------------------
    def save_spec(self, raw: dict) -> None:
        import json

        self.study.set_user_attr("spec", json.loads(json.dumps(raw, default=str)))

    def enqueue(self, entries: Iterable[tuple[str, dict, dict]]) -> int:
        """Add a WAITING trial per (key, point attrs, config dict) whose key has no live trial."""
        from optuna.trial import TrialState, create_trial

        live = self.live_keys()
        n = 0
        for key, point, config in entries:
            if key in live:
                continue
            params = {k: point[k] for k in ("log2_lr", "rank", "alpha_mult", "seed") if point.get(k) is not None}
            dists = {k: _params()[k] for k in params}
            t = create_trial(state=TrialState.WAITING, params=params, distributions=dists,
                             user_attrs={"key": key, "point": point, "config": config})
            self.study.add_trial(t)
            live.add(key)
            n += 1
        return n

    def claim(self, worker: str | None = None) -> Claim | None:
        """Atomically take the next WAITING trial (WAITING → RUNNING); None when the queue is empty."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        st = self._storage
        # One read serves both the queue and the duplicate check: every trial numbered below a
        # WAITING one already exists in it, and a trial that is live here stays live for this rule.
        snapshot = [t for t in st.get_all_trials(self._sid, deepcopy=False) if "key" in t.user_attrs]
        first_live: dict[str, int] = {}
        for t in snapshot:
            if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE):
                first_live.setdefault(t.user_attrs["key"], t.number)  # snapshot is sorted by number
        for t in snapshot:
            if t.state != TrialState.WAITING:
                continue
            try:
                if not st.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    continue  # another worker took it
            except UpdateFinishedTrialError:
                continue
            st.set_trial_user_attr(t._trial_id, "worker", worker or worker_id())
            st.set_trial_user_attr(t._trial_id, "heartbeat", time.time())
            key = t.user_attrs["key"]
            if first_live[key] < t.number:
                self._close(t._trial_id, "duplicate", f"trial {first_live[key]} holds this point")
                continue
            return Claim(t._trial_id, t.number, key, t.user_attrs["config"], t.user_attrs["point"])
        return None

    def beat(self, claim: Claim) -> None:
        self._storage.set_trial_user_attr(claim.trial_id, "heartbeat", time.time())

    def heartbeat(self, claim: Claim, interval: float) -> "_Heartbeat":
        """``with store.heartbeat(claim, 30):`` beats every ``interval`` seconds while a run is going."""
        return _Heartbeat(self, claim, interval)

    def finish(self, claim: Claim, out: Outcome) -> None:
        """Record a run. Diverged: COMPLETE with value +inf; failed/interrupted: FAIL (re-run later)."""
        from optuna.trial import Trial, TrialState

        assert out.status in STATUSES, f"unknown run status {out.status!r}"
        st, tid = self._storage, claim.trial_id
        trial = Trial(self.study, tid)
        for step, v in _thin(out.ema_curve, CURVE_POINTS):
            if math.isfinite(v):
                trial.report(float(v), int(step))
        attrs = {"status": out.status, "final_ema_loss": _json_float(out.final_ema_loss), "eval_metric": out.eval_metric,
                 "eval_value": _json_float(out.eval_value), "val_loss": _json_float(out.val_loss),
                 "wall_time": float(out.wall_time), "message": out.message, "run_dir": out.run_dir}
        for k, v in attrs.items():
            st.set_trial_user_attr(tid, k, v)
        if out.status == "complete" and out.final_ema_loss is not None and math.isfinite(out.final_ema_loss):
            self.study.tell(trial, float(out.final_ema_loss))
        elif out.status in ("complete", "diverged"):
            st.set_trial_user_attr(tid, "status", "diverged")  # a non-finite "complete" loss diverged
            self.study.tell(trial, math.inf)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def fail_stale(self, grace_s: float, requeue: bool = True) -> list[int]:
        """Fail RUNNING trials whose worker is gone and enqueue their points again; their numbers."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        now, host = time.time(), socket.gethostname()
        failed = []
        for t in self._storage.get_all_trials(self._sid, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.user_attrs.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else now)
            w_host, _, w_pid = str(t.user_attrs.get("worker", "")).rpartition(":")
            dead = w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid))
            if not dead and now - beat <= grace_s:
                continue
            why = f"worker {t.user_attrs.get('worker', '?')} " + ("died" if dead else f"silent for {now - beat:.0f} s")
            try:
                self._close(t._trial_id, "interrupted", why)
            except UpdateFinishedTrialError:
                continue  # it finished meanwhile, or another process failed it first
            failed.append(t)
        if requeue and failed:
            self.enqueue((t.user_attrs["key"], t.user_attrs["point"], t.user_attrs["config"]) for t in failed)
        return [t.number for t in failed]

    def _close(self, trial_id: int, status: str, message: str) -> None:
        from optuna.trial import TrialState

        self._storage.set_trial_user_attr(trial_id, "status", status)
        self._storage.set_trial_user_attr(trial_id, "message", message)
        if not self._storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            raise AssertionError(f"trial {trial_id} could not be failed")

    # ---- reading --------------------------------------------------------------------------
    def trials(self, states=None) -> list:
        return [t for t in self._storage.get_all_trials(self._sid, deepcopy=False, states=states) if "key" in t.user_attrs]

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

    def done_keys(self) -> set[str]:
        from optuna.trial import TrialState

        return {t.user_attrs["key"] for t in self.trials((TrialState.COMPLETE,))}

    def records(self) -> list[Record]:
        """One plain record per point: its finished trial, else its latest failed one."""
        from optuna.trial import TrialState

        best: dict[str, object] = {}
        for t in self.trials((TrialState.COMPLETE, TrialState.FAIL)):
            if t.user_attrs.get("status") not in STATUSES:
                continue  # a duplicate claim: it never ran
            old = best.get(t.user_attrs["key"])
            if old is None or (old.state != TrialState.COMPLETE and (t.state == TrialState.COMPLETE or t.number > old.number)):
                best[t.user_attrs["key"]] = t
        return [_record(t) for t in sorted(best.values(), key=lambda t: t.number)]


def _record(t) -> Record:
    a, p = t.user_attrs, t.user_attrs["point"]
    return Record.from_dict({
        **p, "status": a["status"], "ema_loss": _float(a.get("final_ema_loss")), "eval_metric": a.get("eval_metric"),
        "eval_value": _float(a.get("eval_value")), "wall_time": a.get("wall_time"),
        "curve": sorted(t.intermediate_values.items()),
    })


class _Heartbeat:
    def __init__(self, store: SweepStore, claim: Claim, interval: float) -> None:
        self._store, self._claim, self._interval = store, claim, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{claim.number}")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._store.beat(self._claim)
            except Exception:  # the trial was failed as stale meanwhile, or the database blinked: keep running
                pass

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _params() -> dict:
    """Wide fixed distributions, identical in every trial, so param compatibility checks always pass."""
    global _PARAMS
    if _PARAMS is None:
        from optuna.distributions import FloatDistribution, IntDistribution

        _PARAMS = {"log2_lr": FloatDistribution(-64.0, 64.0), "rank": IntDistribution(1, 1 << 20, log=True),
                   "alpha_mult": FloatDistribution(2.0**-40, 2.0**40, log=True), "seed": IntDistribution(-(2**31), 2**31)}
    return _PARAMS


def _thin(curve, n: int) -> list:
    curve = list(curve)
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]


def _json_float(v):
    """JSON has no inf/nan: store them as strings Optuna's JSON attrs can hold."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else str(v)


def _float(v) -> float | None:
    return None if v is None else float(v)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
