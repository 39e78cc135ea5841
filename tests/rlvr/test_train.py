"""GRPO runs end to end on tiny-llama through TRL (a few CPU steps); the real runs are opt-in."""

import json

import pytest
import torch

from lorascale.cli import main
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.train import TrainConfig, lr_at, train
from lorascale.train.members.pack import check_pack, packable

pytest.importorskip("trl")

TINY = dict(model="tiny-llama", data="arithmetic", steps=4, batch_size=2, num_generations=2, max_completion_length=6,
            train_problems=8, val_problems=3, eval_generations=2, lr=1e-3)


def _lines(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_cli_rlvr_run_follows_the_recipe(tmp_path, one_thread, caplog):
    out = tmp_path / "run"
    flags = ["train", "--task", "rlvr", "--model", "tiny-llama", "--data", "arithmetic", "--steps", "4", "--batch-size", "2",
             "--num-generations", "2", "--max-completion-length", "6", "--train-problems", "8", "--val-problems", "3",
             "--eval-generations", "2", "--lr", "1e-3", "--out", str(out)]
    assert main(flags) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 4 and summary["eval_metric"] == "val_reward"
    # a random tiny model never writes <answer>…</answer> in 6 tokens (below): held out, too, nothing scores
    assert summary["val_reward"] == 0.0 and summary["val_accuracy"] == 0.0 and summary["val_format"] == 0.0
    assert 1.0 <= summary["val_completion_length"] <= 6.0  # at least one token, at most max_completion_length
    steps = [x for x in _lines(out) if "reward" in x]
    assert [x["step"] for x in steps] == [1, 2, 3, 4]
    for x in steps:  # TRL's trainer follows lorascale's schedule through schedule_callback
        assert x["lr"] == pytest.approx(1e-3 * lr_at(x["step"] - 1, 4, 1.0, 0.05, 0.1), rel=1e-9)  # rounding only
        assert x["loss"] == -x["reward"]  # the loss an rlvr sweep selects on is the negative reward
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "adapter" / "lorascale.json").exists()
    # a random tiny model never writes <answer>…</answer> in 6 tokens: every reward is 0, so every step has
    # zero spread and no gradient; the run counts those steps and warns after the third
    assert all(x["reward"] == 0.0 and x["reward_std"] == 0.0 for x in steps)
    assert summary["no_signal_steps"] == 4
    assert sum("GRPO's advantages are 0 and no gradient flows" in r.getMessage() for r in caplog.records) == 1


def test_groups_that_agree_within_but_differ_between_give_no_signal(tmp_path, monkeypatch, one_thread):
    """A reward fixed by the problem (its answer) is the same for every completion of a prompt: each group
    has zero spread, so zero advantages and no gradient, though the batch's rewards differ (TRL ≥ 1.0 logs
    that batch spread as reward_std). Every step is a no-signal step."""
    import lorascale.rlvr.reward as reward

    def by_answer(**_):
        def answer_value(completions, answer, **_):
            return [float(a) for a in answer]

        return [answer_value]

    monkeypatch.setattr(reward, "trl_reward_functions", by_answer)
    res = train(TrainConfig(**TINY, out_dir=str(tmp_path / "r")), progress=False)
    lines = [x for x in _lines(tmp_path / "r") if "reward" in x]
    assert res.status == "complete" and all(x["frac_reward_zero_std"] == 1 for x in lines)
    assert any(x["reward_std"] > 0 for x in lines)  # two prompts with different answers in one step
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["no_signal_steps"] == len(lines) == 4


def test_grpo_gradient_reaches_the_adapter(tmp_path, monkeypatch, one_thread):
    """With a reward that varies within a group, GRPO's advantage is non-zero, so the adapter's B
    (zero at init under PEFT's default) must move; with the constant reward of an untrained model it cannot."""
    import lorascale.rlvr.reward as reward

    def by_length(**_):  # reward = completion length: varies across sampled completions
        def length(completions, **_):
            return [float(len(c)) for c in completions]

        return [length]

    monkeypatch.setattr(reward, "trl_reward_functions", by_length)
    res = train(TrainConfig(**TINY, out_dir=str(tmp_path / "r")), progress=False)
    assert res.status == "complete"
    lines = [x for x in _lines(tmp_path / "r") if "reward" in x]
    assert any(x["reward_std"] > 0 for x in lines) and any(x["grad_norm"] > 0 for x in lines)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["no_signal_steps"] == sum(x["frac_reward_zero_std"] == 1 for x in lines) < 4
    from safetensors.torch import load_file

    tensors = load_file(tmp_path / "r" / "adapter" / "adapter_model.safetensors")
    b = [t for k, t in tensors.items() if "lora_B" in k]
    assert b and max(float(t.abs().max()) for t in b) > 0  # PEFT initialises B = 0: only a gradient step moves it
    assert res.final_ema_loss < 0  # negative reward: lengths are positive


def test_last_number_matching_reaches_the_reward_and_the_prompt(tmp_path, monkeypatch, one_thread):
    import lorascale.rlvr.reward as reward

    seen = {}
    real = reward.trl_reward_functions

    def spy(**kw):
        seen["match"] = kw.get("match")
        correctness, fmt = real(**kw)

        def watched(prompts, completions, answer, **more):
            seen["prompt"] = prompts[0] if isinstance(prompts[0], str) else prompts[0][-1]["content"]
            return correctness(completions=completions, answer=answer)

        return [watched, fmt]

    monkeypatch.setattr(reward, "trl_reward_functions", spy)
    cfg = TrainConfig(**{**TINY, "data": "sums", "steps": 1, "answer_match": "last-number"}, out_dir=str(tmp_path / "r"))
    assert train(cfg, progress=False).status == "complete"
    assert seen["match"] == "last-number" and "final answer as a number" in seen["prompt"] and "<answer>" not in seen["prompt"]
    assert json.loads((tmp_path / "r" / "config.json").read_text())["answer_match"] == "last-number"


def test_rlvr_bad_input_before_any_model_loads(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question": "1+1?"}\n')
    with pytest.raises(ConfigErrors) as e:
        train(TrainConfig(**{**TINY, "data": str(bad), "task": "rlvr"}, out_dir=str(tmp_path / "x")), progress=False)
    assert [x.field for x in e.value.errors] == ["data"] and "missing column 'answer'" in e.value.errors[0].message
    assert not (tmp_path / "x").exists()  # refused before the run directory is made
    with pytest.raises(ConfigErrors) as e:
        train(TrainConfig(**{**TINY, "batch_size": 16}, out_dir=str(tmp_path / "y")), progress=False)
    assert [x.field for x in e.value.errors] == ["batch_size"]
    n = TINY["train_problems"]  # TRL's sampler takes batch_size × grad_accum distinct prompts a step, or no batch at all
    with pytest.raises(ConfigErrors) as e:
        train(TrainConfig(**{**TINY, "batch_size": n // 2, "grad_accum": 4}, out_dir=str(tmp_path / "y")), progress=False)
    assert [x.field for x in e.value.errors] == ["batch_size"] and "× grad_accum 4" in e.value.errors[0].message
    with pytest.raises(ConfigErrors) as e:  # GRPO counts steps: an epochs budget ran one step before
        train(TrainConfig(**{**TINY, "steps": None, "epochs": 2.0}, out_dir=str(tmp_path / "y")), progress=False)
    assert [x.field for x in e.value.errors] == ["epochs"] and e.value.errors[0].fix == "give `steps` instead"
    with pytest.raises(ConfigErrors) as e:  # settings an rlvr run would ignore are refused, all at once
        train(TrainConfig(**{**TINY, "eval_every": 2, "log_every": 5}, out_dir=str(tmp_path / "y")), progress=False)
    assert [x.field for x in e.value.errors] == ["eval_every", "log_every"]
    assert not (tmp_path / "y").exists()
    with pytest.raises(ConfigError) as e:
        train(TrainConfig(**{**TINY, "task": "lm"}), progress=False)  # a problem set is not text
    assert e.value.field == "task" and "rlvr" in e.value.fix
    with pytest.raises(ConfigErrors) as e:
        TrainConfig(**{**TINY, "num_generations": 1})
    assert e.value.errors[0].field == "num_generations"


def test_an_rlvr_run_never_writes_into_a_folder_of_other_files(tmp_path, capsys):
    """RLVR skipped train's fresh-folder check and wrote its config.json over the user's."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("the user's own")
    with pytest.raises(ConfigError) as e:
        train(TrainConfig(**TINY, out_dir=str(mine)), progress=False)
    assert e.value.field == "out_dir" and "folder of other files" in e.value.message
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (mine / "config.json").read_text() == "the user's own"
    assert main(["train", "--task", "rlvr", "--model", "tiny-llama", "--data", "arithmetic", "--steps", "1",
                 "--out", str(mine)]) == 2
    assert "error: --out: " in capsys.readouterr().err and [p.name for p in mine.iterdir()] == ["config.json"]


def test_rlvr_runs_are_never_members():
    rl = TrainConfig(**TINY)
    assert not packable(rl) and packable(TrainConfig(model="tiny-llama", data="shakespeare"))
    with pytest.raises(ConfigErrors) as e:
        check_pack([rl, rl.replace(seed=1)])
    assert {x.field for x in e.value.errors} == {"task"}


@pytest.mark.slow
def test_smollm2_grpo_few_steps(tmp_path):
    """SmolLM2-135M-Instruct with its chat template: 3 GRPO steps, then the held-out evaluation."""
    cfg = TrainConfig(model="smollm2-135m", data="arithmetic", steps=3, batch_size=2, num_generations=4,
                      max_completion_length=48, train_problems=16, val_problems=4, eval_generations=2,
                      out_dir=str(tmp_path / "s"))
    res = train(cfg, progress=False)
    assert res.status == "complete" and res.summary["val_completion_length"] > 1
    assert torch.isfinite(torch.tensor(res.final_ema_loss))


def test_held_out_sampling_stops_where_trls_does_and_counts_the_end_token():
    from types import SimpleNamespace

    from lorascale.rlvr.evaluate import eos_token_ids

    tok = SimpleNamespace(eos_token_id=2)
    chat_model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 9]))  # e.g. Llama-3's <|eot_id|>
    assert eos_token_ids(chat_model, tok) == [2, 7, 9]  # TRL's order: the tokenizer's first
    assert eos_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=2)), tok) == [2]
    assert eos_token_ids(SimpleNamespace(), tok) == [2]


def test_held_out_completion_length_counts_the_end_token_as_trl_does():
    import torch

    from lorascale.rlvr.evaluate import evaluate_rlvr
    from lorascale.rlvr.problems import Problem
    from lorascale.tiny_models import byte_tokenizer

    from tokenizers import processors

    tok = byte_tokenizer()
    # a tokenizer that adds BOS to plain text (as Llama-2's does), and has no chat template
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    five = tok("<think>a</think><answer>5</answer>", add_special_tokens=False)["input_ids"]
    seen = {}

    class Fake(torch.nn.Module):  # generates a fixed completion: the first sample ends with EOS, the second runs out
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, attention_mask, **kw):
            seen.update(kw, prompt=input_ids[0].tolist())
            rows = [five + [tok.eos_token_id, tok.pad_token_id], five + [ord("x") % 200 + 3] * 2]
            return torch.cat([input_ids.repeat(2, 1), torch.tensor(rows)], dim=1)

    out = evaluate_rlvr(Fake(), tok, [Problem("q", 5)], ["q"], generations=2, max_new_tokens=len(five) + 2,
                        temperature=1.0, format_reward=0.1, seed=0)
    # TRL's completion_length counts tokens up to and including the first EOS: len(five) + 1; the other ran out
    assert out["val_completion_length"] == ((len(five) + 1) + (len(five) + 2)) / 2
    assert out["val_accuracy"] == 1.0 and out["val_format"] == 0.5  # the second's trailing "xx" breaks the format
    assert seen["repetition_penalty"] == 1.0 and seen["eos_token_id"] == [tok.eos_token_id]
    # no chat template: the prompt is tokenised with the tokenizer's special tokens, as TRL's trainer does
    assert seen["prompt"] == [tok.bos_token_id, *tok("q", add_special_tokens=False)["input_ids"]]


def test_a_failure_while_trls_trainer_is_built_is_recorded_failed(tmp_path, monkeypatch, one_thread):
    """It used to leave the run's summary saying "running": the trainer was built outside the recording try."""
    import trl

    def refuse(*_, **__):
        raise ValueError("per_device_train_batch_size must be divisible by num_generations")  # as TRL checks

    monkeypatch.setattr(trl, "GRPOTrainer", refuse)
    with pytest.raises(ValueError, match="divisible"):
        train(TrainConfig(**TINY, out_dir=str(tmp_path / "r")), progress=False)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps_done"] == 0 and "divisible" in summary["message"]
