"""lorascale: principled LoRA hyperparameters (LoRA-α scaling, μA learning-rate rules) through PEFT."""

__version__ = "0.1.0"

from .api import apply, default_targets, recommend_lr  # noqa: E402
from .rules import Init, RuleSpec, ScaleRule  # noqa: E402

__all__ = ["__version__", "apply", "recommend_lr", "default_targets", "Init", "RuleSpec", "ScaleRule"]
