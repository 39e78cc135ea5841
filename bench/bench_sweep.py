"""Sweep machinery cost, as ratios measured in one run.

1. Per-trial overhead of storage and scheduling (enqueue, claim, heartbeat, recording the curve and
   the result) against the trial itself: a no-op objective isolates the overhead; tiny real
   ``train`` runs (tiny-llama, 20 steps) give the trial time.
2. Throughput of N local worker processes against 1 on the same tiny trials, in steady state (each
   worker's first trial, which pays the imports, is left out) and end to end.

    python bench/bench_sweep.py                 # SQLite and journal, 12 tiny trials, 2 workers
    python bench/bench_sweep.py --trials 24 --workers 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lorascale.sweep.executors import run_sweep
from lorascale.sweep.spec import parse_spec
from lorascale.sweep.storage import Outcome, SweepStore

BASE = {"model": "tiny-llama", "data": "shakespeare", "steps": 20, "batch_size": 4, "seq_len": 64, "max_examples": 200,
        "max_val_batches": 1}
CURVE = tuple((s, 5.0 - s / 100) for s in range(1, 21))  # the same 20-step curve a tiny trial records


def noop(cfg) -> Outcome:
    """A trial that takes no time: what remains is storage and scheduling."""
    return Outcome("complete", 5.0, "val_nll", 5.1, 5.1, 0.0, CURVE, "")


def spec(name: str, n: int, out_dir: Path):
    lrs = [-12 + 0.25 * i for i in range(n)]  # n distinct points of one configuration
    base = {**BASE, "out_dir": str(out_dir / "runs")}  # run directories stay in the temporary directory
    return parse_spec({"name": name, "base": base, "grid": {"configs": [{"rule": "mua", "init": "A", "gamma": 0}],
                                                            "ranks": [4], "log2_lr": lrs}})


def steady_throughput(store: SweepStore) -> float:
    """Trials per second after each worker's first (import-paying) trial."""
    trials = sorted(store.trials(), key=lambda t: t.datetime_start)
    seen, rest = set(), []
    for t in trials:
        w = t.user_attrs["worker"]
        if w in seen:
            rest.append(t)
        seen.add(w)
    if not rest:
        return float("nan")
    span = (max(t.datetime_complete for t in rest) - min(t.datetime_start for t in rest)).total_seconds()
    return len(rest) / span


def overhead(url: str, n: int, d: Path) -> float:
    t0 = time.perf_counter()
    run_sweep(spec("noop", n, d), url, objective=noop, progress=False)
    return (time.perf_counter() - t0) / n


def tiny(url: str, name: str, n: int, workers: int, d: Path) -> tuple[float, float, float]:
    """(median trial time inside train, steady throughput, end-to-end throughput)."""
    t0 = time.perf_counter()
    run_sweep(spec(name, n, d), url, workers=workers, progress=False)
    wall = time.perf_counter() - t0
    store = SweepStore.open(url, name)
    inside = statistics.median(t.user_attrs["wall_time"] for t in store.trials()[1:])
    return inside, steady_throughput(store), n / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12, help="tiny trials per measurement (default 12)")
    ap.add_argument("--noop-trials", type=int, default=40, help="no-op trials for the overhead (default 40)")
    ap.add_argument("--workers", type=int, default=2, help="N for the N-vs-1 throughput (default 2)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        urls = {"sqlite": f"sqlite:///{d / 'b.db'}", "journal": f"journal:{d / 'b.log'}"}
        per = {k: overhead(u, args.noop_trials, d) for k, u in urls.items()}
        inside, steady1, e2e1 = tiny(urls["sqlite"], "w1", args.trials, 1, d)
        _, steadyn, e2en = tiny(urls["sqlite"], f"w{args.workers}", args.trials, args.workers, d)
    print(f"tiny trial (tiny-llama, 20 steps), median time inside train: {inside * 1e3:.0f} ms")
    for k, v in per.items():
        print(f"storage + scheduling per trial, {k:7s}: {v * 1e3:6.1f} ms = {v / inside:.2f}× a tiny trial")
    print(f"throughput, 1 worker : {steady1:.2f} trials/s steady, {e2e1:.2f} end to end")
    print(f"throughput, {args.workers} workers: {steadyn:.2f} trials/s steady, {e2en:.2f} end to end")
    print(f"{args.workers} workers vs 1: {steadyn / steady1:.2f}× steady, {e2en / e2e1:.2f}× end to end"
          f" (cores split {args.workers} ways; the imports cost each process its first trial)")


if __name__ == "__main__":
    main()
