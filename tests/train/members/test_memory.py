"""The pack memory estimate: the formula by hand, and members_that_fit's arithmetic."""

import pytest

from lorascale.train import TrainConfig
from lorascale.train.members import MemoryEstimate, estimate_memory, members_that_fit
from lorascale.train.members.memory import estimate_for


def test_estimate_by_hand():
    e = estimate_memory(n_base_params=1000, n_trainable=10, batch_size=2, seq_len=4, hidden=8, n_layers=3, n_heads=2,
                        vocab=5, calibration=1.0)
    tokens = 8
    per_layer = tokens * (17 * 8 + 2.5 * 2 * 4) * 4  # 17 hidden vectors + 2.5 score values per head and key, fp32
    assert e.base_bytes == 4000
    assert e.member_bytes == 16 * 10 + 3 * per_layer + 3 * tokens * 5 * 4
    assert e.total(3) == 4000 + 3 * e.member_bytes


def test_calibration_matches_the_measured_growth_per_member():
    """CALIBRATION is the measured working memory's growth per member over the uncalibrated formula's,
    both read from the committed CPU bench (least-squares slopes over K = 1, 4, 8)."""
    import json
    from pathlib import Path

    from lorascale.train.members.memory import CALIBRATION

    rows = json.loads((Path(__file__).parents[3] / "docs/results/members/bench-cpu-minilm.json").read_text())

    def slope(key):
        ks, ys = [r["k"] for r in rows], [r["pack"][key] for r in rows]
        mk, my = sum(ks) / len(ks), sum(ys) / len(ys)
        return sum((k - mk) * (y - my) for k, y in zip(ks, ys)) / sum((k - mk) ** 2 for k in ks)

    # the bench recorded the formula before calibration; rank-16 MiniLM's Adam state (≈ 1%) is scaled too here
    assert CALIBRATION == pytest.approx(slope("work_mb") / slope("estimate_mb"), rel=0.02)


def test_members_that_fit():
    e = MemoryEstimate(base_bytes=100, member_bytes=30)
    assert members_that_fit(1000, e, headroom=1.0) == 30  # (1000 - 100) / 30
    assert members_that_fit(1000, e, headroom=0.5) == 13  # (500 - 100) / 30 = 13.3
    assert members_that_fit(1000, e, headroom=1.0, max_members=8) == 8
    assert members_that_fit(90, e, headroom=1.0) == 0  # not even the base fits
    with pytest.raises(AssertionError):
        members_that_fit(1000, e, headroom=1.5)


def test_estimate_reads_model_shapes(tiny_llama, tiny_bert):
    cfg = TrainConfig(batch_size=2, seq_len=16)
    lm = estimate_for(tiny_llama.model, 1000, cfg)
    cls = estimate_for(tiny_bert.model, 1000, cfg)
    assert lm.base_bytes == 4 * sum(p.numel() for p in tiny_llama.model.parameters())
    # by hand from each model's shapes: 2×16 = 32 tokens; per layer 17 hidden vectors and 2.5 scores per head
    # per key (16 keys), float32; the LM also keeps 3 float32 copies of its per-token logits (vocab 259), the
    # classifier none; AdamW's 16 bytes per trainable parameter; all activations scaled by the calibration
    from lorascale.train.members.memory import CALIBRATION

    for est, model, vocab in ((lm, tiny_llama.model, 259), (cls, tiny_bert.model, 0)):
        c = model.config
        per_layer = 32 * (17 * c.hidden_size + 2.5 * c.num_attention_heads * 16) * 4
        assert est.member_bytes == int(16 * 1000 + CALIBRATION * (c.num_hidden_layers * per_layer + 3 * 32 * vocab * 4))
