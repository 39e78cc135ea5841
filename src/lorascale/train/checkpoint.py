"""Periodic checkpoints of a run (``save_every`` steps) and resuming from the last one.

``RUN_DIR/checkpoint/`` holds everything the next step depends on:

* ``trainable.pt``: the trainable parameters by name (the adapters and a classification head; every
  weight for full finetuning), the frozen base is rebuilt from the config;
* ``optimizer.pt``: AdamW's state (both moments, the step counts) and its groups, and the fp16 loss scale;
* ``state.pt``: the step, the EMA and divergence-guard state, and the RNG states (torch CPU/CUDA,
  Python, NumPy; LoRA dropout draws from torch's).

The learning-rate schedule is a pure function of the step (:func:`.schedule.lr_at`), so the step is its
whole state. The data position is ``step × grad_accum`` micro-batches into the seeded order: a resumed
run draws and drops them (collation, no forward pass), so it sees exactly the batches an
uninterrupted run would. The checkpoint is written to a side folder and renamed, so a crash while
saving leaves the previous one.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..vocabulary import RunStatus

__all__ = ["Checkpoint", "CHECKPOINT_DIR", "save_checkpoint", "load_checkpoint", "resume_config", "skip_batches"]

CHECKPOINT_DIR = "checkpoint"


@dataclass
class Checkpoint:
    step: int
    trainable: dict  # parameter name → tensor
    optimizer: dict  # optimizer.state_dict()
    scaler: dict | None  # GradScaler.state_dict() of an fp16 run
    ema: float
    guard: dict  # DivergenceGuard.state(): its early losses, level and streak
    rng: dict
    elapsed: float = 0.0  # seconds the run had trained when it was written (0 in checkpoints older than this field)

    def restore(self, model, optimizer, ema, guard, scaler=None) -> None:
        """Put the run back as it was after step ``step``: weights, optimizer, loss trackers, RNGs.
        Call it after the data position is replayed (:func:`skip_batches`), which must not move the RNGs."""
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        if names != set(self.trainable):
            raise ConfigError("resume", f"the checkpoint's trainable parameters ({len(self.trainable)}) are not this"
                              f" run's ({len(names)}): the model or adapter changed since it was written",
                              "resume with the run's own config.json, unchanged")
        unexpected = model.load_state_dict(self.trainable, strict=False).unexpected_keys
        assert not unexpected, f"checkpoint tensors {unexpected[:3]} matched no parameter"
        optimizer.load_state_dict(self.optimizer)
        if scaler is not None and self.scaler is not None:
            scaler.load_state_dict(self.scaler)
        ema.value = self.ema
        guard.load_state(self.guard)
        _set_rng(self.rng)


def save_checkpoint(run_dir: Path, step: int, model, optimizer, ema, guard, scaler=None, elapsed: float = 0.0) -> Path:
    """Write ``run_dir/checkpoint/`` for the state after ``step`` (replacing the previous checkpoint);
    ``elapsed``: the seconds the run has trained so far, which a resumed run's ``wall_time`` goes on from."""
    import torch

    final = Path(run_dir) / CHECKPOINT_DIR
    tmp = final.with_name(CHECKPOINT_DIR + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save(trainable, tmp / "trainable.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None},
               tmp / "optimizer.pt")
    torch.save({"step": step, "ema": ema.value, "guard": guard.state(), "rng": _get_rng(), "elapsed": elapsed},
               tmp / "state.pt")
    old = final.with_name(CHECKPOINT_DIR + ".old")
    if final.exists():  # a crash before this point leaves the previous checkpoint in place
        shutil.rmtree(old, ignore_errors=True)  # left by a crash between the two renames below
        final.rename(old)
    tmp.rename(final)  # a crash between the renames leaves only .old: load_checkpoint reads it
    shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoint_folder(run_dir: Path) -> Path:
    """The complete checkpoint: ``checkpoint/``, or ``checkpoint.old/`` when a save died between its renames."""
    folder = run_dir / CHECKPOINT_DIR
    old = folder.with_name(CHECKPOINT_DIR + ".old")
    return old if not (folder / "state.pt").exists() and (old / "state.pt").exists() else folder


def load_checkpoint(run_dir: str | Path) -> Checkpoint:
    """The last checkpoint of an unfinished run; ConfigError (field ``resume``) if there is none to resume."""
    import torch

    run_dir = Path(run_dir)
    folder = _checkpoint_folder(run_dir)
    summary = run_dir / "summary.json"
    status = json.loads(summary.read_text()).get("status") if summary.exists() else None
    if status in (RunStatus.COMPLETE, RunStatus.DIVERGED):  # a diverged run would diverge again from its checkpoint
        raise ConfigError("resume", f"{run_dir} is a {status} run; there is nothing to resume",
                          "start a new run in another out_dir")
    if not (folder / "state.pt").exists():
        raise ConfigError("resume", f"{run_dir} has no checkpoint", "train with save_every > 0 to be able to resume")
    state = torch.load(folder / "state.pt", weights_only=True)
    opt = torch.load(folder / "optimizer.pt", weights_only=True)
    return Checkpoint(state["step"], torch.load(folder / "trainable.pt", weights_only=True), opt["optimizer"],
                      opt["scaler"], state["ema"], state["guard"], state["rng"], state.get("elapsed", 0.0))


def resume_config(run_dir: str | Path):
    """The TrainConfig a run was started with (its ``config.json``), writing into ``run_dir``."""
    from .config import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError("resume", f"{run_dir} is not a run directory (no config.json)", "pass the folder of a run")
    return TrainConfig.from_flat({**json.loads(path.read_text()), "out_dir": str(run_dir)})


def skip_batches(batches, n: int) -> None:
    """Draw and drop ``n`` micro-batches: the data position of a resumed run."""
    for _ in range(n):
        next(batches)


def _get_rng() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}


def _set_rng(rng: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
