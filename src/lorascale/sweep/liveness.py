"""Whether a RUNNING trial still has a live worker, and what happens to it when it has not.

* RDB storages (SQLite, servers) use Optuna's heartbeat: the worker calls the storage's
  ``record_heartbeat`` every ``HEARTBEAT_S`` and ``optuna.storages.fail_stale_trials`` fails a
  trial silent for ``GRACE_S``, then :class:`RequeueStale` (Optuna's retry callback) queues its
  point again.
* The journal backend has no heartbeat in Optuna: the worker writes a ``heartbeat`` user attr
  instead and :func:`silent_for` reads it back against the same grace period (clocks of the
  machines sharing a journal must agree to well within it).
* On both, a trial whose worker process is gone from this host (``worker`` attr "host:pid") is
  failed at once, without waiting for the grace period: :func:`died_here`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import threading
from typing import Callable

__all__ = ["HEARTBEAT_S", "GRACE_S", "POINT_ATTRS", "worker_id", "died_here", "silent_for", "beating", "ClaimBeats", "RequeueStale"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # a running worker beats this often
GRACE_S = 120.0  # a RUNNING trial silent this long is presumed dead (Optuna's usual 60 s / 120 s)
POINT_ATTRS = ("key", "point", "config", "label")  # what a re-queued trial keeps: the point, not the last run


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def died_here(worker: str, host: str | None = None) -> bool:
    """Whether ``worker`` ("host:pid") ran on this host and its process is gone."""
    w_host, _, w_pid = str(worker).rpartition(":")
    return w_host == (host or socket.gethostname()) and w_pid.isdigit() and not _pid_alive(int(w_pid))


def silent_for(trial, now: float) -> float:
    """Seconds since a journal trial's last ``heartbeat`` attr (since its start before the first beat)."""
    beat = trial.user_attrs.get("heartbeat") or (trial.datetime_start.timestamp() if trial.datetime_start else now)
    return now - float(beat)


@contextlib.contextmanager
def beating(beat: Callable[[], None], interval: float, name: str):
    """``with beating(fn, 30, "trial 3"):`` calls ``fn`` every ``interval`` seconds while the block runs.

    A failed beat is logged and the run goes on: the trial may have been failed as stale meanwhile
    (its result is then dropped by the caller), or the database blinked.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            try:
                beat()
            except Exception as e:
                log.debug("heartbeat of %s failed: %s", name, e)

    thread = threading.Thread(target=run, daemon=True, name=f"heartbeat-{name}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class ClaimBeats:
    """A heartbeat per claimed trial, from its claim until its result is stored (``stop``).

    A worker that claims K points may train them in several groups, one after another (a pack, then the
    full-finetuning points alone); the later groups' trials must keep beating while the first trains, or
    another worker's stale check re-queues them and the point trains twice.
    """

    def __init__(self, store, interval: float):
        self.store, self.interval = store, interval
        self._beating: dict[int, contextlib.AbstractContextManager] = {}

    def start(self, claims) -> "ClaimBeats":
        for c in claims:
            if c.number not in self._beating:
                cm = self.store.heartbeat(c, self.interval)
                cm.__enter__()
                self._beating[c.number] = cm
        return self

    def stop(self, claim) -> None:
        cm = self._beating.pop(claim.number, None)
        if cm is not None:
            cm.__exit__(None, None, None)

    def __enter__(self) -> "ClaimBeats":
        return self

    def __exit__(self, *exc) -> None:
        for number in list(self._beating):
            self._beating.pop(number).__exit__(None, None, None)


class RequeueStale:
    """Optuna's ``RetryHeartbeatStaleTrialCallback`` (retry forever), keeping only the point's attrs.

    Called by ``fail_stale_trials`` for each trial Optuna's heartbeat failed, and by the store for the
    trials it fails itself. The WAITING copy carries Optuna's ``failed_trial``/``retry_history``
    system attrs, so the dashboard links each retry to its original; ``requeued`` lists the failed
    trials' numbers.
    """

    def __init__(self) -> None:
        import warnings

        from optuna.exceptions import ExperimentalWarning
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=None)
        self.requeued: list[int] = []

    def __call__(self, study, trial) -> None:
        t = copy.deepcopy(trial)
        t.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in POINT_ATTRS}
        self._retry(study, t)
        self.requeued.append(trial.number)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
