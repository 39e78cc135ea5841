"""Held-out evaluation of the rlvr task: sample completions for every held-out problem and score them.

μA App. B.4 reports the mean per-completion reward over 8 sampled completions per test prompt; we also
report accuracy, the format rate and the mean completion length in tokens (μA App. D.2: length tracks
the learning-rate regime).
"""

from __future__ import annotations

import statistics

from .problems import Problem
from .reward import AnswerMatch, is_correct, is_formatted

__all__ = ["evaluate_rlvr", "render_prompts", "eos_token_ids"]


def render_prompts(tokenizer, texts: list[str]) -> list[str]:
    """The prompts as the model sees them: the tokenizer's chat template when it has one, else the text."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
                for t in texts]
    return texts


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a completion, as TRL's GRPOTrainer stops on them: the model's generation
    config's ``eos_token_id`` (an int or a list) and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids = [tokenizer.eos_token_id, *ids]
    return ids


def evaluate_rlvr(model, tokenizer, problems: list[Problem], prompts: list[str], *, generations: int, max_new_tokens: int,
                  temperature: float, format_reward: float, seed: int, batch_prompts: int = 8,
                  match: AnswerMatch = AnswerMatch.TAGGED) -> dict:
    """``val_reward`` (mean of correct + format_reward·formatted), ``val_accuracy``, ``val_format`` and
    ``val_completion_length`` over ``generations`` samples of each held-out problem."""
    import torch

    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # generation continues from the right edge of every prompt
    device = next(model.parameters()).device
    rewards, correct, formatted, lengths = [], [], [], []
    pad = tokenizer.pad_token_id
    stops = eos_token_ids(model, tokenizer)
    chat = bool(getattr(tokenizer, "chat_template", None))
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for i in range(0, len(problems), batch_prompts):
                # tokenised as TRL's GRPOTrainer tokenises training prompts: a rendered chat template carries its
                # own special tokens; plain text gets the tokenizer's (BOS, for many models)
                enc = tokenizer(render_prompts(tokenizer, prompts[i:i + batch_prompts]), return_tensors="pt", padding=True,
                                add_special_tokens=not chat).to(device)
                # sampled as TRL samples in training, whatever the model's generation_config says
                out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0, top_k=0, min_p=None,
                                     repetition_penalty=1.0, max_new_tokens=max_new_tokens, num_return_sequences=generations,
                                     pad_token_id=pad, eos_token_id=stops)
                new = out[:, enc["input_ids"].shape[1]:]  # (B·G, ≤ max_new_tokens)
                for j, ids in enumerate(new.tolist()):
                    p = problems[i + j // generations]
                    n = next((k for k, t in enumerate(ids) if t in stops or t == pad), len(ids))
                    text = tokenizer.decode(ids[:n], skip_special_tokens=True)
                    length = n + (n < len(ids) and ids[n] in stops)  # TRL counts the end-of-sequence token too
                    ok, fmt = is_correct(text, p.answer, match), is_formatted(text)
                    rewards.append(float(ok) + format_reward * fmt)
                    correct.append(float(ok))
                    formatted.append(float(fmt))
                    lengths.append(float(length))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return {"val_reward": statistics.fmean(rewards), "val_accuracy": statistics.fmean(correct),
            "val_format": statistics.fmean(formatted), "val_completion_length": statistics.fmean(lengths)}
