"""Executors on every backend: resume runs exactly the missing points; concurrent workers never share one."""

import multiprocessing as mp
from collections import Counter
from pathlib import Path

import pytest
import sweep_fakes as F
from optuna.trial import TrialState

from lorascale.errors import ConfigError
from lorascale.sweep.executors import plan_sweep, run_sweep, worker_loop
from lorascale.sweep.storage import SweepStore


def read_calls(path):
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def test_resume_after_a_killed_worker_runs_exactly_the_missing_points(storage_url, tmp_path, monkeypatch):
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11, -10, -9))  # 8 points
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))
    # First sweep: enqueue everything, then a worker process that dies hard at its 4th run.
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)
    monkeypatch.setenv("SWEEP_FAKE_DIE_AFTER", "3")
    proc = mp.get_context("spawn").Process(target=worker_loop, args=(storage_url, spec.name, F.objective))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 3
    first = {k for k, _ in read_calls(calls)}
    assert len(first) == 3
    assert len(store.trials((TrialState.RUNNING,))) == 1  # the killed worker's trial is left RUNNING
    assert plan_sweep(spec, storage_url)._replace(points=0) == (0, 3, 5, 0)
    monkeypatch.delenv("SWEEP_FAKE_DIE_AFTER")

    res = run_sweep(spec, storage_url, objective=F.objective, progress=False)
    second = [k for k, _ in read_calls(calls)[3:]]
    assert len(second) == 5 and set(second) == {p.key for p in spec.points} - first  # each missing point once
    assert (res.done_before, res.ran, res.counts) == (3, 5, {"complete": 8, "fail": 1})
    (dead,) = [t for t in store.trials((TrialState.FAIL,))]
    assert dead.user_attrs["status"] == "interrupted" and "died" in dead.user_attrs["message"]

    again = run_sweep(spec, storage_url, objective=F.objective, progress=False)  # nothing left to do
    assert again.ran == 0 and len(read_calls(calls)) == 8


def test_two_concurrent_workers_never_run_the_same_point(storage_url, tmp_path, monkeypatch):
    spec = F.small_spec(ranks=(4, 16, 64), lrs=(-12, -11, -10, -9))  # 12 points
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))
    monkeypatch.setenv("SWEEP_FAKE_BARRIER", f"{tmp_path / 'barrier.txt'}:2")  # both workers start before any runs
    monkeypatch.setenv("SWEEP_FAKE_SLEEP", "0.05")
    res = run_sweep(spec, storage_url, workers=2, objective=F.objective, progress=False)
    rows = read_calls(calls)
    keys = Counter(k for k, _ in rows)
    assert set(keys) == {p.key for p in spec.points} and max(keys.values()) == 1
    assert len({pid for _, pid in rows}) == 2  # both processes worked
    assert res.ran == 12 and res.counts == {"complete": 12}


def test_two_sweep_commands_at_once_share_the_work(storage_url, tmp_path, monkeypatch):
    """Two `lorascale sweep` processes on one study (two machines): each point still runs once."""
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11, -10, -9))
    SweepStore.open(storage_url, spec.name, "create").close()  # the study exists before two sweeps share it
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))
    monkeypatch.setenv("SWEEP_FAKE_BARRIER", f"{tmp_path / 'barrier.txt'}:2")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_sweep, args=(spec, storage_url),
                         kwargs=dict(objective=F.objective, progress=False)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    keys = Counter(k for k, _ in read_calls(calls))
    assert set(keys) == {p.key for p in spec.points} and max(keys.values()) == 1
    store = SweepStore.open(storage_url, spec.name)
    assert store.done_keys() == {p.key for p in spec.points}


def test_a_crashing_run_is_recorded_failed_and_the_sweep_goes_on(storage_url):
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10))

    def flaky(cfg):
        if cfg.lr == 2.0**-11:
            raise RuntimeError("out of memory")
        return F.objective(cfg)

    res = run_sweep(spec, storage_url, objective=flaky, progress=False)
    assert res.counts == {"complete": 2, "fail": 1}
    store = SweepStore.open(storage_url, spec.name)
    (failed,) = [r for r in store.records() if r.outcome.status == "failed"]
    assert failed.log2_lr == -11.0
    res = run_sweep(spec, storage_url, objective=F.objective, progress=False)  # retried on resume
    assert res.ran == 1 and res.counts == {"complete": 3, "fail": 1}


def test_bad_backend_and_missing_ray_say_what_to_do(storage_url, monkeypatch):
    spec = F.small_spec(ranks=(4,), lrs=(-10,))
    with pytest.raises(ConfigError, match="local or ray"):
        run_sweep(spec, storage_url, backend="slurm")
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'lorascale\[ray\]'"):
        run_sweep(spec, storage_url, backend="ray", progress=False)


@pytest.mark.slow
def test_ray_backend_runs_each_point_once_as_a_task(tmp_path, monkeypatch):
    """Opt-in (`-m slow`): a local Ray instance takes ~20 s to start on two cores."""
    pytest.importorskip("ray")
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11, -10))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # Ray's workers import sweep_fakes
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    res = run_sweep(spec, url, backend="ray", objective=F.objective, progress=False, cpus=0.5)
    keys = Counter(k for k, _ in read_calls(calls))
    assert set(keys) == {p.key for p in spec.points} and max(keys.values()) == 1
    assert res.ran == 6 and res.counts == {"complete": 6}
