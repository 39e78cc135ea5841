"""Local worker processes of a sweep (``--workers N``), and how they stop.

* Workers are spawned (torch starts clean) with SIGINT ignored, so a Ctrl-C at the terminal, which
  reaches the whole process group, stops only the parent; the parent then sends each live worker
  SIGTERM. A worker stops on SIGTERM as a run stops on Ctrl-C: its trial is recorded
  ``interrupted`` (re-run by the next sweep) and it exits with 143, without a traceback.
* A worker whose parent dies, even by ``kill -9``, gets SIGTERM from the kernel (Linux
  ``PR_SET_PDEATHSIG``) or from its own poll of the parent's pid (:func:`lorascale.interrupts.watch_parent`),
  and stops the same way: no orphan trains on alone.
* Workers inherit the parent's environment, so the CLI's quiet warning filters (``PYTHONWARNINGS``)
  apply in them too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable

from ..interrupts import exit_code, stop_on_signals, watch_parent

__all__ = ["run_processes", "worker_process", "STOP_WAIT_S"]

log = logging.getLogger(__name__)

STOP_WAIT_S = 30.0  # a stopped worker records its trial and exits well within this; then it is killed


def worker_process(parent_pid: int, url: str, study: str, objective, kwargs: dict) -> None:
    """The body of one local worker process: :func:`~.executors.worker_loop` until the queue is empty,
    or until SIGTERM or the death of ``parent_pid``, which end it with exit code 143."""
    from .executors import worker_loop

    watch_parent(parent_pid)
    try:
        with stop_on_signals((signal.SIGTERM,)):
            worker_loop(url, study, objective, **kwargs)
    except KeyboardInterrupt as e:  # its trial is recorded interrupted; nothing more to say
        sys.exit(exit_code(e))


def run_processes(url: str, study: str, objective, workers: int, threads: int, kw: dict,
                  progress: Callable[[], object]) -> None:
    """Run ``workers`` worker processes to the end, calling ``progress()`` every half second.

    A KeyboardInterrupt here (Ctrl-C, or SIGTERM under the CLI) stops the workers first, then propagates.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork after torch/optuna threads have started is unsafe
    procs = [ctx.Process(target=worker_process, args=(os.getpid(), url, study, objective, dict(threads=threads, **kw)),
                         daemon=False) for _ in range(workers)]
    try:
        with _sigint_ignored_by_children():  # the workers never see the terminal's Ctrl-C
            for p in procs:
                p.start()
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            progress()
    except KeyboardInterrupt:  # also while starting them: the ones started are stopped
        _stop(procs)
        raise
    finally:
        for p in procs:
            if p.pid is not None:  # started
                p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        log.warning("%d worker(s) exited with codes %s; re-run to resume", len(bad), bad)


def _stop(procs) -> None:
    """SIGTERM each live worker, wait for it to record its trial, kill one that does not stop."""
    procs = [p for p in procs if p.pid is not None]  # started
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM
    deadline = time.monotonic() + STOP_WAIT_S
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            log.warning("worker %d did not stop in %.0f s; killing it (its trial is re-run next time)", p.pid, STOP_WAIT_S)
            p.kill()


@contextlib.contextmanager
def _sigint_ignored_by_children():
    """While child processes start, SIGINT is ignored, a disposition they inherit across exec (a
    blocked mask is not: spawned children of Python 3.11 start with an empty one, we measured). It is blocked here as well, so a Ctrl-C
    that comes meanwhile stays pending (Linux never discards a blocked signal) and reaches this
    process's own handler as soon as the block ends."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # Windows, or a thread that may not set handlers: children see Ctrl-C as the parent does
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
