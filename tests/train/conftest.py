"""Fixtures shared by the training-loop tests."""

import math

import pytest


@pytest.fixture
def poison_gradients_at(monkeypatch):
    """``poison(call)``: Accelerate's gradient clip sees NaN gradients at its ``call``-th use (counted from 0),
    as after a backward that overflowed while the loss stayed finite."""
    from accelerate import Accelerator

    clip, calls = Accelerator.clip_grad_norm_, [0]

    def poison(call: int) -> None:
        def poisoned(self, parameters, max_norm, *a, **kw):
            parameters = list(parameters)
            if calls[0] == call:
                next(p for p in parameters if p.grad is not None).grad.fill_(math.nan)
            calls[0] += 1
            return clip(self, parameters, max_norm, *a, **kw)

        monkeypatch.setattr(Accelerator, "clip_grad_norm_", poisoned)

    return poison
