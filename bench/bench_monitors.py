"""Per-step overhead of the diagnostic monitors, monitoring every step, as ratios measured in one run.

    python bench/bench_monitors.py                                   # tiny-llama, batch 8×128
    python bench/bench_monitors.py --model minilm-l6 --batch 8 --seq 128
    python bench/bench_monitors.py --model smollm2-135m --batch 2 --seq 64 --rounds 3 --steps 2

A training step is forward + backward + AdamW step on the LoRA factors (rank 16, lora-alpha rule,
μA Table 3 targets). Modes alternate in rounds (plain, signal-drift, signal-drift without the
alignments, feature-updates, both, plain, ...) so background load on a shared machine hits them alike; each mode's per-step time is the
fastest step (best of N: contention from other jobs only ever adds time), and the ratio is
monitored / plain. On a shared machine that end-to-end ratio still wobbles by several percent, so
we also time the monitors' own work directly — their callbacks plus the capture hooks that run
inside backward — and report it as a fraction of the plain step. Timings are process CPU time on
one intra-op thread (``torch.set_num_threads(1)``). The feature-update monitor's probe forward
runs once per ``refresh_every`` steps; its amortised cost is reported separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from lorascale import apply  # noqa: E402
from lorascale.diagnostics import FeatureUpdateMonitor, SignalDriftMonitor  # noqa: E402
from lorascale.diagnostics.capture import TokenCapture  # noqa: E402
from lorascale.diagnostics.feature_updates import probe_inputs  # noqa: E402
from lorascale.models import Task, load_model  # noqa: E402
from lorascale.train.callbacks import CallbackList, TrainContext  # noqa: E402


def make_batch(loaded, batch: int, seq: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    vocab = loaded.model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    out["labels"] = torch.randint(0, 2, (batch,), generator=g) if loaded.task is Task.CLASSIFICATION else ids
    return out


WORK = {"s": 0.0}  # CPU seconds spent in monitor code since the last reset


def timing(fn):
    def wrapped(*a, **k):
        t0 = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            WORK["s"] += time.process_time() - t0

    return wrapped


def instrument(*monitors) -> None:
    """Accumulate the CPU time of every monitor hook and of the capture's per-token work in WORK."""
    TokenCapture._store = timing(TokenCapture._store)
    for m in monitors:
        for hook in ("on_before_optimizer_step", "on_step_end"):
            setattr(m, hook, timing(getattr(m, hook)))


def timed_steps(model, opt, batch, steps: int, monitors, ctx: TrainContext) -> list[float]:
    cbs = CallbackList(monitors)
    cbs.on_train_begin(ctx)
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        loss = model(**batch).loss
        loss.backward()
        ctx.batch = batch
        cbs.on_before_optimizer_step(ctx)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ctx.step += 1
        cbs.on_step_end(ctx, {"step": ctx.step})
        times.append(time.process_time() - t0)
    cbs.on_train_end(ctx, {})
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="steps per mode per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--refresh-every", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)

    loaded = load_model(args.model, num_labels=2, quiet=True)
    model = apply(loaded.model, rank=args.rank, rule="lora-alpha", init="A")
    model.train()
    batch = make_batch(loaded, args.batch, args.seq)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ctx = TrainContext(model=model, optimizer=opt, config=None, run_dir=None, total_steps=10**9)
    sd = SignalDriftMonitor()
    norms = SignalDriftMonitor(alignment=False)
    fu = FeatureUpdateMonitor(probe_batch=batch, refresh_every=args.refresh_every)
    modes = {"plain": [], "signal-drift": [sd], "sd, no alignment": [norms], "feature-updates": [fu], "both": [sd, fu]}
    instrument(sd, norms, fu)
    timed_steps(model, opt, batch, 1, [sd, norms, fu], ctx)  # warm-up: allocator, first-call overheads, the first probe
    times = {m: [] for m in modes}
    work = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name, monitors in modes.items():
            WORK["s"] = 0.0
            step_times = timed_steps(model, opt, batch, args.steps, monitors, ctx)
            times[name] += step_times
            work[name].append(WORK["s"] / args.steps)
    t0 = time.process_time()
    probe_inputs(model, batch, fu.modules, fu.max_tokens)
    refresh = time.process_time() - t0

    plain = min(times["plain"])
    n_lora = len(sd.modules)
    print(f"model {args.model}  batch {args.batch}×{args.seq}  rank {args.rank}  {n_lora} LoRA layers  "
          f"{args.rounds} rounds × {args.steps} steps  threads {torch.get_num_threads()}")
    print(f"{'mode':<18}{'fastest step (s)':>17}{'ratio':>9}{'monitor work / plain step':>28}")
    for name in modes:
        best = min(times[name])
        print(f"{name:<18}{best:>17.4f}{best / plain:>9.3f}{statistics.median(work[name]) / plain:>28.2%}")
    print(f"probe refresh (feature-updates): {refresh:.4f} s once per {args.refresh_every} steps = "
          f"{refresh / args.refresh_every / plain:.3%} of a plain step, amortised")


if __name__ == "__main__":
    main()
