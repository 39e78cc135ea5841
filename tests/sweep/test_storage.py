"""SweepStore on every backend: queue, atomic claims, what a trial keeps, duplicates and stale workers."""

import math
import time

import optuna
import pytest
from optuna.trial import TrialState
from sweep_fakes import claim_all, objective, small_spec

from lorascale.errors import ConfigError
from lorascale.sweep.storage import CURVE_POINTS, Outcome, SweepStore, default_storage_url


def entries(spec):
    return [(p.key, p.attrs(), p.train.to_dict()) for p in spec.points]


def test_enqueue_is_idempotent_and_claims_pop_each_point_once(storage_url):
    spec = small_spec()
    store = SweepStore.open(storage_url, "t", create=True)
    assert store.enqueue(entries(spec)) == len(spec.points) == 6
    assert store.enqueue(entries(spec)) == 0  # every key already has a live trial
    other = SweepStore.open(storage_url, "t")  # a second handle, as a second worker would hold
    claims = []
    for s in (store, other) * 3:
        claims.append(s.claim("w"))
    assert store.claim("w") is None and other.claim("w") is None
    assert sorted(c.key for c in claims) == sorted(p.key for p in spec.points)
    assert {t.state for t in store.trials()} == {TrialState.RUNNING}


def test_processes_claiming_at_once_never_share_a_trial(storage_url, tmp_path):
    """4 processes released at the same instant race for 60 trials. Before SQLite transactions were
    made BEGIN IMMEDIATE, 1–6 trials per run were claimed twice here."""
    import multiprocessing as mp
    from collections import Counter

    spec = small_spec(ranks=(4, 16, 64, 256), lrs=list(range(-20, -5)))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    out, start = tmp_path / "claims.txt", time.time() + 4.0  # after every process has imported
    procs = [mp.get_context("spawn").Process(target=claim_all, args=(storage_url, "t", str(out), start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    claimed = Counter(int(x) for x in out.read_text().split())
    assert sorted(claimed) == list(range(60)) and set(claimed.values()) == {1}


def test_a_trial_keeps_config_curve_value_and_status(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    claim = store.claim("host:1")
    curve = tuple((s, 3.0 - s / 1000) for s in range(1, 501))  # 500 logged steps
    store.finish(claim, Outcome("complete", 2.5, "val_nll", 2.7, 2.7, 1.5, curve, "", "/runs/x"))
    (t,) = store.trials()
    assert t.state == TrialState.COMPLETE and t.value == 2.5
    a = t.user_attrs
    assert a["config"] == spec.points[0].train.to_dict() and a["key"] == spec.points[0].key
    assert (a["status"], a["eval_metric"], a["eval_value"], a["wall_time"], a["run_dir"]) == ("complete", "val_nll", 2.7, 1.5, "/runs/x")
    iv = t.intermediate_values
    assert len(iv) == CURVE_POINTS and iv[500] == curve[-1][1] and iv[1] == curve[0][1]  # thinned, ends exact
    assert t.params == {"log2_lr": -10.0, "rank": 4, "alpha_mult": 1.0, "seed": 0}
    (rec,) = store.records()
    assert (rec.status, rec.ema_loss, rec.eval_value, rec.rank, rec.config) == ("complete", 2.5, 2.7, 4, "A1")


def test_diverged_is_finished_with_inf_and_failed_goes_back_in_the_queue(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    c1, c2 = store.claim(), store.claim()
    store.finish(c1, Outcome("diverged", math.inf, "val_nll", None, None, 0.3, ((1, 4.0),), "loss exploded"))
    store.finish(c2, Outcome("failed", math.nan, message="RuntimeError: boom"))
    by_key = {t.user_attrs["key"]: t for t in store.trials()}
    d, f = by_key[c1.key], by_key[c2.key]
    assert d.state == TrialState.COMPLETE and d.value == math.inf and d.user_attrs["status"] == "diverged"
    assert d.user_attrs["final_ema_loss"] == "inf"  # JSON has no inf; the record reads it back as a float
    assert f.state == TrialState.FAIL and f.user_attrs["message"] == "RuntimeError: boom"
    assert store.done_keys() == {c1.key}
    assert store.enqueue(entries(spec)) == 1  # only the failed point is queued again
    recs = {r.key: r for r in store.records()}
    assert recs[c1.key].status == "diverged" and recs[c1.key].ema_loss == math.inf
    assert recs[c2.key].status == "failed"
    c3 = store.claim()
    store.finish(c3, objective_outcome(spec, c3.key))
    assert {r.key: r.status for r in store.records()} == {c1.key: "diverged", c2.key: "complete"}  # retry wins


def objective_outcome(spec, key):
    (p,) = [p for p in spec.points if p.key == key]
    return objective(p.train)


def test_duplicate_trials_of_one_point_run_once(storage_url, monkeypatch):
    """Two sweeps enqueueing at the same moment both create a trial per key; the lower number wins."""
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    monkeypatch.setattr(store, "live_keys", lambda: set())  # the race: the second enqueuer saw nothing
    assert store.enqueue(entries(spec)) == 2
    claims = []
    while (c := store.claim()) is not None:
        claims.append(c)
    assert sorted(c.number for c in claims) == [0, 1]
    dups = [t for t in store.trials() if t.user_attrs.get("status") == "duplicate"]
    assert sorted(t.number for t in dups) == [2, 3] and {t.state for t in dups} == {TrialState.FAIL}


def test_stale_trials_fail_and_requeue(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10, -9, -8))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    dead = store.claim("localhost-but-not-really:1")  # another host, silent past the grace period
    store._storage.set_trial_user_attr(dead.trial_id, "heartbeat", time.time() - 600)
    alive = store.claim("elsewhere:2")  # another host, recent heartbeat: left alone
    import socket
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()  # a pid on this host that no longer runs
    gone = store.claim(f"{socket.gethostname()}:{p.pid}")
    failed = store.fail_stale(grace_s=120)
    assert sorted(failed) == sorted([dead.number, gone.number])
    states = {t.number: t.state for t in store.trials()}
    assert states[alive.number] == TrialState.RUNNING
    assert states[dead.number] == states[gone.number] == TrialState.FAIL
    requeued = [t for t in store.trials((TrialState.WAITING,))]
    assert sorted(t.user_attrs["key"] for t in requeued) == sorted([dead.key, gone.key])
    assert all(t.user_attrs["config"] == store_config(spec, t.user_attrs["key"]) for t in requeued)


def store_config(spec, key):
    return next(p.train.to_dict() for p in spec.points if p.key == key)


def test_heartbeat_keeps_a_long_trial_alive(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", create=True)
    store.enqueue(entries(spec))
    c = store.claim("elsewhere:7")
    store._storage.set_trial_user_attr(c.trial_id, "heartbeat", time.time() - 600)
    with store.heartbeat(c, interval=0.05):
        time.sleep(0.3)
    assert store.fail_stale(grace_s=60) == []  # beats of the last 0.3 s refreshed it


def test_open_missing_storage_or_study_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SweepStore.open(f"sqlite:///{tmp_path / 'none.db'}", "t")
    assert not (tmp_path / "none.db").exists()
    url = f"sqlite:///{tmp_path / 's.db'}"
    SweepStore.open(url, "a", create=True)
    with pytest.raises(ConfigError, match="holds: a"):
        SweepStore.open(url, "b")
    with pytest.raises(ConfigError, match="not a storage URL"):
        SweepStore.open("results.db", "a", create=True)


def test_default_storage_is_sqlite_next_to_the_spec(tmp_path):
    assert default_storage_url(tmp_path / "configs" / "s.yaml") == f"sqlite:///{tmp_path / 'configs' / 's.db'}"


def test_study_opens_in_plain_optuna(storage_url):
    """What optuna-dashboard sees: a minimize study whose best trial is the best finished point."""
    spec = small_spec(ranks=(4,), lrs=(-12, -10, -8))
    from sweep_fakes import populate

    populate(storage_url, spec)
    store = SweepStore.open(storage_url, "t")
    study = optuna.load_study(study_name="t", storage=store._storage)
    assert study.best_trial.params["log2_lr"] == -10.0  # the synthetic optimum of A1 at r = 4: −8 − 0.5·2
    assert study.user_attrs["spec"]["name"] == "t"
