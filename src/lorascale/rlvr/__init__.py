"""RL with verifiable rewards (μA §5.3): generated problems, a rule-based reward, GRPO through TRL."""

from .problems import PROBLEM_SETS, Problem, make_problems, split_problems
from .reward import extract_answer, is_correct, is_formatted, total_reward

__all__ = ["PROBLEM_SETS", "Problem", "make_problems", "split_problems", "extract_answer", "is_correct", "is_formatted",
           "total_reward"]
