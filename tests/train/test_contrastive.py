"""The contrastive task: InfoNCE and retrieval metrics against hand computations, the encoder path
against an independent one, learning on a learnable pair set, saving, monitors and bad input."""

import json
import math
import random

import pytest
import torch

from lorascale.errors import ConfigError, ConfigErrors
from lorascale.train import TrainConfig, train
from lorascale.train.contrastive import (DEFAULT_TEMPERATURE, batch_embeddings, embed, info_nce, pair_loss,
                                         retrieval_ranks, retrieval_record)

EXACT = 1e-6  # float32 dot products, exp and log of O(1) numbers: ~1e-7 rounding


def word_pairs(path, n=120):
    """A trivially learnable pair set: "find the word xyzabc" -> "xyzabc", 120 random 6-letter words."""
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(n)]
    path.write_text("".join(json.dumps({"query": f"find the word {w}", "positive": w}) + "\n" for w in words))
    return str(path)


PAIRS = dict(model="tiny-bert", task="contrastive", batch_size=8, seq_len=24, val_fraction=0.25, max_val_batches=4)


# ---------------------------------------------------------------------------------------------
# the math, by hand

def test_info_nce_on_a_3x3_similarity_matrix_by_hand():
    # queries e1, e2, e3 and unit positives (1,0,0), (.6,.8,0), (0,.6,.8): S = q·pᵀ has rows
    # [1, .6, 0], [0, .8, .6], [0, 0, .8]; at τ = 0.5 the logits are 2S and
    # ℓ_i = log Σ_j exp(2(S_ij − S_ii)) = log(1 + e^-0.8 + e^-2), log(1 + e^-1.6 + e^-0.4), log(1 + 2e^-1.6)
    q = torch.eye(3)
    p = torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8]])
    by_hand = (math.log(1 + math.exp(-0.8) + math.exp(-2)) + math.log(1 + math.exp(-1.6) + math.exp(-0.4))
               + math.log(1 + 2 * math.exp(-1.6))) / 3
    assert float(info_nce(q, p, 0.5)) == pytest.approx(by_hand, abs=EXACT)

    # the same pairs as encoder output: each row's masked mean is a multiple of its vector (mean pooling
    # then unit length recovers it) and a padding token of 100s must be ignored
    pad = torch.full((3,), 100.0)
    rows = [torch.stack([3 * v, v, pad]) for v in list(q) + list(p)]  # mean of the first two tokens = 2v
    hidden = torch.stack(rows)  # (6, 3, 3): 3 queries then 3 positives
    mask = torch.tensor([[1, 1, 0]] * 6)
    assert torch.allclose(embed(hidden, mask), torch.cat([q, p]), atol=EXACT)
    assert float(pair_loss(hidden, mask, 0.5)) == pytest.approx(by_hand, abs=EXACT)


def test_recall_at_1_and_mrr_from_hand_derived_ranks():
    # S = q·pᵀ with q = I: query 1 ranks its positive first; query 2 second (0.5 > 0.3); query 3 third
    # (0.6, 0.7 > 0.2); query 4 ties 0.4 with positive 2, and a tie counts against it: rank 2
    s = torch.tensor([[0.9, 0.1, 0.2, 0.0],
                      [0.5, 0.3, 0.1, 0.0],
                      [0.6, 0.7, 0.2, 0.1],
                      [0.0, 0.4, 0.0, 0.4]])
    q, p = torch.eye(4), s.T.contiguous()  # q_i·p_j = p_j[i] = S_ij
    assert retrieval_ranks(q, p).tolist() == [1, 2, 3, 2]
    rec = retrieval_record(q, p, DEFAULT_TEMPERATURE)
    assert rec["val_recall_at_1"] == pytest.approx(1 / 4, abs=EXACT)
    assert rec["val_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 2) / 4, abs=EXACT)
    # InfoNCE by hand: S/τ row by row, −log of the diagonal's softmax share (S's rows as Python lists)
    tau, rows = DEFAULT_TEMPERATURE, s.tolist()
    by_hand = sum(math.log(sum(math.exp(x / tau) for x in row)) - row[i] / tau for i, row in enumerate(rows)) / 4
    assert rec["val_loss"] == pytest.approx(by_hand, rel=1e-6)  # float32 logits up to 18 = 0.9/τ: ~1e-7 relative
    # collapsed embeddings tie everywhere: every query ranks last, however the ties would be broken
    same = torch.ones(4, 3) / math.sqrt(3)
    assert retrieval_ranks(same, same).tolist() == [4, 4, 4, 4]
    # an overflowed query embedding (NaN compares False against everything) ranks last, not 0 (MRR 1/0 = inf)
    broken = q.clone()
    broken[3] = math.nan
    assert retrieval_ranks(broken, p).tolist() == [1, 2, 3, 4]
    assert retrieval_record(broken, p, DEFAULT_TEMPERATURE)["val_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4, abs=EXACT)


# ---------------------------------------------------------------------------------------------
# the encoder path

def test_a_padded_pair_batch_embeds_as_separate_forwards(tmp_path):
    """2B rows padded to one width (queries then positives) give each sentence the embedding it has
    when encoded alone, unpadded: the attention mask hides the padding from attention and pooling."""
    from lorascale.train.build import build_run

    built = build_run(TrainConfig(**PAIRS, data=word_pairs(tmp_path / "p.jsonl"), steps=1), quiet=True)
    batch = next(iter(built.train_loader))
    b = len(batch["labels"])
    assert batch["input_ids"].shape[0] == 2 * b and batch["labels"].tolist() == list(range(b))
    model = built.model.eval()
    with torch.no_grad():
        q, p = batch_embeddings(model, batch)
        alone = []
        for ids, m in zip(batch["input_ids"], batch["attention_mask"]):
            n = int(m.sum())
            out = model(input_ids=ids[None, :n], attention_mask=m[None, :n]).last_hidden_state
            alone.append(embed(out, m[None, :n])[0])
    # masked keys get a finite large negative bias, so padded and unpadded attention differ by rounding only
    assert torch.allclose(torch.cat([q, p]), torch.stack(alone), atol=1e-5)
    assert q.shape == (b, built.loaded.width) and not torch.allclose(q, p)


def test_a_few_steps_lower_the_held_out_loss_on_a_learnable_pair_set(tmp_path):
    from lorascale.train.build import build_run
    from lorascale.train.evaluate import evaluate

    cfg = TrainConfig(**PAIRS, data=word_pairs(tmp_path / "p.jsonl"), steps=12, lr=3e-4, out_dir=str(tmp_path / "run"))
    built = build_run(cfg, quiet=True)
    before = evaluate(built.model, built.val_loader, built.task, cfg.max_val_batches, temperature=cfg.temperature)
    r = train(cfg, progress=False, built=built)
    assert r.status == "complete" and r.eval_metric == "val_mrr"
    # measured: held-out InfoNCE 2.64 -> 0.08 and recall@1 0.56 -> 1.0 over the 25 held-out pairs
    assert r.val_loss < before["val_loss"] - 1.0
    assert r.eval_value > before["val_mrr"] + 0.1
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_mrr"] == r.eval_value and last["val_recall_at_1"] > before["val_recall_at_1"]
    assert last["val_loss"] == r.val_loss  # a JSON round trip keeps a float64


def test_the_saved_adapter_reloads_in_plain_peft_with_identical_embeddings(tmp_path):
    from peft import PeftModel

    from lorascale.export import export_adapter
    from lorascale.models import load_model
    from lorascale.train.build import build_run

    cfg = TrainConfig(**PAIRS, data=word_pairs(tmp_path / "p.jsonl"), steps=3, lr=3e-4, out_dir=str(tmp_path / "run"))
    built = build_run(cfg, quiet=True)
    train(cfg, progress=False, built=built)
    batch = next(iter(built.val_loader))
    with torch.no_grad():
        trained = batch_embeddings(built.model.eval(), batch)
        encoder = load_model("tiny-bert", task="contrastive").model
        reloaded = batch_embeddings(PeftModel.from_pretrained(encoder, tmp_path / "run" / "adapter").eval(), batch)
        base = batch_embeddings(load_model("tiny-bert", task="contrastive").model.eval(), batch)
    assert all(torch.equal(a, b) for a, b in zip(trained, reloaded))
    assert (trained[0] - base[0]).abs().max() > 1e-3  # the adapter moved the embeddings: equality means something
    cfg_json = json.loads((export_adapter(tmp_path / "run", tmp_path / "ex") / "adapter_config.json").read_text())
    assert cfg_json["task_type"] == "FEATURE_EXTRACTION"


def test_monitors_and_curvature_measure_a_contrastive_run(tmp_path, capsys):
    from lorascale.cli import main
    from lorascale.diagnostics import SignalDriftMonitor, make_callbacks

    cfg = TrainConfig(**PAIRS, data=word_pairs(tmp_path / "p.jsonl"), steps=3, lr=3e-4, out_dir=str(tmp_path / "run"))
    # the token cap above the batch's ~350 tokens (8 pairs, 16 rows): the signal's alignment with the exact gradient
    monitors = [SignalDriftMonitor(max_tokens=1024), *make_callbacks(["feature-updates"])]
    train(cfg, callbacks=monitors, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step1 = next(x for x in lines if x.get("step") == 1 and "loss" in x)
    # AdamW's first step is sign descent on the zero factor B (A's gradient is 0 there): s·ΔB·A runs down the gradient
    assert step1["sd/all/signal_align"] > 0
    step2 = next(x for x in lines if x.get("step") == 2 and "loss" in x)
    sd = {k: v for k, v in step2.items() if k.startswith("sd/all/")}
    fu = {k: v for k, v in step2.items() if k.startswith("fu/")}
    assert {"sd/all/signal_norm", "sd/all/drift_norm", "sd/all/signal_align"} <= sd.keys() and fu
    assert sd["sd/all/signal_norm"] > 0 and all(math.isfinite(v) for v in (*sd.values(), *fu.values()))
    # the Hessian of InfoNCE on the first 2 held-out pairs, restricted to the adapter factors
    assert main(["diagnose", str(tmp_path / "run"), "--lanczos", "--lanczos-steps", "6", "--hutchinson-samples", "2",
                 "--batch-size", "2", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["curvature"]
    # 2 layers × (query, key, value, attention output: 64→64; intermediate 64→128; output 128→64) at r = 16
    assert c["dim"] == 2 * (4 * 16 * (64 + 64) + 2 * 16 * (64 + 128))
    assert c["lora"]["lambda_max"] > 0 and math.isfinite(c["loss"]) and c["loss"] > 0


# ---------------------------------------------------------------------------------------------
# bad input, before training

def test_fewer_than_two_pairs_per_batch_is_refused(tmp_path):
    with pytest.raises(ConfigErrors) as e:
        TrainConfig(model="tiny-bert", data="dialogue-pairs", task="contrastive", batch_size=1)
    assert [x.field for x in e.value.errors] == ["batch_size"]
    from lorascale.train.build import load_base

    with pytest.raises(ConfigError) as e:  # the task inferred from the data: refused before the model loads
        load_base(TrainConfig(model="no-such-model", data="dialogue-pairs", batch_size=1))
    assert e.value.field == "batch_size" and "negatives" in e.value.message


def test_accumulation_is_refused_because_it_would_shrink_the_negatives(tmp_path):
    with pytest.raises(ConfigErrors) as e:  # both problems at once
        TrainConfig(model="tiny-bert", data="dialogue-pairs", task="contrastive", batch_size=1, grad_accum=4)
    assert [x.field for x in e.value.errors] == ["batch_size", "grad_accum"]
    with pytest.raises(ConfigError) as e:  # the task inferred from the data
        from lorascale.train.build import load_base

        load_base(TrainConfig(model="no-such-model", data="dialogue-pairs", batch_size=8, grad_accum=4))
    assert e.value.field == "grad_accum" and "not the 4·B − 1 of one batch" in e.value.message


@pytest.mark.parametrize("cfg, field, words", [
    (dict(model="tiny-llama", data="dialogue-pairs"), "task", "encoder"),
    (dict(model="tiny-bert", data="dialogues", task="contrastive"), "task", "dialogue-pairs"),
    (dict(model="tiny-bert", data="dialogue-pairs", max_examples=1), "data", "1 training pair"),
])
def test_mismatched_model_data_and_tiny_splits_are_refused(cfg, field, words):
    from lorascale.train.build import build_run

    with pytest.raises(ConfigError) as e:
        build_run(TrainConfig(**cfg, steps=1), quiet=True)
    assert e.value.field == field and words in f"{e.value.message} {e.value.fix}"


def test_the_cli_exits_2_on_bad_contrastive_input(tmp_path, capsys):
    from lorascale.cli import main

    assert main(["train", "--model", "tiny-bert", "--data", "dialogue-pairs", "--task", "contrastive",
                 "--batch-size", "1", "--out", str(tmp_path / "run")]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_minilm_on_dialogue_pairs_improves_held_out_recall(tmp_path):
    """all-MiniLM-L6-v2, LoRA-α at its default learning rate (2e-5), 20 steps of 16 pairs, each held-out turn
    retrieving its reply among 128 held-out replies. Measured once (2 loaded CPU cores, 9.7 min): InfoNCE
    3.109 -> 2.929, MRR 0.592 -> 0.602, recall@1 0.500 -> 0.492 (64 -> 63 of 128 queries). Recall@1 moves
    in steps of 1/128 and did not rise at this budget, so the test asserts the task's eval metric (MRR)
    and the held-out loss, which did, and that recall@1 stays within two queries of where it started."""
    from lorascale.train.build import build_run
    from lorascale.train.evaluate import evaluate

    cfg = TrainConfig(model="minilm-l6", data="dialogue-pairs", batch_size=16, seq_len=64, steps=20, val_fraction=0.2,
                      max_val_batches=8, out_dir=str(tmp_path / "run"))
    built = build_run(cfg, quiet=True)
    before = evaluate(built.model, built.val_loader, built.task, cfg.max_val_batches, temperature=cfg.temperature)
    r = train(cfg, progress=False, built=built)
    after = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    print(f"minilm dialogue-pairs: before {before}, after {after}")
    assert r.status == "complete"
    assert after["val_mrr"] > before["val_mrr"] and after["val_loss"] < before["val_loss"]
    assert after["val_recall_at_1"] >= before["val_recall_at_1"] - 2 / 128
