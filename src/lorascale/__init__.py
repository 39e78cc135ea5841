"""lorascale: principled LoRA hyperparameters (LoRA-α scaling, μA learning-rate rules) through PEFT."""

__version__ = "0.1.0"

from .api import apply, default_targets, recommend_lr  # noqa: E402
from .rules import Init, RuleSpec, ScaleRule  # noqa: E402

__all__ = ["__version__", "apply", "recommend_lr", "default_targets", "Init", "RuleSpec", "ScaleRule",
           "TrainConfig", "train_members"]

_TRAINING = {"TrainConfig": "config", "train_members": "members"}  # lorascale.train is the package: lorascale.train.train


def __getattr__(name: str):
    """``lorascale.train_members`` etc. load the training stack (torch, accelerate) on first use only."""
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(f".train.{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module 'lorascale' has no attribute {name!r}")
