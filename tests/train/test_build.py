"""Assembling a run: activation (gradient) checkpointing changes memory, never the numbers."""

import pytest
import torch

from lorascale.train import TrainConfig
from lorascale.train.build import build_run

TINY = dict(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=64, max_examples=32, max_val_batches=1, lr=1e-3)


def loss_and_grads(cfg: TrainConfig):
    """One forward/backward on the run's first training batch; how often the first MLP ran."""
    built = build_run(cfg, quiet=True)
    model = built.model.train()
    calls = []
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    mlp = base.model.layers[0].mlp
    mlp.register_forward_pre_hook(lambda *a: calls.append(1))  # a pre-hook: the recompute stops early, mid-MLP
    batch = next(iter(built.train_loader))
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads, len(calls)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_checkpointed_loss_and_gradients_equal_the_plain_run(finetune):
    extra = {} if finetune == "lora" else {"finetune": "full"}
    loss, grads, calls = loss_and_grads(TrainConfig(**TINY, **extra))
    loss_ck, grads_ck, calls_ck = loss_and_grads(TrainConfig(**TINY, **extra, gradient_checkpointing=True))
    assert (calls, calls_ck) == (1, 2)  # checkpointing is on: the layer's forward runs again in the backward pass
    assert set(grads_ck) == set(grads) and len(grads) > 0
    assert loss_ck == loss  # the forward pass is the same computation
    for name, g in grads.items():
        # the recomputed forward replays the same CPU kernels on the same inputs: the gradients are bitwise equal
        assert torch.equal(grads_ck[name], g), name
    if finetune == "lora":
        assert any(g.abs().sum() > 0 for n, g in grads_ck.items() if "layers.0." in n)  # the first layer's adapters learn


def test_a_sequence_longer_than_the_models_positions_is_refused_before_the_run(tmp_path):
    from lorascale.errors import ConfigError, ConfigErrors
    from lorascale.train import TrainConfig
    from lorascale.train.build import check_run, load_base

    cfg = TrainConfig(model="tiny-bert", data="shakespeare-genre", seq_len=1024, out_dir=str(tmp_path / "r"))
    with pytest.raises(ConfigError) as e:  # tiny-bert's absolute position table has 512 rows
        load_base(cfg)
    assert e.value.field == "seq_len" and "exceed tiny-bert's 512 positions" in e.value.message
    with pytest.raises(ConfigErrors) as es:  # check_run: with the adapter's problem, at once
        check_run(cfg.replace(targets=["nope_proj"]))
    assert [x.field for x in es.value.errors] == ["seq_len", "targets"]
    assert es.value.errors[0].message == e.value.message
    assert check_run(cfg.replace(seq_len=512)) == "classification"
    # settings that only stand in for refused ones are not judged: the task is still the data's
    assert check_run(cfg.replace(targets=["nope_proj"]), unchecked={"seq_len", "rank"}) == "classification"
    assert check_run(cfg, unchecked={"data"}) is None


def test_roberta_counts_its_positions_from_past_the_padding_index():
    from types import SimpleNamespace

    from transformers import RobertaConfig

    from lorascale.errors import ConfigError
    from lorascale.train import TrainConfig
    from lorascale.train.build import check_positions

    loaded = SimpleNamespace(model=SimpleNamespace(config=RobertaConfig(max_position_embeddings=514)))  # roberta-base; pad 1
    check_positions(TrainConfig(model="roberta", seq_len=512), loaded)  # positions 2 … 513: 512 usable
    with pytest.raises(ConfigError, match="513 tokens exceed roberta's 512 positions"):
        check_positions(TrainConfig(model="roberta", seq_len=513), loaded)
