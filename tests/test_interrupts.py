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
