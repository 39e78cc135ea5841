"""The recipe's pure parts against hand-computed numbers."""

import json
import math
from pathlib import Path

import pytest

from lorascale.train import TrainConfig
from lorascale.train.loop import total_steps
from lorascale.train.monitor import DivergenceGuard, Ema
from lorascale.train.schedule import ceil_of_share, lr_at, warmup_steps


def test_schedule_hand_values():
    T, peak = 100, 1e-3  # W = ceil(0.05·100) = 5
    assert warmup_steps(T, 0.05) == 5
    assert lr_at(0, T, peak) == pytest.approx(peak / 5, rel=1e-9)  # float rounding only
    assert lr_at(4, T, peak) == pytest.approx(peak, rel=1e-12)  # end of warm-up: the peak (rel: rounding only)
    assert lr_at(5, T, peak) == pytest.approx(peak, rel=1e-12)  # decay starts at p = 0 (rel: rounding only)
    # mid-way through the decay, p = (52-5)/(99-5) = 0.5: cos(π/2) = 0 -> 0.1 + 0.9·0.5 = 0.55 of the peak
    assert lr_at(52, T, peak) == pytest.approx(0.55 * peak, rel=1e-9)  # float rounding only
    assert lr_at(99, T, peak) == pytest.approx(0.1 * peak, rel=1e-12)  # the last step runs at 0.1× the peak (rel: rounding only)


def test_a_warm_up_as_long_as_the_run_still_ends_at_the_floor():
    # f = 0.95 of 10 steps: ⌈9.5⌉ = 10 warm-up steps would end at the peak; W = 9 leaves step 9 to the decay
    assert warmup_steps(10, 0.95) == 9
    # rel=1e-9: float rounding only
    assert [lr_at(s, 10, 1.0, warmup_frac=0.95) for s in (0, 8, 9)] == pytest.approx([1 / 9, 1.0, 0.1], rel=1e-9)
    assert warmup_steps(2, 0.05) == 1 and lr_at(1, 2, 1.0) == pytest.approx(0.1, rel=1e-9)  # float rounding only
    assert warmup_steps(1, 0.05) == 1 and lr_at(0, 1, 1.0) == 1.0  # one step: the peak (no step is left to decay)


def test_shares_of_a_budget_count_as_the_decimals_they_are_written_as():
    # 0.07·100 is 7.000000000000001 in floats (0.14·100 and 1.1·100 likewise): ⌈⌉ must not add a step
    assert [warmup_steps(100, f) for f in (0.07, 0.14, 0.17, 0.27, 0.05)] == [7, 14, 17, 27, 5]
    assert warmup_steps(100, 0.071) == 8  # a real fraction of a step still rounds up
    assert total_steps(TrainConfig(steps=None, epochs=1.1), 100) == 110
    assert total_steps(TrainConfig(steps=None, epochs=1.1, grad_accum=2), 100) == 55  # floats: 55.00000000000001
    assert ceil_of_share(1.1, 100, 3) == 37  # ⌈110/3⌉


def test_schedule_is_monotone_after_warmup():
    lrs = [lr_at(s, 200, 1.0) for s in range(200)]
    w = warmup_steps(200, 0.05)
    assert all(a <= b for a, b in zip(lrs[:w], lrs[1:w]))
    assert all(a >= b for a, b in zip(lrs[w:], lrs[w + 1 :]))


def test_ema_matches_recurrence():
    e = Ema(0.1)
    assert e.update(2.0) == 2.0
    assert e.update(1.0) == pytest.approx(0.9 * 2.0 + 0.1 * 1.0, rel=1e-9)  # float rounding only
    assert e.update(1.0) == pytest.approx(0.9 * 1.9 + 0.1, rel=1e-9)  # float rounding only


def test_divergence_guard():
    g = DivergenceGuard(factor=3.0, patience=2, window=3)
    assert not g.check(1, 1.0) and g.reference == 1.0
    assert not g.check(2, 3.5) and g.reference == 2.25  # median(1, 3.5), between 1 and 3 × 1
    assert not g.check(3, 2.0) and g.reference == 2.0  # median(1, 3.5, 2): fixed from here on
    assert not g.check(4, 6.5)  # one step above 3 × 2 = 6: not yet
    assert not g.check(5, 5.0)  # streak resets
    assert not g.check(6, 7.0) and g.reference == 2.0
    assert g.check(7, 8.0) and "3×" in g.reason and "step 7" in g.reason
    assert DivergenceGuard().check(1, math.nan)
    assert DivergenceGuard().check(2, math.inf)  # non-finite: at once, also while the level is being set
    with pytest.raises(ValueError, match="window"):
        DivergenceGuard(window=0)


# SmolLM2 on the chatterbot dialogues at 2e-5 (LoRA α = r), every batch's loss of seeds 0 and 1: with the first
# loss as the level (1.366 / 1.611) these runs were marked diverged at step 6 / 48, with batches at 2–10 nats all through
DIALOGUES = json.loads((Path(__file__).parent / "data" / "dialogue_losses.json").read_text())


@pytest.mark.parametrize("seed", ["seed0", "seed1"])
def test_divergence_guard_ignores_easy_first_batches(seed):
    losses = DIALOGUES[seed]
    g = DivergenceGuard()
    assert len(losses) == 100 and not any(g.check(i + 1, x) for i, x in enumerate(losses))
    first10 = sorted(losses[:10])
    assert g.reference == pytest.approx(min((first10[4] + first10[5]) / 2, 3 * losses[0]), rel=1e-12)  # float rounding
    assert all(g.check(101 + i, 3.01 * g.reference) is (i == 4) for i in range(5))  # above 3× the level, 5 steps running


def test_divergence_guard_level_stays_between_the_first_loss_and_factor_times_it():
    falling = DivergenceGuard(patience=1)  # full-batch: falling from the start, the median below the first
    for i, x in enumerate([1.0, 0.5, 0.4]):
        falling.check(i + 1, x)
    assert falling.reference == 1.0 and not falling.check(4, 2.9) and falling.check(5, 3.1)
    climbing = DivergenceGuard(patience=2)  # an early blow-up: its own losses may raise the level to 3 × 2
    assert not any(climbing.check(i + 1, x) for i, x in enumerate([2.0, 9.0, 10.5, 10.8]))
    assert climbing.reference == 6.0 and not climbing.check(5, 17.9) and climbing.check(6, 18.1) is False
    assert climbing.check(7, 18.2)  # 18.1 and 18.2 > 3 × 6: diverged; 10.8 (5.4× the first) alone is not


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


class TwoProcesses:
    """What accumulation_weights reads of an accelerator on process 0 of 2: the other process has ``other`` targets."""

    num_processes, device = 2, "cpu"

    def __init__(self, other: int):
        self.other = other

    def reduce(self, tensor, reduction):
        assert reduction == "sum"
        return tensor + self.other


def test_accumulation_over_processes_weights_each_target_once():
    """Process 0 has 10 targets, process 1 has 1000. DDP averages the two gradients and the step's loss
    is the mean of the two weighted sums: with w = P·n/N that mean is the mean over all 1010 targets."""
    import torch

    from lorascale.train.evaluate import accumulation_weights

    mine, theirs = [{"labels": torch.arange(10)}], [{"labels": torch.arange(600)}, {"labels": torch.arange(400)}]
    w0, w1 = accumulation_weights(mine, TwoProcesses(1000)), accumulation_weights(theirs, TwoProcesses(10))
    assert w0 == [20 / 1010] and w1 == [1200 / 1010, 800 / 1010]
    loss0, loss1 = [1.0], [3.0, 5.0]  # each micro-batch's mean loss
    step_loss = (sum(w * x for w, x in zip(w0, loss0)) + sum(w * x for w, x in zip(w1, loss1))) / 2
    assert step_loss == pytest.approx((10 * 1.0 + 600 * 3.0 + 400 * 5.0) / 1010, rel=1e-12)  # float rounding only


def test_divergence_guard_state_round_trips_and_old_checkpoints_keep_their_first_loss():
    g = DivergenceGuard(window=3)
    for i, x in enumerate([2.0, 1.0, 4.0, 9.0]):
        g.check(i + 1, x)
    h = DivergenceGuard(window=3)
    h.load_state(g.state())
    assert (h.early, h.reference, h.streak) == ([2.0, 1.0, 4.0], 2.0, 1)
    mid = DivergenceGuard()  # a checkpoint inside the window: the rest of the window still fills on resume
    mid.check(1, 2.0)
    resumed = DivergenceGuard()
    resumed.load_state(mid.state())
    assert not resumed.check(2, 5.0) and resumed.early == [2.0, 5.0] and resumed.reference == 3.5
    old = DivergenceGuard()
    old.load_state({"first": 1.5, "streak": 2})  # a checkpoint written before the early level
    assert old.reference == 1.5 and old.streak == 2 and not old.check(9, 4.0) and old.streak == 0
