"""Training: the μA recipe on real models, with callbacks."""

from .callbacks import Callback, CallbackList, TrainContext
from .config import TrainConfig, config_from_mapping, load_yaml
from .loop import RunResult, resume_run, train
from .members import pack_key, train_members
from .schedule import lr_at

__all__ = ["train", "resume_run", "train_members", "pack_key", "RunResult", "TrainConfig", "config_from_mapping", "load_yaml",
           "Callback", "CallbackList", "TrainContext", "lr_at"]
