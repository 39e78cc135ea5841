"""Stopping cleanly on a signal. SIGTERM, what SLURM, Kubernetes and Ray send, is handled like Ctrl-C.

* :func:`stop_on_signals`: while active, the first SIGINT or SIGTERM raises :class:`Interrupted` (a
  ``KeyboardInterrupt``) in the main thread, so every ``except KeyboardInterrupt`` that records a run as
  ``interrupted`` handles both. Later signals are ignored while the process winds down, so a second
  Ctrl-C cannot cut that record in half.
* :func:`shielded`: a block that no signal may cut in half, such as storing a trial's outcome. A
  signal that arrives inside it is delivered when the block ends.
* :func:`exit_code`: 128 + the signal's number, the shell's convention: 130 for Ctrl-C, 143 for SIGTERM.
* :func:`watch_parent`: a worker process stops (SIGTERM to itself) when its parent dies, even by
  ``kill -9``. On Linux the kernel says so at once (``prctl(PR_SET_PDEATHSIG)``); everywhere a thread
  polls the parent's pid.

Signal handlers can only be set from the main thread: elsewhere :func:`stop_on_signals` and
:func:`shielded` do nothing, and Python's own behaviour applies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time

__all__ = ["Interrupted", "STOP_SIGNALS", "stop_on_signals", "shielded", "exit_code", "describe", "watch_parent",
           "PARENT_POLL_S"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PARENT_POLL_S = 0.5  # how often a worker checks its parent's pid (the only check where prctl is missing)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised like Ctrl-C's ``KeyboardInterrupt``; ``signum`` says which one."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    def __reduce__(self):
        return (type(self), (self.signum,))


def describe(e: BaseException) -> str:
    """How a run was stopped, for messages: "SIGTERM", or "Ctrl-C" for a plain KeyboardInterrupt."""
    return str(e) if isinstance(e, Interrupted) and e.signum != signal.SIGINT else "Ctrl-C"


def exit_code(e: BaseException) -> int:
    """The process's exit code after ``e``: 128 + the signal's number (Ctrl-C: 130, SIGTERM: 143)."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_signals(signums=STOP_SIGNALS):
    """Raise :class:`Interrupted` at the first of ``signums``, ignore the ones after; restore on exit."""
    if not _main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, _frame):
        if fired:
            log.debug("%s while stopping after %s: ignored", signal.Signals(signum).name, signal.Signals(fired[0]).name)
            return
        fired.append(signum)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def shielded(signums=STOP_SIGNALS):
    """Hold back ``signums`` for the block; one that arrived is then delivered to the handler before it.

    An ignored signal stays ignored; one whose handler is the default action (SIGTERM without
    :func:`stop_on_signals`) is raised again after the block, so the process still ends, only later.
    """
    if not _main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum, _frame):
        caught.append(signum)

    old = {}
    for s in signums:
        h = signal.getsignal(s)
        if h not in (signal.SIG_IGN, None):  # None: set outside Python; leave it alone
            old[s] = signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if caught:
            _deliver(caught[0], old[caught[0]])


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)  # raises, e.g. Interrupted or KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)


def watch_parent(parent_pid: int, interval: float = PARENT_POLL_S) -> None:
    """Send SIGTERM to this process when ``parent_pid`` is no longer its parent (the parent died).

    Call it first thing in a child process. The handler for SIGTERM (:func:`stop_on_signals`) then
    records the child's work as interrupted and ends it.
    """
    if sys.platform.startswith("linux"):
        try:  # the kernel signals us the moment the parent exits, however it exits
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError) as e:
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s; polling the parent instead", e)

    def poll() -> None:  # also covers a parent that died before prctl above took effect
        while os.getppid() == parent_pid:
            time.sleep(interval)
        log.debug("parent %d is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=poll, daemon=True, name="watch-parent").start()
