"""Executors on every backend: resume runs exactly the missing points; concurrent workers never share one."""

import json
import math
import multiprocessing as mp
from collections import Counter
from pathlib import Path

import pytest
import sweep_fakes as F
from optuna.trial import TrialState

from lorascale.errors import ConfigError, ConfigErrors
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


def test_bad_backend_and_missing_ray_say_what_to_do(storage_url, request):
    spec = F.small_spec(ranks=(4,), lrs=(-10,))
    with pytest.raises(ConfigErrors, match="local or ray") as e:  # SweepRunSettings: the setting and its choices
        run_sweep(spec, storage_url, backend="slurm")
    assert [x.field for x in e.value.errors] == ["backend"]
    request.getfixturevalue("without_ray")  # only now: the bad-backend check must not need ray either way
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


@pytest.mark.slow
@pytest.mark.parametrize("signame, says", [("SIGINT", "Ctrl-C"), ("SIGTERM", "SIGTERM")])
def test_ray_driver_stopped_mid_sweep_leaves_its_trial_interrupted_not_running(tmp_path, monkeypatch, signame, says):
    """Opt-in (`-m slow`, needs ray). Ctrl-C or SIGTERM reaches the driver (under the CLI's handler) while its
    one task trains (the task sends it, then sleeps 120 s): the driver cancels the task, whose trial is
    recorded interrupted, so the next sweep re-runs it at once; without the cancel, ray.shutdown would kill
    it RUNNING, waiting on stale detection. SIGTERM also checks that ray.init's own SIGTERM handler
    (sys.exit, which skipped the cancel) no longer replaces the driver's."""
    pytest.importorskip("ray")
    import os

    from lorascale.interrupts import stop_on_signals

    spec = F.small_spec(ranks=(4,), lrs=(-12,))
    monkeypatch.setenv("SWEEP_FAKE_INTERRUPT", f"{os.getpid()}:{signame}")
    monkeypatch.setenv("SWEEP_FAKE_SLEEP", "120")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        run_sweep(spec, url, backend="ray", objective=F.objective, progress=False, cpus=0.5)
    store = SweepStore.open(url, spec.name)
    (trial,) = store.trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["status"] == "interrupted"
    assert trial.user_attrs["message"] == "interrupted by Ctrl-C"  # the task itself is stopped by ray.cancel
    store.close()


def test_packs_under_four_workers_run_every_point_once(storage_url, tmp_path, monkeypatch):
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11, -10), configs=F.MUA_CONFIGS, seeds=(0, 1))  # 3·2·3·2 + FFT 3·2
    packs, calls = tmp_path / "packs.txt", tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_PACKS", str(packs))
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))  # every run, packed or alone
    res = run_sweep(spec, storage_url, workers=4, members=3, objective=F.objective, pack_objective=F.pack_objective,
                    progress=False)
    runs = Counter(k for k, _ in read_calls(calls))
    assert set(runs) == {p.key for p in spec.points} and max(runs.values()) == 1  # each point ran once, none twice
    packed = read_calls(packs)
    assert {k for k, *_ in packed} <= {p.key for p in spec.points if p.rank is not None}  # FFT never in a pack
    assert max(int(size) for _, _, size, _ in packed) == 3 and len({pid for _, pid, *_ in packed}) >= 2
    assert res.ran == len(spec.points) and res.counts == {"complete": len(spec.points)}


def test_dora_points_run_alone_next_to_packs(storage_url, tmp_path, monkeypatch):
    # the batched engine computes plain LoRA only: a worker trains DoRA points (PiSSA, OLoRA: the same
    # solo_reason, tests/train/members) as separate runs. (The fake objective knows μA's Init[A]/[B] only.)
    configs = [F.MUA_CONFIGS[0], dict(F.MUA_CONFIGS[0], name="A1 dora", method="dora"),
               dict(F.MUA_CONFIGS[2], name="B1 dora", method="dora")]
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10), configs=configs)
    packs, calls = tmp_path / "packs.txt", tmp_path / "calls.txt"
    monkeypatch.setenv("SWEEP_FAKE_PACKS", str(packs))
    monkeypatch.setenv("SWEEP_FAKE_CALLS", str(calls))
    res = run_sweep(spec, storage_url, members=3, objective=F.objective, pack_objective=F.pack_objective, progress=False)
    runs = Counter(k for k, _ in read_calls(calls))
    assert set(runs) == {p.key for p in spec.points} and max(runs.values()) == 1
    plain = {p.key for p in spec.points if p.train.adapter.method == "lora"}
    assert {k for k, *_ in read_calls(packs)} == plain  # only plain LoRA points were packed
    assert res.counts == {"complete": 9}


def test_a_worker_killed_mid_pack_leaves_its_points_to_the_next_sweep(storage_url, tmp_path, monkeypatch):
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11, -10, -9))  # 8 LoRA points
    packs = tmp_path / "packs.txt"
    monkeypatch.setenv("SWEEP_FAKE_PACKS", str(packs))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)
    monkeypatch.setenv("SWEEP_FAKE_DIE_AT_PACK", "2")  # the first pack of 3 finishes, the second dies (kill -9)
    proc = mp.get_context("spawn").Process(target=worker_loop, args=(storage_url, spec.name, F.objective),
                                           kwargs=dict(members=3, pack_objective=F.pack_objective))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 3
    first = {k for k, *_ in read_calls(packs)}
    assert len(first) == 3 and len(store.trials((TrialState.RUNNING,))) == 3  # the whole dead pack is left RUNNING
    monkeypatch.delenv("SWEEP_FAKE_DIE_AT_PACK")
    res = run_sweep(spec, storage_url, members=3, objective=F.objective, pack_objective=F.pack_objective, progress=False)
    second = [k for k, *_ in read_calls(packs)[3:]]
    assert sorted(second) == sorted({p.key for p in spec.points} - first)  # each missing point exactly once
    assert res.counts == {"complete": 8, "fail": 3}  # the dead pack's three trials, failed as interrupted
    assert {t.user_attrs["status"] for t in store.trials((TrialState.FAIL,))} == {"interrupted"}


def test_a_sweep_with_members_stores_what_separate_runs_store(tmp_path, one_thread, monkeypatch):
    """The real objective: the same four LoRA points as packs of 4 and as separate runs."""
    monkeypatch.chdir(tmp_path)  # run directories go under ./runs
    spec = F.small_spec(ranks=(4, 8), lrs=(-10, -9), configs=F.MUA_CONFIGS[:1])
    spec = type(spec)(spec.name, tuple(p.__class__(**{**p.__dict__, "train": p.train.replace(steps=6, max_examples=64)})
                                       for p in spec.points), spec.resources, spec.raw)
    got = {}
    for k in (1, 4):
        url = f"sqlite:///{tmp_path / f'k{k}.db'}"
        res = run_sweep(spec, url, members=k, progress=False)
        assert res.counts == {"complete": 4}
        got[k] = {r.point.key: r for r in SweepStore.open(url, spec.name).records()}
    packs = {k: {json.loads((tmp_path / r.outcome.run_dir / "summary.json").read_text())["pack"] for r in got[k].values()}
             for k in (1, 4)}
    assert packs[1] == {None} and len(packs[4]) == 1 and None not in packs[4]  # k = 4 did train one pack of four
    assert set(got[1]) == set(got[4]) == {p.key for p in spec.points}
    for key, sep in got[1].items():
        pack = got[4][key]
        # members equal separate runs up to float reduction order (tests/train/test_members.py): rel 1e-5
        assert pack.outcome.final_ema_loss == pytest.approx(sep.outcome.final_ema_loss, rel=1e-5)
        assert pack.outcome.eval_value == pytest.approx(sep.outcome.eval_value, rel=1e-5)


def test_auto_members_fits_the_memory_it_is_given(monkeypatch):
    from lorascale.sweep import packs
    from lorascale.train.config import TrainConfig

    cfg = TrainConfig(model="tiny-llama", data="shakespeare", rank=4, batch_size=4, seq_len=64)
    assert packs.auto_members(cfg) == packs.MAX_AUTO_MEMBERS  # a tiny model: memory is no limit, the cap is
    monkeypatch.setattr(packs, "_available_memory", lambda: 0)
    assert packs.auto_members(cfg) == 1  # nothing fits: still one member (a pack of one is a separate run)
    assert packs.auto_members(TrainConfig(model="tiny-llama", finetune="full")) == 1


def test_auto_members_sizes_a_contrastive_pack_by_its_two_rows_a_pair_when_the_data_sets_the_task(monkeypatch):
    """task is unset ("from the data") in a spec like {model: tiny-bert, data: dialogue-pairs}: the estimate
    counted B rows, not the 2B (queries and positives) contrastive training runs, so K came out ~2× too large."""
    from lorascale.sweep import packs
    from lorascale.train.config import TrainConfig
    from lorascale.train.members import memory

    seen = []
    real = memory.estimate_for
    monkeypatch.setattr(memory, "estimate_for", lambda m, n, cfg, bf16=False: seen.append(real(m, n, cfg, bf16)) or seen[-1])
    cfg = TrainConfig(model="tiny-bert", data="dialogue-pairs", rank=4, batch_size=4, seq_len=32)
    packs.auto_members(cfg)
    packs.auto_members(cfg.replace(task="contrastive"))
    packs.auto_members(cfg.replace(task="contrastive", batch_size=8))
    unset, explicit, doubled = seen
    assert unset == explicit  # the data's task, found
    assert doubled.member_bytes > explicit.member_bytes  # rows matter, so the equality above can fail


def test_an_interrupted_worker_hands_back_the_claims_of_groups_it_had_not_reached(storage_url):
    # 4 claims → 3 groups (the two plain points as one pack, each DoRA point alone); Ctrl-C in the first group
    # records its trials interrupted and hands the other groups' claims back, none left RUNNING for stale detection
    configs = [F.MUA_CONFIGS[0], dict(F.MUA_CONFIGS[0], name="A1 dora", method="dora")]
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11), configs=configs)
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)

    def stop(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        worker_loop(storage_url, spec.name, stop, members=4, pack_objective=lambda cfgs, on_end: stop(cfgs))
    trials = store.trials()
    assert len(trials) == 4 and {(t.state, t.user_attrs["status"]) for t in trials} == {(TrialState.FAIL, "interrupted")}
    messages = Counter(t.user_attrs["message"] for t in trials)
    ran_first = messages["interrupted by Ctrl-C"]
    assert ran_first in (1, 2) and messages["interrupted by Ctrl-C before it ran"] == 4 - ran_first
    store.close()


def test_members_auto_is_sized_for_the_largest_rank_a_pack_can_hold(tmp_path, monkeypatch):
    """A pack mixes ranks, and a member's factors and optimizer state grow with its rank: K is sized for rank 16,
    not for the first point's rank 4; the rank-64 DoRA points never join a pack, so they do not size it."""
    from lorascale.sweep import packs

    configs = [F.MUA_CONFIGS[0], dict(F.MUA_CONFIGS[0], name="A1 dora", method="dora", ranks=[64])]
    spec = F.small_spec(ranks=(4, 16), lrs=(-12, -11), configs=configs)
    sized = []
    monkeypatch.setattr(packs, "auto_members", lambda cfg, cap=packs.MAX_AUTO_MEMBERS: sized.append(cfg.adapter.rank) or 2)
    res = run_sweep(spec, f"sqlite:///{tmp_path / 'auto.db'}", members="auto", objective=F.objective, progress=False)
    assert sized == [16] and res.counts == {"complete": 6}


def bad_config_entries(spec, bad_index):
    """The spec's queue entries, one of whose stored configs no longer validates (as after a TrainConfig change)."""
    out = [(p.key, p.attrs(), p.train.to_dict()) for p in spec.points]
    key, attrs, cfg = out[bad_index]
    out[bad_index] = (key, attrs, {**cfg, "grad_clip": -1})
    return out


@pytest.mark.parametrize("members", [1, 3])
def test_a_stored_config_that_no_longer_validates_is_recorded_failed(tmp_path, members):
    """It used to raise out of the worker before the run's try, leaving its trial (and a pack's others) RUNNING."""
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10))
    store = SweepStore.open(url, spec.name, "create")
    store.enqueue(bad_config_entries(spec, 1))
    assert worker_loop(url, spec.name, F.objective, members=members) == 3
    by_key = {t.user_attrs["key"]: t for t in store.trials()}
    bad = by_key[spec.points[1].key]
    assert bad.state == TrialState.FAIL and bad.user_attrs["status"] == "failed"
    assert bad.user_attrs["message"] == "ConfigErrors: grad_clip: must be > 0, got -1; μA clips the global norm at 1.0"
    assert Counter(t.state for t in by_key.values()) == {TrialState.COMPLETE: 2, TrialState.FAIL: 1}
    store.close()


@pytest.mark.parametrize("members", [1, 3])
def test_an_interrupt_outlives_a_trial_the_stale_check_failed_first(storage_url, members):
    """Ctrl-C lands while a stale check has just failed the first claimed trial: recording that one interrupted
    raises UpdateFinishedTrialError, which used to replace the interrupt and leave a pack's other trials RUNNING."""
    from lorascale.vocabulary import RunStatus

    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)

    def stop(*_):
        first = min(t.number for t in store.trials((TrialState.RUNNING,)))
        store._fail(first, RunStatus.INTERRUPTED, "worker w silent for 999 s")  # the other process's stale check
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        worker_loop(storage_url, spec.name, stop, members=members, pack_objective=stop)
    trials = store.trials()
    messages = Counter(t.user_attrs.get("message") for t in trials if t.state == TrialState.FAIL)
    assert not store.trials((TrialState.RUNNING,)) and messages["worker w silent for 999 s"] == 1
    assert messages["interrupted by Ctrl-C"] == members - 1  # the pack's others: recorded, not left RUNNING
    assert len(trials) == 3
    store.close()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_member_that_ended_keeps_its_result_when_its_pack_is_stopped(storage_url, stop):
    """A member that diverged at step 3 is final; Ctrl-C (or a crash) of its pack later used to record it
    interrupted (or failed) with the others, so the next sweep trained it again."""
    from lorascale.sweep.records import Outcome
    from lorascale.vocabulary import RunStatus

    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)

    def pack(cfgs, on_end):
        on_end(1, Outcome(RunStatus.DIVERGED, math.inf, message="loss is nan at step 3"))
        raise stop("stopped")

    if stop is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            worker_loop(storage_url, spec.name, F.objective, members=3, pack_objective=pack)
        others = "interrupted"
    else:
        worker_loop(storage_url, spec.name, F.objective, members=3, pack_objective=pack, max_trials=3)
        others = "failed"
    by_number = {t.number: t.user_attrs["status"] for t in store.trials()}
    assert by_number == {0: others, 1: "diverged", 2: others}
    assert store.done_keys() == {spec.points[1].key}  # the next sweep re-runs the other two only
    store.close()


def test_claims_waiting_for_a_later_group_keep_beating(storage_url, monkeypatch):
    """4 claims in 3 groups (a pack of two plain points, then each DoRA point alone): while the pack trains,
    the DoRA claims must beat too, or another worker's stale check re-queues them and they train twice."""
    import time

    configs = [F.MUA_CONFIGS[0], dict(F.MUA_CONFIGS[0], name="A1 dora", method="dora")]
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11), configs=configs)
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)
    beats, real = [], SweepStore._beat
    monkeypatch.setattr(SweepStore, "_beat", lambda self, trial: (beats.append((trial.number, time.monotonic())),
                                                                  real(self, trial)))
    during_pack = []

    def pack(cfgs, on_end):
        t0 = time.monotonic()
        deadline = t0 + 30  # wait for recorded beats, not a fixed time: a loaded machine delays the threads
        while len({n for n, t in beats if t > t0}) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        during_pack.append({n for n, t in beats if t > t0})
        return [F.objective(c) for c in cfgs]

    assert worker_loop(storage_url, spec.name, F.objective, members=4, pack_objective=pack, heartbeat_s=0.05) == 4
    assert during_pack == [{0, 1, 2, 3}]
    store.close()


def test_a_store_error_as_a_member_ends_is_retried_when_the_pack_ends(storage_url, monkeypatch, caplog):
    """The first member's result cannot be written as it ends (a locked database, say): the other members
    train on, and the result is written when the pack returns."""
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue((p.key, p.attrs(), p.train.to_dict()) for p in spec.points)
    real, failures = SweepStore.finish, []

    def flaky(self, claim, out):
        if not failures:
            failures.append(claim.number)
            raise RuntimeError("database is locked")
        return real(self, claim, out)

    monkeypatch.setattr(SweepStore, "finish", flaky)

    def pack(cfgs, on_end):
        outs = [F.objective(c) for c in cfgs]
        on_end(0, outs[0])  # the write fails: training goes on
        return outs

    assert worker_loop(storage_url, spec.name, F.objective, members=2, pack_objective=pack) == 2
    assert failures == [0] and "retried when the pack ends" in caplog.text
    assert {t.state for t in store.trials()} == {TrialState.COMPLETE}
    store.close()


def test_a_pack_objective_without_on_end_still_runs(storage_url):
    """Objectives written before on_end take the configs alone; their members are stored when they return."""
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11))
    res = run_sweep(spec, storage_url, members=2, objective=F.objective,
                    pack_objective=lambda cfgs: [F.objective(c) for c in cfgs], progress=False)
    assert res.counts == {"complete": 2}
