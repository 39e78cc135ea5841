"""Which configs may share a pack: pure rules, every problem named by its field."""

import pytest

from lorascale.errors import ConfigErrors
from lorascale.train import TrainConfig
from lorascale.train.members import PACK_FIELDS, member_names, pack_errors, pack_key, solo_reason

BASE = TrainConfig(model="tiny-llama", data="shakespeare", steps=10, lr=1e-3)

# a value for each shared field that differs from BASE's and is valid on its own
OTHER = dict(model="tiny-bert", data="kjv", task="lm", steps=20, epochs=1.0, batch_size=4, grad_accum=2, seq_len=64,
             max_examples=100, val_fraction=0.1, max_val_batches=3, eval_every=5, precision="fp32",
             gradient_checkpointing=True)


def test_every_shared_field_has_a_test_value():
    assert set(OTHER) == set(PACK_FIELDS)


def test_member_fields_may_differ():
    member = BASE.replace(rank=64, rule="mua", init="A", gamma=1.0, alpha=2.0, lr=3e-2, head_lr=1e-2, seed=9,
                          targets=("q_proj",), weight_decay=0.0, beta1=0.8, grad_clip=0.5, warmup_frac=0.2,
                          min_lr_ratio=0.0, ema_beta=0.5, diverge_factor=5.0, log_every=3, out_dir="x", save_model=False)
    assert pack_key(member) == pack_key(BASE)
    assert pack_errors([BASE, member]) == []


@pytest.mark.parametrize("field", PACK_FIELDS)
def test_shared_fields_must_be_equal(field):
    changes = {field: OTHER[field]}
    if field == "epochs":
        changes["steps"] = None
    other = BASE.replace(**changes)
    assert pack_key(other) != pack_key(BASE)
    fields = {e.field for e in pack_errors([BASE, other])}
    assert field in fields


def test_full_finetuning_and_shared_out_dirs_are_refused():
    assert pack_key(BASE.replace(finetune="full")) != pack_key(BASE)  # a sweep never groups it with LoRA points
    errs = pack_errors([BASE.replace(out_dir="a"), BASE.replace(finetune="full", out_dir="a")])
    assert [e.field for e in errs] == ["finetune", "out_dir"]
    assert "member 1" in errs[0].message


def test_invalid_members_cannot_be_made_and_empty_packs_are_refused():
    with pytest.raises(ConfigErrors) as e:  # a TrainConfig validates itself: a pack only sees valid members
        BASE.replace(rank=0)
    assert [x.field for x in e.value.errors] == ["rank"]
    assert [e.field for e in pack_errors([])] == ["members"]


def test_member_names_never_contain_each_other():
    # PEFT picks an adapter's tensors by substring: "member1" would also take "member10"'s
    for k in (1, 2, 11, 101):
        names = member_names(k)
        assert len(set(names)) == k
        assert not any(a != b and a in b for a in names for b in names)


@pytest.mark.parametrize("method", ["dora", "pissa", "olora"])
def test_methods_the_batched_engine_cannot_compute_train_alone(method):
    other = BASE.replace(method=method)
    field, why, fix = solo_reason(other)
    assert field == "method" and method in why and "train()" in fix
    assert [e.field for e in pack_errors([BASE, other])] == ["method"]


def test_loraplus_and_plain_lora_share_a_pack():
    plus = BASE.replace(method="loraplus", loraplus_lr_ratio=4)
    assert solo_reason(plus) is None and solo_reason(BASE) is None
    assert pack_key(plus) == pack_key(BASE) and pack_errors([BASE, plus]) == []
    assert solo_reason(BASE.replace(finetune="full"))[0] == "finetune"
