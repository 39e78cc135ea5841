"""Step time, peak memory and tokens/s of a lorascale LoRA step vs the same plain-PEFT LoRA step.

Both sides train the same model, adapter shape (rank, targets, lora_alpha), batches and AdamW
settings; lorascale's side is `lorascale.train.train` (accelerate, schedule, EMA, divergence guard,
metrics file), the plain side is a minimal loop over `peft.get_peft_model`. Step time is
wall clock from one step's end to the next on both sides, so all of lorascale's per-step work counts. Each side runs in its own
process (so peak RSS is its own) and the pair is repeated; medians of per-step times are compared.
Target: ratio ≤ 1.02.

    python bench/bench_step.py --model minilm-l6 --steps 12 --repeats 2
    python bench/bench_step.py --model smollm2-135m --batch-size 2 --seq-len 64 --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, statistics, sys, time, torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
from lorascale.train import TrainConfig, train
from lorascale.train.build import build_run, param_groups
from lorascale.train import Callback
def rss_mb():  # current resident set size
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
class Baseline(Callback):
    # RSS when training starts, and the wall clock at the end of each step (so lorascale's per-step
    # work after the optimizer step, metrics and callbacks, is inside the timed interval)
    def __init__(self):
        self.ends = []
    def on_train_begin(self, ctx):
        self.mb = rss_mb()
        self.ends.append(time.perf_counter())
    def on_step_end(self, ctx, logs):
        self.ends.append(time.perf_counter())
args = json.loads(sys.argv[1])
cfg = TrainConfig(**args["cfg"])
base = Baseline()
if args["side"] == "lorascale":
    r = train(cfg, [base], progress=False)
    times = [b - a for a, b in zip(base.ends, base.ends[1:])]  # step end to step end, everything included
    tokens = [json.loads(l)["tokens_per_s"] for l in open(os.path.join(cfg.out_dir, "metrics.jsonl")) if '"tokens_per_s"' in l]
else:
    built = build_run(cfg, quiet=True)   # same model, adapter config and batches, but a bare PEFT loop
    base.mb = rss_mb()
    model = built.model
    model.train()  # as lorascale's loop does (from_pretrained returns eval mode: no dropout)
    opt = torch.optim.AdamW(param_groups(model, cfg), betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
    it = iter(built.train_loader)
    times, tokens = [], []
    for _ in range(cfg.steps):
        t0 = time.perf_counter()
        batch = next(it)
        out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        times.append(dt); tokens.append(int(batch["attention_mask"].sum()) / dt)
skip = min(2, len(times) - 1)   # the first steps pay allocator/thread warm-up on both sides
print(json.dumps({"step": statistics.median(times[skip:]), "tokens_per_s": statistics.median(tokens[skip:]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "train_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base.mb}))
"""


def run_side(side: str, cfg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"side": side, "cfg": cfg})],
                         capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--data", default=None)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    data = a.data or ("shakespeare-genre" if a.model.startswith(("minilm", "tiny-bert")) else "shakespeare")
    results = {"lorascale": [], "peft": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for side in ("peft", "lorascale") if rep % 2 else ("lorascale", "peft"):  # alternate order against drift
                cfg = dict(model=a.model, data=data, rank=a.rank, batch_size=a.batch_size, seq_len=a.seq_len, steps=a.steps,
                           lr=1e-4, max_examples=a.batch_size * (a.steps + 2), max_val_batches=1, save_model=False,
                           out_dir=os.path.join(tmp, f"{side}{rep}"), warmup_frac=0.0)
                results[side].append(run_side(side, cfg))
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in results.items()}
    print(f"model {a.model}, batch {a.batch_size}×{a.seq_len}, rank {a.rank}, {a.steps} steps × {a.repeats} repeats")
    for s in ("peft", "lorascale"):
        m = med[s]
        print(f"  {s:9s}: step {m['step'] * 1000:8.1f} ms   {m['tokens_per_s']:9.0f} tokens/s   peak RSS {m['peak_rss_mb']:7.0f} MB"
              f"   (training's peak above the ready-to-train RSS: {m['train_rss_mb']:6.0f} MB)")
    print(f"  ratio lorascale/peft: step time {med['lorascale']['step'] / med['peft']['step']:.3f}  (target ≤ 1.02), "
          f"peak RSS {med['lorascale']['peak_rss_mb'] / med['peft']['peak_rss_mb']:.3f}, "
          f"training's RSS increment {med['lorascale']['train_rss_mb'] / max(med['peft']['train_rss_mb'], 1.0):.3f}")


if __name__ == "__main__":
    main()
