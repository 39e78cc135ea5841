"""The recipe's pure parts against hand-computed numbers."""

import math

import pytest

from lorascale.train.monitor import DivergenceGuard, Ema
from lorascale.train.schedule import lr_at, warmup_steps


def test_schedule_hand_values():
    T, peak = 100, 1e-3  # W = ceil(0.05·100) = 5
    assert warmup_steps(T, 0.05) == 5
    assert lr_at(0, T, peak) == pytest.approx(peak / 5)
    assert lr_at(4, T, peak) == pytest.approx(peak)  # end of warm-up: the peak
    assert lr_at(5, T, peak) == pytest.approx(peak)  # decay starts at p = 0
    # mid-way through the decay, p = (52-5)/(99-5) = 0.5: cos(π/2) = 0 -> 0.1 + 0.9·0.5 = 0.55 of the peak
    assert lr_at(52, T, peak) == pytest.approx(0.55 * peak)
    assert lr_at(99, T, peak) == pytest.approx(0.1 * peak)  # the last step runs at 0.1× the peak


def test_schedule_is_monotone_after_warmup():
    lrs = [lr_at(s, 200, 1.0) for s in range(200)]
    w = warmup_steps(200, 0.05)
    assert all(a <= b for a, b in zip(lrs[:w], lrs[1:w]))
    assert all(a >= b for a, b in zip(lrs[w:], lrs[w + 1 :]))


def test_ema_matches_recurrence():
    e = Ema(0.1)
    assert e.update(2.0) == 2.0
    assert e.update(1.0) == pytest.approx(0.9 * 2.0 + 0.1 * 1.0)
    assert e.update(1.0) == pytest.approx(0.9 * 1.9 + 0.1)


def test_divergence_guard():
    g = DivergenceGuard(factor=3.0, patience=2)
    assert not g.check(1, 1.0) and not g.check(2, 3.5) and not g.check(3, 2.0)  # the first 3 set the level
    assert g.reference == 2.0  # max(first 1.0, median(1.0, 3.5, 2.0) = 2.0)
    assert not g.check(4, 6.5)  # one step above 3 × 2 = 6: not yet
    assert not g.check(5, 5.0)  # streak resets
    assert not g.check(6, 7.0)
    assert g.check(7, 8.0) and "3×" in g.reason and "step 7" in g.reason
    assert DivergenceGuard().check(1, math.nan)
    assert DivergenceGuard(window=3).check(2, math.inf)  # non-finite: at once, also while the level is being set


def test_divergence_guard_ignores_one_low_first_batch():
    # the chatterbot dialogues at 2e-5: first batch 1.366, then batches near 4–5 (what marked runs diverged
    # when the level was the first loss alone: 3 × 1.366 = 4.1)
    losses = [1.366, 4.8, 4.4, 5.1, 5.0, 4.9, 5.099, 4.7]
    g = DivergenceGuard()
    assert not any(g.check(i + 1, x) for i, x in enumerate(losses))
    assert g.reference == 4.4  # the median of (1.366, 4.8, 4.4)
    assert all(g.check(9 + i, 13.5) is (i == 4) for i in range(5))  # 13.5 > 3 × 4.4 five steps running


def test_divergence_guard_is_no_stricter_than_the_first_loss_when_the_loss_falls():
    g = DivergenceGuard(patience=1)
    for i, x in enumerate([1.0, 0.5, 0.4]):  # full-batch: falling from the start, median 0.5 < first
        g.check(i + 1, x)
    assert g.reference == 1.0 and not g.check(4, 2.9) and g.check(5, 3.1)


def test_accumulated_gradient_equals_one_big_batch(tiny_llama):
    """Two micro-batches with different numbers of completion targets, weighted by accumulation_weights,
    give the gradient of the concatenated batch (HF's loss is a per-batch mean)."""
    import torch

    from lorascale.train.evaluate import accumulation_weights

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 250, (4, 12), generator=g)
    labels = ids.clone()
    labels[:2, :9] = -100  # first micro-batch: short completions (targets at positions 9..11: 3 each)
    labels[2:, :3] = -100  # second: long completions (positions 3..11: 9 each)
    model = tiny_llama.model
    micro = [{"input_ids": ids[:2], "labels": labels[:2]}, {"input_ids": ids[2:], "labels": labels[2:]}]
    weights = accumulation_weights(micro)
    assert weights == [6 / 24, 18 / 24]
    for b, w in zip(micro, weights):
        (model(**b).loss * w).backward()
    accumulated = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(input_ids=ids, labels=labels).loss.backward()
    for a, b in zip(accumulated, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)  # float32 sums in a different order


def test_divergence_guard_state_round_trips_and_old_checkpoints_keep_their_first_loss():
    g = DivergenceGuard()
    for i, x in enumerate([2.0, 1.0, 4.0, 9.0]):
        g.check(i + 1, x)
    h = DivergenceGuard()
    h.load_state(g.state())
    assert (h.early, h.reference, h.streak) == ([2.0, 1.0, 4.0], 2.0, 1)
    old = DivergenceGuard()
    old.load_state({"first": 1.5, "streak": 2})  # a checkpoint written before the early level
    assert old.reference == 1.5 and old.streak == 2 and not old.check(9, 4.0) and old.streak == 0
