"""Stop signals as Ctrl-C: SIGTERM raises Interrupted once, a shielded block is never cut in half."""

import os
import signal

import pytest

from lorascale.interrupts import Interrupted, describe, exit_code, shielded, stop_on_signals


def test_sigterm_raises_interrupted_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
    e = info.value
    assert isinstance(e, KeyboardInterrupt)  # every `except KeyboardInterrupt` records it as interrupted
    assert (e.signum, exit_code(e), describe(e)) == (signal.SIGTERM, 128 + 15, "SIGTERM")
    assert exit_code(KeyboardInterrupt()) == 130 and describe(KeyboardInterrupt()) == "Ctrl-C"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_while_stopping_is_ignored():
    seen = []
    with stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Interrupted as e:
            seen.append(e.signum)
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during the clean-up
            seen.append("clean-up done")
    assert seen == [signal.SIGTERM, "clean-up done"]


def test_a_signal_inside_a_shielded_block_arrives_when_it_ends():
    steps = []
    with pytest.raises(Interrupted) as info, stop_on_signals():
        with shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("after the signal")  # the block goes on to its end
        steps.append("after the block")  # never: the signal is delivered as the block ends
    assert steps == ["after the signal"] and info.value.signum == signal.SIGTERM


def test_shielded_leaves_an_ignored_signal_ignored():
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with shielded():
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_child_stops_when_its_parent_dies_by_polling_where_prctl_is_missing(tmp_path):
    """The fallback of watch_parent (no PR_SET_PDEATHSIG, as on macOS): the child's poll sees the
    parent gone, sends itself SIGTERM and stops through its handler, within a few poll intervals."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    child = f"""
import os, sys, time
from lorascale.interrupts import Interrupted, stop_on_signals, watch_parent
platform, sys.platform = sys.platform, "darwin"  # no prctl: only the poll can notice
watch_parent(os.getppid(), interval=0.05)
sys.platform = platform
try:
    with stop_on_signals():
        open({str(tmp_path / 'pid')!r}, "w").write(str(os.getpid()))
        time.sleep(60)
except Interrupted as e:
    open({str(tmp_path / 'stopped')!r}, "w").write(str(e))
"""
    parent = f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {child!r}], env=dict(os.environ, PYTHONPATH={str(src)!r}))
while not os.path.exists({str(tmp_path / 'pid')!r}):
    time.sleep(0.01)
os._exit(0)  # gone without a word to its child, as after kill -9
"""
    subprocess.run([sys.executable, "-c", parent], timeout=60, check=True)
    t0 = time.monotonic()
    while not (tmp_path / "stopped").exists():
        assert time.monotonic() - t0 < 10, "the orphan never noticed"
        time.sleep(0.02)
    time.sleep(0.1)  # the child writes the file as it stops: let the write land
    assert (tmp_path / "stopped").read_text() == "SIGTERM"
