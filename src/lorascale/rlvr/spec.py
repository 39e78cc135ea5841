"""The settings of the rlvr task: GRPO's sampling (μA App. B.4) and the problems. Part of TrainConfig."""

from __future__ import annotations

from ..schema import Float, PositiveInt, Settings, setting
from .reward import AnswerMatch

__all__ = ["RLSpec"]


class RLSpec(Settings):
    num_generations: PositiveInt = setting(8, "rlvr: completions sampled per prompt (the GRPO group; μA uses 8)", ge=2,
                                           fix="GRPO standardises rewards within a group: use at least 2 (μA: 8)")
    max_completion_length: PositiveInt = setting(256, "rlvr: most tokens generated per completion (μA: 1024)")
    generation_temperature: Float = setting(1.0, "rlvr: sampling temperature (μA: 1.0, no top-p/top-k)", gt=0.0, le=10.0)
    train_problems: PositiveInt = setting(500, "rlvr: training problems (μA: 500)")
    val_problems: PositiveInt = setting(50, "rlvr: held-out problems (μA: 50)")
    eval_generations: PositiveInt = setting(8, "rlvr: sampled completions per held-out problem (μA averages over 8)")
    format_reward: Float = setting(0.1, "rlvr: reward for the <think>…</think><answer>…</answer> format (μA: 0.1)",
                                   ge=0.0, le=1.0)
    answer_match: AnswerMatch = setting(AnswerMatch.TAGGED, "rlvr: where the final answer is read: tagged (μA: the last"
                                        " <answer> block) or last-number (the completion's last number, for a policy"
                                        " that does not use the tags yet; the prompt then asks for a number at the end)")
