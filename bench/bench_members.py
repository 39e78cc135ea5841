"""A pack of K LoRA members vs the same K configs trained one after another as separate runs.

Both sides run end to end in a fresh process each (load the model, tokenise, build adapters, train,
evaluate, write the run directories and adapters): the pack with ``train_members``, the separate side
with K calls of ``train``. Reported per case: configs·steps/s over the whole wall time, the steady-state
step throughput (median ``step_time`` from metrics.jsonl: one pack step vs the sum of the K runs' steps),
peak memory (RSS on CPU, ``max_memory_allocated`` on CUDA; on CPU also the peak above the process's RSS
before any model loads, ``work_mb``, which excludes the ~0.4 GB Python/torch runtime), the
pack/separate ratios, and the planning estimate of :mod:`lorascale.train.members.memory` beside the
measured pack peak (comparable with ``work_mb`` on CPU, with ``peak_mb`` on CUDA).

The K configs are a learning-rate × seed sweep at one rank (the usual sweep), lrs log-spaced over
``--lr-range``, seeds alternating 0/1.

    python bench/bench_members.py --models tiny-llama --ks 1 4 --steps 2 --json   # smoke
    python bench/bench_members.py --models minilm-l6 smollm2-135m --ks 1 4 8 16 --steps 20
    python bench/bench_members.py --models smollm2-135m --ks 1 16 --batch-size 8 --seq-len 256 --steps 20 --json  # GPU target
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

# per model: data and batch shape (MiniLM 8×128, SmolLM2 4×128)
CASES = {
    "tiny-llama": dict(data="shakespeare", batch_size=4, seq_len=64),
    "minilm-l6": dict(data="shakespeare-genre", batch_size=8, seq_len=128),
    "smollm2-135m": dict(data="shakespeare", batch_size=4, seq_len=128),
}

CHILD = r"""
import json, os, resource, statistics, sys, time, torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
from lorascale.train import TrainConfig, train, train_members
# what train() imports lazily, imported before the clock starts on both sides: wall time is the work
import accelerate, peft, tqdm.auto, transformers.models.bert.modeling_bert, transformers.models.llama.modeling_llama
args = json.loads(sys.argv[1])
cfgs = [TrainConfig(**c) for c in args["cfgs"]]
def rss_mb():  # current resident set size
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
ready = 0.0 if torch.cuda.is_available() else rss_mb()   # the process before any model loads
t0 = time.perf_counter()
if args["side"] == "pack":
    results = train_members(cfgs, progress=False)
else:
    results = [train(c, progress=False) for c in cfgs]
wall = time.perf_counter() - t0
def step_times(cfg):
    return [r["step_time"] for r in map(json.loads, open(os.path.join(cfg.out_dir, "metrics.jsonl"))) if "step_time" in r]
skip = lambda ts: ts[min(2, len(ts) - 1):]   # the first steps pay allocator/thread warm-up on both sides
if args["side"] == "pack":
    step = statistics.median(skip(step_times(cfgs[0])))     # every member logs the pack's step time
else:
    step = sum(statistics.median(skip(step_times(c))) for c in cfgs)
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
estimate = None
if args["side"] == "pack":
    from lorascale.train.build import load_base, plan_adapter
    from lorascale.train.members.memory import estimate_for
    base = load_base(cfgs[0], quiet=True)
    plan = plan_adapter(cfgs[0], base)
    n_lora = sum(l.rank * (l.d_in + l.d_out) for l in plan.layers)
    e = estimate_for(base.loaded.model, n_lora, cfgs[0], bf16=torch.cuda.is_available())
    estimate = e.total(len(cfgs)) / 2**20
print(json.dumps({"wall_s": wall, "step_s": step, "peak_mb": peak, "work_mb": peak - ready, "estimate_mb": estimate,
                  "statuses": [r.status for r in results]}))
"""


def configs(model: str, k: int, steps: int, rank: int, lr_range: tuple[float, float], max_examples: int | None, out: str,
            shape: dict | None = None) -> list[dict]:
    case = {**CASES[model], **(shape or {})}
    lo, hi = (math.log10(x) for x in lr_range)
    lrs = [10 ** (lo + (hi - lo) * i / max(1, k - 1)) for i in range(k)]
    cap = max_examples or case["batch_size"] * (steps + 2)
    return [dict(model=model, **case, rank=rank, lr=lr, seed=i % 2, steps=steps, max_examples=cap, max_val_batches=1,
                 warmup_frac=0.0, out_dir=os.path.join(out, f"m{i}")) for i, lr in enumerate(lrs)]


def run_side(side: str, cfgs: list[dict]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"side": side, "cfgs": cfgs})],
                         capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_case(model: str, k: int, a) -> dict:
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("separate", "pack"):
            shape = {k_: v for k_, v in (("batch_size", a.batch_size), ("seq_len", a.seq_len)) if v is not None}
            cfgs = configs(model, k, a.steps, a.rank, tuple(a.lr_range), a.max_examples, os.path.join(tmp, side), shape)
            sides[side] = run_side(side, cfgs)
    work = k * a.steps  # configs·steps
    sep, pack = sides["separate"], sides["pack"]
    return {
        "model": model, "k": k, "steps": a.steps, "rank": a.rank, "batch_size": cfgs[0]["batch_size"],
        "seq_len": cfgs[0]["seq_len"],
        "pack": {"configs_steps_per_s": work / pack["wall_s"], "step_configs_per_s": k / pack["step_s"], **pack},
        "separate": {"configs_steps_per_s": work / sep["wall_s"], "step_configs_per_s": k / sep["step_s"], **sep},
        "ratio_end_to_end": sep["wall_s"] / pack["wall_s"],  # > 1: the pack is faster
        "ratio_step": sep["step_s"] / pack["step_s"],
        "ratio_peak_memory": pack["peak_mb"] / sep["peak_mb"],
        "ratio_work_memory": pack["work_mb"] / max(sep["work_mb"], 1.0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["tiny-llama"], choices=sorted(CASES))
    p.add_argument("--ks", nargs="+", type=int, default=[1, 4, 8, 16])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--lr-range", nargs=2, type=float, default=[1e-4, 1e-2], metavar=("LO", "HI"))
    p.add_argument("--batch-size", type=int, default=None, help="override the model's batch size (MiniLM 8, SmolLM2 4)")
    p.add_argument("--seq-len", type=int, default=None, help="override the model's sequence length (128)")
    p.add_argument("--max-examples", type=int, default=None, help="training examples per run (default: batch_size × (steps + 2))")
    p.add_argument("--json", action="store_true", help="print one JSON list of the cases")
    a = p.parse_args()
    rows = [bench_case(model, k, a) for model in a.models for k in a.ks]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        pk, sp = r["pack"], r["separate"]
        print(f"{r['model']:13s} K={r['k']:2d}  end to end: pack {pk['configs_steps_per_s']:7.2f} vs separate "
              f"{sp['configs_steps_per_s']:7.2f} configs·steps/s (×{r['ratio_end_to_end']:.2f})   step: ×{r['ratio_step']:.2f}   "
              f"peak: pack {pk['peak_mb']:7.0f} MB (above start {pk['work_mb']:6.0f}, estimate {pk['estimate_mb']:6.0f}) vs "
              f"separate {sp['peak_mb']:7.0f} MB (above start {sp['work_mb']:6.0f})")


if __name__ == "__main__":
    main()
