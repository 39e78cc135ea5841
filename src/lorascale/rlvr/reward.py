"""The verifiable reward of μA App. B.4: +1 for the right final answer, +0.1 for the format.

A completion is well formatted when it is reasoning inside ``<think>...</think>`` followed by the final
answer inside ``<answer>...</answer>``. Where the answer is read (:class:`AnswerMatch`):

* ``tagged`` (μA's protocol, the default): the last number in the last ``<answer>`` block (thousands commas
  and surrounding text ignored: "The answer is 1,234." reads 1234); an untagged completion is never correct;
* ``last-number``: the last number anywhere in the completion, as lm-evaluation-harness's
  "flexible-extract" filter reads GSM8k answers. A policy that does not yet use the tags (SmolLM2-135M
  writes "2 + 3 = 5") then still gets a correctness signal; the format reward is unchanged.

Pure Python; :func:`trl_reward_functions` adapts these to TRL's reward-function signature.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

__all__ = ["AnswerMatch", "extract_answer", "is_correct", "is_formatted", "total_reward", "trl_reward_functions", "CORRECT",
           "FORMAT"]


class AnswerMatch(StrEnum):
    """Where a completion's final answer is read."""

    TAGGED = "tagged"  # μA App. B.4: inside the last <answer>...</answer>
    LAST_NUMBER = "last-number"  # the completion's last number (lm-evaluation-harness's flexible extract)


CORRECT = 1.0  # μA: accuracy reward
FORMAT = 0.1  # μA: format reward
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
# a number: thousands grouped by commas only in threes ("1,234"; "1,2,3" is three numbers, "1,2345" two),
# a decimal part or a bare one (".5"), an exponent ("2.5e3"); a minus sign written as "-" or U+2212 right
# before it, unless a word or number ends there ("10-3" is 10 and 3, not 10 and -3); never the tail of a
# number ("2.5" is not also ".5")
_NUMBER = re.compile(r"(?:(?<![\w.])[-\u2212])?(?<![\d.])"
                     r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_INSIDE = r"(?:(?!</?(?:think|answer)>).)*"  # text holding no think/answer tag: one block each, nothing nested
_FORMAT = re.compile(rf"^\s*<think>{_INSIDE}</think>\s*<answer>{_INSIDE}</answer>\s*$", re.S)


def extract_answer(text: str, match: AnswerMatch = AnswerMatch.TAGGED) -> float | None:
    """The number in the last ``<answer>`` block (``tagged``) or the last number of ``text``
    (``last-number``); None when there is none."""
    if AnswerMatch(match) is AnswerMatch.TAGGED:
        blocks = _ANSWER.findall(text)
        if not blocks:
            return None
        text = blocks[-1]
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    try:
        return float(numbers[-1].replace(",", "").replace("\u2212", "-"))
    except ValueError:
        return None


def is_correct(text: str, answer: int | float, match: AnswerMatch = AnswerMatch.TAGGED) -> bool:
    got = extract_answer(text, match)
    return got is not None and math.isclose(got, float(answer), rel_tol=0.0, abs_tol=1e-9)


def is_formatted(text: str) -> bool:
    return _FORMAT.match(text) is not None


def total_reward(text: str, answer: int | float, correct: float = CORRECT, fmt: float = FORMAT,
                 match: AnswerMatch = AnswerMatch.TAGGED) -> float:
    return correct * is_correct(text, answer, match) + fmt * is_formatted(text)


def _text(completion) -> str:
    """TRL passes plain strings, or for conversational data a list of messages. With a tokenizer whose
    response schema parses reasoning (transformers 5, TRL ≥ 1.0), a message's ``<think>…</think>`` arrives
    apart, as ``reasoning_content``: it is put back in front of the content, as the model wrote it."""
    if isinstance(completion, str):
        return completion
    parts = []
    for m in completion:
        if isinstance(m, dict):
            if m.get("reasoning_content"):
                parts.append(f"<think>{m['reasoning_content']}</think>")
            parts.append(m.get("content") or "")
    return "".join(parts)


def trl_reward_functions(correct: float = CORRECT, fmt: float = FORMAT, match: AnswerMatch = AnswerMatch.TAGGED) -> list:
    """Two TRL reward functions, ``correctness`` and ``format``, summed by GRPOTrainer (weights 1, 1)."""

    def correctness(completions, answer, **_):
        return [correct * is_correct(_text(c), a, match) for c, a in zip(completions, answer)]

    def format_(completions, **_):
        return [fmt * is_formatted(_text(c)) for c in completions]

    format_.__name__ = "format"
    return [correctness, format_]
