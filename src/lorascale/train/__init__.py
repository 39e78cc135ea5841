"""Training: the μA recipe on real models, with callbacks."""

from .callbacks import Callback, CallbackList, TrainContext
from .config import TrainConfig, config_from_mapping, load_yaml
from .loop import RunResult, train
from .schedule import lr_at

__all__ = ["train", "RunResult", "TrainConfig", "config_from_mapping", "load_yaml", "Callback", "CallbackList",
           "TrainContext", "lr_at"]
