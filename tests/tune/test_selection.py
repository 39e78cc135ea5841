"""The one-standard-error pick and the EMA's noise, by hand."""

import math
import random

import pytest

from lorascale.tune.selection import ema_noise, one_se_choice


def _ema_curve(losses, beta):
    e, curve = math.nan, []
    for t, x in enumerate(losses, start=1):
        e = x if math.isnan(e) else (1 - beta) * e + beta * x
        curve.append((t, e))
    return curve


def test_ema_noise_recovers_the_step_losses_spread():
    # constant-mean losses with a known spread: over the last third, stdev(ℓ)·√(β/(2−β)), with the
    # step losses given back exactly by the EMA recursion (1e-9: float round-off of the inversion)
    rng = random.Random(0)
    losses = [2.0 + rng.gauss(0, 0.2) for _ in range(150)]
    beta = 0.1
    got = ema_noise(_ema_curve(losses, beta), beta)
    tail = losses[100:]  # steps 101 … 150: after 2/3 of 150
    import statistics
    assert got == pytest.approx(statistics.stdev(tail) * math.sqrt(beta / (2 - beta)), rel=1e-9)


def test_ema_noise_needs_consecutive_steps():
    curve = [(s, 1.0 + 0.01 * s) for s in range(10, 160, 10)]  # logged every 10 steps: losses not recoverable
    assert ema_noise(curve, 0.1) is None
    assert ema_noise([], 0.1) is None


def test_one_se_choice_takes_the_gentlest_within_one_error_of_the_best():
    score = {0: 1.60, 1: 1.615, 2: 1.70, 3: 1.58}
    size = {0: 4.0, 1: 1.0, 2: 0.25, 3: 16.0}
    # best is 3 (1.58 ± 0.04): 0 (1.60) and 1 (1.615) are within 1.62, 2 (1.70) is not; 1 is the gentlest
    assert one_se_choice([0, 1, 2, 3], score.get, lambda i: 0.04, size.get) == 1
    assert one_se_choice([0, 1, 2, 3], score.get, lambda i: 0.01, size.get) == 3  # only the best itself
    assert one_se_choice([0, 1, 2, 3], score.get, lambda i: None, size.get) == 3  # no error known: plain min
    assert one_se_choice([0, 1, 2, 3], {0: 1.6, 1: math.inf, 2: 1.6, 3: 1.6}.get, lambda i: 0.0, size.get) == 2


def test_a_stage_picks_the_lower_rate_when_the_higher_wins_only_by_noise():
    """The MiniLM headline's probe, in miniature: 2^−10 ends 0.016 below 2^−12, inside the EMA's noise
    (σ_ℓ = 0.2 → ±0.046), so the stage answers 2^−12; with the noise 20× smaller it answers 2^−10."""
    from lorascale.tune.search import Candidate, _pick

    def cand(lr, final, sigma, seed):
        rng = random.Random(seed)
        losses = [final + rng.gauss(0, sigma) for _ in range(60)]
        curve = _ema_curve(losses, 0.1)
        return Candidate(0, lr, 1.0, "complete", 60, None, curve[-1][1], curve=[list(p) for p in curve])

    for sigma, expected in ((0.2, 2.0**-12), (0.01, 2.0**-10)):
        low, high = cand(2.0**-12, 1.615, sigma, 1), cand(2.0**-10, 1.599, sigma, 2)
        high.final_ema_loss = low.final_ema_loss - 0.016  # the measured gap, whatever the draws
        cut = Candidate(0, 2.0**-14, 1.0, "complete", 20, 20, 1.5)  # cut at a rung: never the answer
        assert [low, high, cut][_pick([low, high, cut], 60, 0.1, fallback=-1)].lr == expected
