"""lorascale: principled LoRA hyperparameters (LoRA-α scaling, μA learning-rate rules) through PEFT."""

__version__ = "0.1.0"

from .api import apply, default_targets, init_after_wrap, lora_config, recommend_lr, rescale  # noqa: E402
from .rules import Init, RuleSpec, ScaleRule  # noqa: E402

__all__ = [
    "__version__",
    "apply", "lora_config", "rescale", "init_after_wrap", "default_targets", "recommend_lr",
    "Init", "RuleSpec", "ScaleRule",
]
