"""lorascale: principled LoRA hyperparameters (LoRA-α scaling, μA learning-rate rules) through PEFT."""

__version__ = "0.1.0"

from .api import apply, default_targets, init_after_wrap, lora_config, loraplus_optimizer, recommend_lr, rescale  # noqa: E402
from .integrations.hf import attach, metadata_callback, schedule_callback  # noqa: E402
from .recipe import trainer_kwargs  # noqa: E402
from .methods import Method  # noqa: E402
from .rules import Init, RuleSpec, ScaleRule  # noqa: E402

__all__ = [
    "__version__",
    # adapters
    "apply", "lora_config", "rescale", "init_after_wrap", "default_targets",
    # the recipe
    "recommend_lr", "loraplus_optimizer", "trainer_kwargs",
    # Hugging Face Trainer / TRL
    "schedule_callback", "metadata_callback", "attach",
    # settings
    "Init", "RuleSpec", "ScaleRule", "Method",
    # training (loaded on first use)
    "TrainConfig", "train_members",
]

_TRAINING = {"TrainConfig": "config", "train_members": "members"}  # lorascale.train is the package: lorascale.train.train


def __getattr__(name: str):
    """``lorascale.train_members`` etc. load the training stack (torch, accelerate) on first use only."""
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(f".train.{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module 'lorascale' has no attribute {name!r}")
