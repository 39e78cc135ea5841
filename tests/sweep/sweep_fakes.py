"""A synthetic objective with known optima, standing in for `train` in machinery tests.

Loss model (noise-free unless a seed offset is asked for), in log2 units:
* learning-rate sweeps: L = 1 + 0.05·(x − x*(r))², x = log2 η, x*(r) = X0 + slope·log2 r with the
  slope μA predicts for the configuration; the run diverges when x − x*(r) ≥ 3.
* fixed-alpha runs (LoRA-α paths): L = 1 + 0.05·(log2 α − log2 α*(r))² + 0.08·(x − X_ETA)², with
  α*(r) = C_TRUE·r^P_TRUE (PEFT lora_alpha units).
Both are exact parabolas, so the three-point refinement recovers the optima exactly.

Process-level hooks (environment variables, read per call so spawned workers see them):
* SWEEP_FAKE_CALLS: file to append "<key> <pid>" to at the start of every call.
* SWEEP_FAKE_SLEEP: seconds to sleep per call.
* SWEEP_FAKE_DIE_AFTER: this process hard-exits (os._exit, no cleanup) at its (n+1)-th call.
* SWEEP_FAKE_BARRIER: "FILE:N" — at its first call a process registers in FILE and waits until N
  processes have, so concurrent workers are guaranteed to overlap.
* SWEEP_FAKE_WARN: set: every call issues a FutureWarning, as torch and transformers do in real runs.
* SWEEP_FAKE_INTERRUPT: "PID" or "PID:SIGTERM" — at its first call a process sends SIGINT (a driver's
  Ctrl-C), or the signal named, to PID.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from pathlib import Path

from lorascale.sweep.records import Outcome
from lorascale.sweep.spec import point_key

X0 = -8.0  # log2 η* at rank 1 for the LoRA configurations
X_FFT = -10.0  # full finetuning's optimum
SLOPES = {("A", 0.0): -0.5, ("A", 1.0): 0.0, ("B", 0.0): 0.0}  # μA Cor. 4.4, 4.6
C_TRUE, P_TRUE = 8.0, 0.75
X_ETA = math.log2(2e-4) + 1.0  # the η-path optimum: m* = 2
_calls = 0


def true_x_star(cfg) -> float:
    if cfg.finetune == "full":
        return X_FFT
    a = cfg.adapter
    if a.init == "B" and a.scaling.gamma == 0.0:
        return X_FFT  # μA §4.2: Init[B] with α = 1 shares full finetuning's optimum
    return X0 + SLOPES[(a.init.value, float(a.scaling.gamma))] * math.log2(a.rank)


def loss(cfg, seed_noise: float = 0.0) -> tuple[str, float]:
    x = math.log2(cfg.lr)
    if cfg.finetune == "lora" and cfg.adapter.scaling.rule == "fixed-alpha":
        a_star = C_TRUE * cfg.adapter.rank**P_TRUE
        return "complete", 1.0 + 0.05 * (math.log2(cfg.adapter.scaling.lora_alpha) - math.log2(a_star)) ** 2 + 0.08 * (x - X_ETA) ** 2
    d = x - true_x_star(cfg)
    if d >= 3.0:
        return "diverged", 10.0
    # seed noise that changes with x, so seeds disagree on the optimum a little
    return "complete", 1.0 + 0.05 * d * d + seed_noise * math.sin(3.0 * x + 1.7 * cfg.seed)


def objective(cfg, seed_noise: float = 0.0) -> Outcome:
    global _calls
    _calls += 1
    die_after = os.environ.get("SWEEP_FAKE_DIE_AFTER")
    if die_after is not None and _calls > int(die_after):
        os._exit(3)  # a worker killed mid-trial: no cleanup, its trial stays RUNNING
    barrier = os.environ.get("SWEEP_FAKE_BARRIER")
    if barrier and _calls == 1:
        path, n = barrier.rsplit(":", 1)
        release_together(path, int(n))
    interrupt = os.environ.get("SWEEP_FAKE_INTERRUPT")
    if interrupt and _calls == 1:
        pid, _, name = interrupt.partition(":")
        os.kill(int(pid), getattr(signal, name or "SIGINT"))
    if os.environ.get("SWEEP_FAKE_WARN"):
        warnings.warn("a library's deprecation chatter", FutureWarning)
    calls = os.environ.get("SWEEP_FAKE_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(f"{point_key(cfg)} {os.getpid()}\n")
    _sleep(float(os.environ.get("SWEEP_FAKE_SLEEP", "0")))
    status, value = loss(cfg, seed_noise)
    curve = tuple((s, value + 1.0 / s) for s in range(1, 6))
    return Outcome(status, value, "val_nll", value + 0.1 if status == "complete" else None, value + 0.1, 0.01, curve, "")


def _sleep(seconds: float) -> None:
    """Sleep in 50 ms slices, as a training loop runs Python between steps: an interrupt that only sets
    Python's flag (``_thread.interrupt_main``, which ``ray.cancel`` uses) is seen within a slice; one
    long ``time.sleep`` would not see it until it ended."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.05, left))


def noisy_objective(cfg) -> Outcome:
    return objective(cfg, seed_noise=0.01)


# ---- small specs for the tests ---------------------------------------------------------------

BASE = {"model": "tiny-llama", "data": "shakespeare", "steps": 20, "batch_size": 4, "seq_len": 64, "max_examples": 200}
MUA_CONFIGS = [
    {"name": "A1", "rule": "mua", "init": "A", "gamma": 0},
    {"name": "A1/r", "rule": "mua", "init": "A", "gamma": 1},
    {"name": "B1", "rule": "mua", "init": "B", "gamma": 0},
    {"name": "FFT", "finetune": "full"},
]
PATHS = {"ranks": [4, 16, 64], "lr_fft": 2e-4, "alpha0": 16, "multipliers": {"from": -2, "to": 5}}


def small_spec(name="t", seeds=(0,), ranks=(4, 16), lrs=(-12, -11, -10), configs=None, paths=None):
    from lorascale.sweep.spec import parse_spec

    d = {"name": name, "base": dict(BASE),
         "grid": {"configs": configs or MUA_CONFIGS[:1], "ranks": list(ranks), "log2_lr": list(lrs), "seeds": list(seeds)}}
    if paths:
        d["paths"] = paths
    return parse_spec(d)


def populate(url, spec, objective=objective):
    """Run ``spec`` in-process with a synthetic objective into ``url``; returns the store."""
    from lorascale.sweep.executors import run_sweep
    from lorascale.sweep.storage import SweepStore

    run_sweep(spec, url, objective=objective, progress=False)
    return SweepStore.open(url, spec.name)


def release_together(path: str, n: int, timeout: float = 60.0) -> None:
    """Wait until ``n`` processes have called this with ``path``, then return in all of them at one instant:
    the last to arrive writes the file last, so every process reads the same mtime and starts 0.25 s after
    it (no fixed sleep sized for the slowest import)."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    t0 = time.time()
    while len(set(Path(path).read_text().split())) < n:
        if time.time() - t0 > timeout:
            raise TimeoutError(f"only some of {n} processes reached the barrier in {timeout} s")
        time.sleep(0.002)
    start_at = os.stat(path).st_mtime + 0.25
    while time.time() < start_at:
        time.sleep(0.0005)


def claim_all(url: str, study: str, out: str, barrier: str, n: int) -> None:
    """A worker that only claims: released with its ``n`` peers at one instant (so processes collide), claim
    until the queue is empty, append the claimed trial numbers to ``out``."""
    from lorascale.sweep.storage import SweepStore

    store = SweepStore.open(url, study, "write")
    release_together(barrier, n)
    got = []
    while (c := store.claim()) is not None:
        got.append(c.number)
    with open(out, "a") as f:
        f.write(" ".join(map(str, got)) + "\n")


def open_at(url: str, study: str, out: str, barrier: str, n: int) -> None:
    """A `lorascale sweep` that only opens (creates) its storage, released with its ``n`` peers at one instant
    so that several processes collide on a file that does not exist yet; appends "ok" or the error to ``out``."""
    from lorascale.sweep.storage import SweepStore

    release_together(barrier, n)
    try:
        SweepStore.open(url, study, "create").close()
        result = "ok"
    except Exception as e:  # the test reports whatever went wrong
        result = f"{type(e).__name__}: {e}".replace("\n", " ")
    with open(out, "a") as f:
        f.write(result + "\n")


def pack_objective(cfgs, on_end=None) -> list:
    """A pack of fakes: records each key with the pack's size; SWEEP_FAKE_DIE_AT_PACK=n kills the worker at
    its n-th pack, before any of that pack's results is written (kill -9 mid-pack). Every member ends at
    the pack's end (``on_end`` is left to run_pack)."""
    global _packs
    _packs += 1
    die_at = os.environ.get("SWEEP_FAKE_DIE_AT_PACK")
    if die_at is not None and _packs >= int(die_at):
        os._exit(3)
    calls = os.environ.get("SWEEP_FAKE_PACKS")
    if calls:
        with open(calls, "a") as f:
            for cfg in cfgs:
                f.write(f"{point_key(cfg)} {os.getpid()} {len(cfgs)} {cfg.finetune.value}\n")
    return [objective(cfg) for cfg in cfgs]


_packs = 0
