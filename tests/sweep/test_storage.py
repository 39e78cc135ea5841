"""SweepStore on every backend: queue, atomic claims, what a trial keeps, duplicates and stale workers."""

import json
import math
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from sweep_fakes import claim_all, objective, small_spec

from lorascale.errors import ConfigError, ConfigErrors, StorageMissing
from lorascale.sweep.fit import fit
from lorascale.sweep.report import fit_to_dict
from lorascale.sweep.storage import CURVE_POINTS, Outcome, SweepStore, default_storage_url


def entries(spec):
    return [(p.key, p.attrs(), p.train.to_dict()) for p in spec.points]


def silence(store, claim, seconds):
    """Make a claim's last heartbeat ``seconds`` old: Optuna's heartbeat row (SQLite) or our attr (journal)."""
    if store.backend.kind == "journal":
        claim.trial.set_user_attr("heartbeat", time.time() - seconds)
        return
    con = sqlite3.connect(store.backend.path)
    with con:
        n = con.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', ?) WHERE trial_id ="
                        " (SELECT trial_id FROM trials WHERE number = ?)", (f"-{seconds} seconds", claim.number)).rowcount
    con.close()
    assert n == 1, "the claim recorded no Optuna heartbeat"


def test_enqueue_is_idempotent_and_claims_pop_each_point_once(storage_url):
    spec = small_spec()
    store = SweepStore.open(storage_url, "t", "create")
    assert store.enqueue(entries(spec)) == len(spec.points) == 6
    assert store.enqueue(entries(spec)) == 0  # every key already has a live trial
    other = SweepStore.open(storage_url, "t", "write")  # a second handle, as a second worker would hold
    claims = []
    for s in (store, other) * 3:
        claims.append(s.claim("w"))
    assert store.claim("w") is None and other.claim("w") is None
    assert sorted(c.key for c in claims) == sorted(p.key for p in spec.points)
    assert {t.state for t in store.trials()} == {TrialState.RUNNING}
    assert sorted(c.number for c in claims) == list(range(6))  # ask() popped the queue in order, made no trial


def test_processes_claiming_at_once_never_share_a_trial(storage_url, tmp_path):
    """4 processes released at the same instant race for 60 trials. Before SQLite transactions were
    made BEGIN IMMEDIATE, 1–6 trials per run were claimed twice here."""
    import multiprocessing as mp
    from collections import Counter

    spec = small_spec(ranks=(4, 16, 64, 256), lrs=list(range(-20, -5)))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    out, barrier = tmp_path / "claims.txt", str(tmp_path / "barrier")  # released together once all 4 have imported
    procs = [mp.get_context("spawn").Process(target=claim_all, args=(storage_url, "t", str(out), barrier, 4)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert len(out.read_text().splitlines()) == 4  # every process got through the barrier and claimed
    claimed = Counter(int(x) for x in out.read_text().split())
    assert sorted(claimed) == list(range(60)) and set(claimed.values()) == {1}


def test_a_trial_keeps_config_curve_value_and_status(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", "create")
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
    assert t.params == {"lr": 2.0**-10, "rank": 4, "alpha_mult": 1.0, "seed": 0}  # the rate itself, on a log scale
    assert t.distributions["lr"].log and a["label"] == "A1" and a["val_loss"] == 2.7
    (rec,) = store.records()
    out = rec.outcome
    assert (out.status, out.final_ema_loss, out.eval_value, out.val_loss) == ("complete", 2.5, 2.7, 2.7)
    assert (rec.rank, rec.config) == (4, "A1")


def test_diverged_is_finished_with_inf_and_failed_goes_back_in_the_queue(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    c1, c2 = store.claim(), store.claim()
    store.finish(c1, Outcome("diverged", math.inf, "val_nll", None, None, 0.3, ((1, 4.0),), "loss exploded"))
    store.finish(c2, Outcome("failed", math.nan, message="RuntimeError: boom"))
    by_key = {t.user_attrs["key"]: t for t in store.trials()}
    d, f = by_key[c1.key], by_key[c2.key]
    assert d.state == TrialState.COMPLETE and d.value == math.inf and d.user_attrs["status"] == "diverged"
    assert d.user_attrs["final_ema_loss"] == "inf"  # strict JSON has no inf token: the string
    assert f.state == TrialState.FAIL and f.user_attrs["message"] == "RuntimeError: boom"
    assert store.done_keys() == {c1.key}
    assert store.enqueue(entries(spec)) == 1  # only the failed point is queued again
    recs = {r.key: r for r in store.records()}
    assert recs[c1.key].outcome.status == "diverged" and recs[c1.key].outcome.final_ema_loss == math.inf
    assert recs[c2.key].outcome.status == "failed"
    c3 = store.claim()
    store.finish(c3, objective_outcome(spec, c3.key))
    assert {r.key: r.outcome.status for r in store.records()} == {c1.key: "diverged", c2.key: "complete"}  # retry wins


def objective_outcome(spec, key):
    (p,) = [p for p in spec.points if p.key == key]
    return objective(p.train)


def test_duplicate_trials_of_one_point_run_once(storage_url, monkeypatch):
    """Two sweeps enqueueing at the same moment both create a trial per key; the lower number wins."""
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", "create")
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
    store = SweepStore.open(storage_url, "t", "create", grace_s=120)
    store.enqueue(entries(spec))
    dead = store.claim("localhost-but-not-really:1")  # another host, silent past the grace period
    silence(store, dead, 600)
    alive = store.claim("elsewhere:2")  # another host, recent heartbeat: left alone
    import socket
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()  # a pid on this host that no longer runs
    gone = store.claim(f"{socket.gethostname()}:{p.pid}")
    failed = store.fail_stale()
    assert sorted(failed) == sorted([dead.number, gone.number])
    states = {t.number: t.state for t in store.trials()}
    assert states[alive.number] == TrialState.RUNNING
    assert states[dead.number] == states[gone.number] == TrialState.FAIL
    requeued = [t for t in store.trials((TrialState.WAITING,))]
    assert sorted(t.user_attrs["key"] for t in requeued) == sorted([dead.key, gone.key])
    assert all(t.user_attrs["config"] == store_config(spec, t.user_attrs["key"]) for t in requeued)
    assert {t.user_attrs.get("status") for t in requeued} == {None}  # a retry keeps the point, not the last run
    assert sorted(t.system_attrs["failed_trial"] for t in requeued) == sorted([dead.number, gone.number])  # Optuna's link
    recs = {r.key: r.outcome for r in store.records()}
    assert recs[dead.key].status == recs[gone.key].status == "interrupted"  # Optuna's heartbeat sets no status: read so
    assert "died" in recs[gone.key].message


def test_a_finished_trial_that_a_stale_check_marked_interrupted_reads_finished(storage_url):
    """The race: a worker writes its outcome attrs, a stale check (its heartbeat looked old) writes status
    "interrupted", the worker's tell makes the trial COMPLETE and the check's FAIL then loses. point_states counts
    the trial finished (never re-run), so records() must not read it interrupted (left out of every fit)."""
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    for claim, value in ((store.claim(), 1.25), (store.claim(), math.inf)):
        status = "complete" if math.isfinite(value) else "diverged"
        for k, v in Outcome(status, value).stored_attrs().items():  # the worker's _finish, up to its tell
            claim.trial.set_user_attr(k, v)
        st = store.backend.storage  # the stale check's _fail, up to its state change
        st.set_trial_user_attr(store._id_of(claim.number), "status", "interrupted")
        store.study.tell(claim.trial, value)
    assert store.point_states({p.key for p in spec.points})["finished"] == 2
    outs = {r.outcome.status: r.outcome.final_ema_loss for r in store.records()}
    assert outs == {"complete": 1.25, "diverged": math.inf}


def test_a_trial_the_stale_check_failed_after_its_outcome_reads_interrupted(storage_url):
    """The other order of that race: the worker writes "complete", the stale check fails the trial before the
    worker's tell. The point is re-queued and runs again, so this attempt is interrupted, not a COMPLETE record
    without a loss (which fits would score +inf, as if it had diverged)."""
    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    claim = store.claim()
    for k, v in Outcome("complete", 1.25).stored_attrs().items():  # the worker's _finish, up to its tell
        claim.trial.set_user_attr(k, v)
    store.backend.storage.set_trial_state_values(store._id_of(claim.number), TrialState.FAIL)  # the check's FAIL wins
    [rec] = store.records()
    assert rec.outcome.status == "interrupted"


def test_the_worker_whose_tell_loses_that_race_drops_its_result_without_crashing(storage_url, caplog):
    """The same race seen from the worker: its tell comes after the check's FAIL. Optuna refuses to tell a
    FAIL trial (a plain ValueError); the worker logs the drop and goes on, and the point stays re-queued."""
    from lorascale.sweep.packs import store_outcome

    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    claim = store.claim()
    tell = store.study.tell

    def check_first(*a, **kw):  # the stale check's FAIL lands just before the worker's tell
        store.backend.storage.set_trial_state_values(store._id_of(claim.number), TrialState.FAIL)
        return tell(*a, **kw)

    store.study.tell = check_first
    with caplog.at_level("WARNING"):
        store_outcome(store, claim, Outcome("complete", 1.25))
    assert "this attempt's result (complete) is dropped" in caplog.text
    assert store.study.get_trials(deepcopy=False)[claim.number].state == TrialState.FAIL
    [rec] = store.records()
    assert rec.outcome.status == "interrupted"


def test_a_claim_that_breaks_off_hands_its_trial_back(storage_url, monkeypatch):
    """The database fails (locked past its timeout) after ask() made the trial RUNNING: the trial is failed,
    not left RUNNING with no worker, so the next sweep queues the point again."""
    from optuna.trial import Trial

    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    real = Trial.set_user_attr

    def locked(self, key, value):
        if key == "worker":
            raise sqlite3.OperationalError("database is locked")
        return real(self, key, value)

    monkeypatch.setattr(Trial, "set_user_attr", locked)
    with pytest.raises(sqlite3.OperationalError):
        store.claim()
    monkeypatch.setattr(Trial, "set_user_attr", real)
    [t] = store.study.get_trials(deepcopy=False)
    assert t.state == TrialState.FAIL and t.user_attrs["status"] == "interrupted"
    assert "database is locked" in t.user_attrs["message"]
    assert store.enqueue(entries(spec)) == 1 and store.claim() is not None  # queued again, and claimable


def store_config(spec, key):
    return next(p.train.to_dict() for p in spec.points if p.key == key)


def test_heartbeat_keeps_a_long_trial_alive(storage_url, monkeypatch):
    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, "t", "create", grace_s=60)
    store.enqueue(entries(spec))
    c = store.claim("elsewhere:7")
    silence(store, c, 600)
    beats, real = [], store._beat
    monkeypatch.setattr(store, "_beat", lambda trial: (real(trial), beats.append(time.monotonic())))
    with store.heartbeat(c, interval=0.05):
        deadline = time.monotonic() + 60  # wait for a recorded beat, not a fixed time: a loaded machine
        while len(beats) < 2 and time.monotonic() < deadline:  # (the suite beside a training job) delays the thread
            time.sleep(0.05)
    assert len(beats) >= 2 and store.fail_stale() == []  # the beats refreshed it
    silence(store, c, 600)
    assert store.fail_stale() == [c.number]  # the same silence without beats: failed (the test can fail)


def test_open_missing_storage_or_study_is_a_config_error(tmp_path):
    with pytest.raises(StorageMissing, match="does not exist") as e:
        SweepStore.open(f"sqlite:///{tmp_path / 'none.db'}", "t")
    assert e.value.field == "storage" and not (tmp_path / "none.db").exists()
    url = f"sqlite:///{tmp_path / 's.db'}"
    SweepStore.open(url, "a", "create")
    with pytest.raises(StorageMissing, match="holds: a") as e:
        SweepStore.open(url, "b")
    assert e.value.field == "study"
    with pytest.raises(ConfigError, match="not a storage URL"):
        SweepStore.open("results.db", "a", "create")


def test_default_storage_is_sqlite_next_to_the_spec(tmp_path):
    assert default_storage_url(tmp_path / "configs" / "s.yaml") == f"sqlite:///{tmp_path / 'configs' / 's.db'}"


def test_study_opens_in_plain_optuna(storage_url):
    """What optuna-dashboard sees: a minimize study whose best trial is the best finished point."""
    spec = small_spec(ranks=(4,), lrs=(-12, -10, -8))
    from sweep_fakes import populate

    populate(storage_url, spec)
    store = SweepStore.open(storage_url, "t")
    study = optuna.load_study(study_name="t", storage=store.backend.storage)
    assert study.best_trial.params["lr"] == 2.0**-10  # the synthetic optimum of A1 at r = 4: −8 − 0.5·2
    assert study.best_trial.user_attrs["label"] == "A1" and study.metric_names == ["final_ema_loss"]
    assert study.user_attrs["spec"]["name"] == "t"


# ---- old studies, the schema, the queue -------------------------------------------------------

OLD_STUDY = Path(__file__).parent / "data" / "mua-minilm-cpu-40steps.db"  # the 40-step study docs/results once held
ROUNDING = dict(rel=1e-12, abs=1e-12)  # numpy's least squares vs the former closed form: float rounding only
# Student's t came from a table rounded to 3 decimals when the JSON was written (scipy's t.ppf since 6a1adeb):
# an interval keeps its centre and its half-width moves by at most 0.0005/t ≤ 0.0005/2.08 (t ≥ 2.08 at df ≤ 20).
T_TABLE_ROUNDING = 0.0005 / 2.08


def test_an_old_study_gives_the_same_fit_numbers(tmp_path):
    """The 40-step MiniLM study (docs/results/mua-minilm-cpu/study.db until its 80-step re-run) was written
    before the records module (params log2_lr, wide placeholder distributions, left in WAL mode). The JSON beside this test is `lorascale fit
    --json` of it with n_boot=200, seed=0, computed by the code before this change (commit a8ab14a). Its
    intervals were recomputed when each configuration got its own bootstrap stream (sweep/stats.py
    bootstrap_rng; every other number, all 12-digit equal, kept from a8ab14a); the centre-and-width
    comparison (T_TABLE_ROUNDING) dates from the rounded t table and now has slack to spare. Each η*'s "value" (the
    refining parabola's, though it was called the best mean) is now "vertex_value", beside "best_value": the best
    grid point's mean over seeds, computed for the JSON straight from the stored runs, not by the fit. Equal best
    grid points now give the interior one (sweep/stats.py refine_optimum): Init[B]'s accuracy ties at 2^-14 (the
    grid's edge) and 2^-13, so its η*, the transfer gap and two bootstrapped intervals of config 1 were updated.
    Edge optima give no verdict (sweep/fit.py): Init[B]'s accuracy optimum at r = 4 is on the grid's edge, so
    its rank_invariant and the transfer's within_one_step became null, and its slope note names unmeasured rates.
    Each optimum's ``gap`` flag (no missing grid value beside it: false throughout) was added with the key.
    A regression test, not an oracle: its numbers come from this code's history. The statistics have their
    independent checks against scipy and hand-derived values in test_fit.py and test_stats.py."""
    db = tmp_path / "study.db"
    shutil.copy(OLD_STUDY, db)
    before = db.read_bytes()
    records = SweepStore.open(f"sqlite:///{db}", "mua-minilm-cpu").records()
    assert len(records) == 50 and {r.outcome.status for r in records} == {"complete"}
    expected = json.loads((Path(__file__).parent / "data" / "mua-minilm-cpu-fit.json").read_text())
    for metric in ("ema", "eval"):
        got = json.loads(json.dumps(fit_to_dict(fit(records, metric, n_boot=200, seed=0))))
        assert_same(got, expected[metric], metric)
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["study.db"]  # read-only


def assert_same(got, want, where):
    if where.endswith("_ci") and isinstance(want, list) and len(want) == 2 and want[1] > want[0]:
        assert (got[0] + got[1]) / 2 == pytest.approx((want[0] + want[1]) / 2, **ROUNDING), where
        assert (got[1] - got[0]) / (want[1] - want[0]) == pytest.approx(1.0, rel=T_TABLE_ROUNDING, abs=0), where
    elif isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, **ROUNDING), where
    else:
        assert got == want, where


def test_old_inf_strings_read_as_the_numbers_they_name(storage_url):
    """The oldest studies stored "inf"/"nan" strings, as studies do again: they read as those floats, so a complete
    run's NaN held-out value scores as the worst (+inf), not as a missing result."""
    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    c1, c2 = store.claim(), store.claim()
    for c, status, value in ((c1, "diverged", math.inf), (c2, "complete", 1.5)):
        for k, v in {"status": status, "final_ema_loss": "inf" if status == "diverged" else value,
                     "eval_metric": "val_nll", "eval_value": "nan", "val_loss": "-inf", "wall_time": 1.0}.items():
            c.trial.set_user_attr(k, v)  # the old writer, attr by attr
        store.study.tell(c.trial, value)
    recs = {r.key: r.outcome for r in store.records()}
    assert (recs[c1.key].status, recs[c1.key].final_ema_loss, recs[c1.key].val_loss) == ("diverged", math.inf, -math.inf)
    assert recs[c2.key].final_ema_loss == 1.5 and math.isnan(recs[c2.key].eval_value)
    rep = fit(list(store.records()), "ema", n_boot=0)
    assert rep.counts["diverged"] == 1 and rep.counts["complete"] == 1
    from lorascale.sweep.optima import score

    assert {score(r, "eval") for r in store.records()} == {math.inf}  # diverged, and complete with a NaN NLL


def test_values_beyond_the_old_placeholder_ranges_are_stored(storage_url):
    """Seed 2^31 + 5 passed spec validation, then crashed enqueueing against the old fixed range
    (−2^31, 2^31) with the first points already WAITING. (log2 η beyond [−40, 10] is now refused by
    the spec itself: tests/sweep/test_spec.py.)"""
    spec = small_spec(ranks=(4,), lrs=(-10, -40), seeds=(0, 2**31 + 5))
    store = SweepStore.open(storage_url, "t", "create")
    assert store.enqueue(entries(spec)) == 4
    (t,) = [t for t in store.trials() if t.params["lr"] == 2.0**-40 and t.params["seed"] == 2**31 + 5]
    d = t.distributions
    span = (d["lr"].low, d["lr"].high, d["seed"].low, d["seed"].high)
    assert span == (2.0**-40, 2.0**-10, 0, 2**31 + 5)  # the spec's own span


def test_enqueue_is_all_or_nothing(storage_url):
    spec = small_spec(ranks=(4,), lrs=(-12, -11, -10))
    bad = entries(spec)
    bad[2] = (bad[2][0], bad[2][1], {**bad[2][2], "note": math.nan})  # a value JSON cannot hold
    bad[1] = (bad[1][0], bad[1][1], {**bad[1][2], "where": Path("/tmp")})  # one it cannot hold at all
    store = SweepStore.open(storage_url, "t", "create")
    with pytest.raises(ConfigErrors) as e:
        store.enqueue(bad)
    assert [err.field for err in e.value.errors] == ["spec", "spec"]
    assert {bad[1][0], bad[2][0]} == {err.message.split()[1] for err in e.value.errors}  # each names its point
    assert store.trials() == []  # not one trial added
    assert store.enqueue(entries(spec)) == 3


def test_a_claim_that_another_worker_took_since_the_look_moves_on(storage_url, monkeypatch):
    """The look at the queue and the claim are two steps: a trial another worker claimed in between is
    passed over (the storage's WAITING → RUNNING succeeds once), and nothing else is created."""
    spec = small_spec(ranks=(4,), lrs=(-11, -10))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    taken = store.claim("other")  # the queue now holds one trial
    real = store.trials
    stale = real()  # a look from before "other" claimed: both trials WAITING
    assert [t.state for t in stale] == [TrialState.RUNNING, TrialState.WAITING]
    stale = [SimpleNamespace(state=TrialState.WAITING, number=t.number, user_attrs=t.user_attrs) for t in stale]
    monkeypatch.setattr(store, "trials", lambda states=None: stale if states is None else real(states))
    mine = store.claim("w")
    assert mine.number == 1 and mine.key != taken.key
    monkeypatch.setattr(store, "trials", lambda states=None: stale if states is None else real(states))
    assert store.claim("w") is None  # both taken: none left, and no trial was made for the attempt
    assert len(store.study.get_trials()) == 2


def test_a_point_queued_again_after_an_interruption_keeps_its_place_in_the_spec(storage_url):
    """Re-queued points are new trials at the end of the study; they are claimed where the spec put them,
    before the points after them, so a spec run seed by seed finishes one seed before the next."""
    spec = small_spec(ranks=(4,), lrs=(-12, -11, -10))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    first = store.claim("w")
    store.release(first, KeyboardInterrupt())  # Ctrl-C: recorded interrupted (FAIL)
    assert store.enqueue(entries(spec)) == 1  # the next sweep queues it again, as trial 3
    order = [store.claim("w") for _ in range(3)]
    assert [c.number for c in order] == [3, 1, 2] and order[0].key == first.key
    assert store.claim("w") is None


def test_storage_ids_are_optunas_own(storage_url):
    """The one lookup of a trial's storage id (by number, through BaseStorage's public methods) must
    agree with the id Optuna's Trial keeps privately; this fails loudly if Optuna changes either."""
    spec = small_spec(ranks=(4,), lrs=(-12, -11, -10))
    store = SweepStore.open(storage_url, "t", "create")
    store.enqueue(entries(spec))
    claims = [store.claim("w") for _ in range(3)]
    assert [store._id_of(c.number) for c in claims] == [c.trial._trial_id for c in claims]


# ---- signals, specs, the end-of-sweep summary -------------------------------------------------


def test_a_signal_during_finish_never_leaves_half_an_outcome(storage_url, monkeypatch):
    """SIGTERM arrives between the outcome's first attr and the rest: the trial is still recorded
    whole (COMPLETE, every attr), and the signal is raised once it is."""
    import os
    import signal

    from lorascale.interrupts import Interrupted, stop_on_signals
    from lorascale.sweep.records import OUTCOME_ATTRS

    spec = small_spec(ranks=(4,), lrs=(-10,))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue(entries(spec))
    claim = store.claim()
    out = objective(spec.points[0].train)
    trial_type = type(claim.trial)
    real = trial_type.set_user_attr
    written = []

    def set_then_signal(self, key, value):
        real(self, key, value)
        written.append(key)
        if len(written) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler stops the job right here

    monkeypatch.setattr(trial_type, "set_user_attr", set_then_signal)
    with pytest.raises(Interrupted), stop_on_signals():
        store.finish(claim, out)
    (t,) = store.trials()
    assert t.state == TrialState.COMPLETE and t.value == out.final_ema_loss
    assert t.user_attrs["status"] == "complete" and set(out.stored_attrs()) <= set(t.user_attrs)
    assert set(written) == set(out.stored_attrs()) and set(out.stored_attrs()) <= set(OUTCOME_ATTRS)


def test_a_signal_during_a_claim_hands_the_point_back(storage_url, monkeypatch):
    import os
    import signal

    from lorascale.interrupts import Interrupted, stop_on_signals

    spec = small_spec(ranks=(4,), lrs=(-10, -9))
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue(entries(spec))
    trial_type = optuna.trial.Trial  # what study.ask() returns
    real = trial_type.set_user_attr

    def signal_at_worker(self, key, value):
        real(self, key, value)
        if key == "worker":
            os.kill(os.getpid(), signal.SIGTERM)  # stopped in the middle of taking a point

    monkeypatch.setattr(trial_type, "set_user_attr", signal_at_worker)
    with pytest.raises(Interrupted), stop_on_signals():
        store.claim()
    assert [(t.state, t.user_attrs.get("status"), t.user_attrs.get("message")) for t in store.trials()] == [
        (TrialState.FAIL, "interrupted", "interrupted by SIGTERM before it ran"), (TrialState.WAITING, None, None)]
    monkeypatch.undo()
    store.enqueue(entries(spec))  # the next sweep queues the point again
    assert sorted(t.user_attrs["key"] for t in store.trials((TrialState.WAITING,))) == sorted(p.key for p in spec.points)


def test_another_spec_under_a_stored_name_is_refused_unless_extending(storage_url):
    from sweep_fakes import populate

    from lorascale.sweep.executors import run_sweep

    first = small_spec(ranks=(4,), lrs=(-12, -11))
    populate(storage_url, first)
    part = small_spec(ranks=(4,), lrs=(-12,))  # a part of the stored spec: a re-run, welcome
    assert run_sweep(part, storage_url, objective=objective, progress=False).ran == 0
    other = small_spec(ranks=(4,), lrs=(-12, -10))  # same name "t", one point the study does not hold
    with pytest.raises(ConfigError, match="holds 2 points of another spec, and this spec would add 1 new") as e:
        run_sweep(other, storage_url, objective=objective, progress=False)
    assert e.value.field == "name" and "`extend_study`" in e.value.fix  # a setting, not a flag: commands/ names the flag
    store = SweepStore.open(storage_url, "t")
    assert len(store.trials()) == 2  # nothing enqueued
    assert store.study.user_attrs["spec"]["grid"]["log2_lr"] == [-12, -11] and "extended_by" not in store.study.user_attrs
    res = run_sweep(other, storage_url, objective=objective, progress=False, extend_study=True)
    assert res.ran == 1 and len(SweepStore.open(storage_url, "t").done_keys()) == 3
    study = SweepStore.open(storage_url, "t").study
    assert study.user_attrs["spec"]["grid"]["log2_lr"] == [-12, -11]  # the first spec stays the study's
    assert [s["grid"]["log2_lr"] for s in study.user_attrs["extended_by"]] == [[-12, -10]]


def test_an_extension_that_renames_a_stored_configuration_is_refused(storage_url):
    """Spec B extends the study with a wider grid, its one configuration renamed: the shared points keep
    their stored label, so the fit would split one configuration in two (the old name with the old rates,
    the new name with only the new ones). Refused, by plan and by run, before anything is stored."""
    from sweep_fakes import populate

    from lorascale.sweep.executors import plan_sweep, run_sweep

    populate(storage_url, small_spec(ranks=(4,), lrs=(-12, -11)))
    renamed = small_spec(ranks=(4,), lrs=(-12, -11, -10), configs=[{"name": "Init[A] α=1", "rule": "mua", "init": "A",
                                                                    "gamma": 0}])
    for attempt in (lambda: plan_sweep(renamed, storage_url, extend_study=True),
                    lambda: run_sweep(renamed, storage_url, objective=objective, progress=False, extend_study=True)):
        with pytest.raises(ConfigError, match="'Init\\[A\\] α=1' is stored as 'A1'") as e:
            attempt()
        assert e.value.field == "configs" and "name those configurations as the study stores them" in e.value.fix
    store = SweepStore.open(storage_url, "t")
    assert len(store.trials()) == 2 and "extended_by" not in store.study.user_attrs  # nothing stored
    kept = small_spec(ranks=(4,), lrs=(-12, -11, -10))  # the same extension under the stored name runs
    assert run_sweep(kept, storage_url, objective=objective, progress=False, extend_study=True).ran == 1


def test_the_stored_spec_is_welcome_while_another_sweep_still_adds_its_points(storage_url):
    """Two `sweep` commands of one spec (two machines): the first stored the spec and has added only some of
    its points when the second checks. The second must not call its own spec "another spec" (a race seen in
    test_two_sweep_commands_at_once_share_the_work, reproduced here without processes)."""
    spec = small_spec(ranks=(4, 16), lrs=(-12, -11))
    first = SweepStore.open(storage_url, spec.name, "create")
    keys = {p.key for p in spec.points}
    first.save_spec(spec.raw, keys)
    first.enqueue(entries(spec)[:3])  # 3 of its 4 points so far
    second = SweepStore.open(storage_url, spec.name, "write")
    assert second.spec_conflict(spec.raw, keys) is None
    second.save_spec(spec.raw, keys)  # no refusal, and no "extended_by" for the same spec
    assert "extended_by" not in second.study.user_attrs
    other = small_spec(ranks=(4, 16), lrs=(-12, -10))  # a different spec under the same name is still refused
    assert second.spec_conflict(other.raw, {p.key for p in other.points}).field == "name"


def test_point_states_count_each_point_once(storage_url):
    """A retried point and a duplicate that never ran are not failures of their points."""
    spec = small_spec(ranks=(4,), lrs=(-12, -11, -10, -9))
    a, b, c, d = (p.key for p in spec.points)
    store = SweepStore.open(storage_url, spec.name, "create")
    store.enqueue(entries(spec))
    failed = Outcome("failed", math.nan, message="boom")
    store.finish(store.claim(), failed)  # a fails once ...
    store.finish(store.claim(), objective(spec.points[1].train))  # b finishes
    store.claim()  # c is running
    store.finish(store.claim(), failed)  # d fails
    store.enqueue(entries(spec)[:1])
    store.finish(store.claim(), objective(spec.points[0].train))  # ... and a's retry finishes
    b_attrs = next(t.user_attrs for t in store.trials() if t.user_attrs["key"] == b)
    store.study.add_trial(optuna.trial.create_trial(  # a second trial of b closed without running (a race of two enqueues)
        state=TrialState.FAIL, user_attrs={k: b_attrs[k] for k in ("key", "point", "label", "config")} | {"status": "duplicate"}))
    assert store.counts({a, b, c, d}) == {"complete": 2, "fail": 3, "running": 1}  # trials: retries and duplicates too
    assert store.point_states({a, b, c, d}) == {"finished": 2, "queued": 1, "failed": 1, "missing": 0}
    assert store.point_states({a, b, c, d, "never-enqueued"}) == {"finished": 2, "queued": 1, "failed": 1, "missing": 1}


def test_a_reader_process_never_takes_the_wal_from_a_live_writer(tmp_path):
    """A found bug: opening a second store in the writer's process read the SQLite header with Python's
    open(); its close() dropped every POSIX lock the process held on the file, SQLite's shared lock
    included. The next reader process to close its connection then believed itself the last one,
    checkpointed and unlinked the writer's -wal, and later commits went to an unlinked file that no
    other process could see (a live MiniLM sweep showed 'RUNNING' for finished trials that way)."""
    import subprocess
    import sys

    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    spec = small_spec()
    a = SweepStore.open(url, spec.name, "create")
    a.enqueue(entries(spec))
    b = SweepStore.open(url, spec.name, "write")  # the second open in one process, as `sweep --workers 1` does
    try:
        first = b.claim()
        b.finish(first, Outcome("complete", 1.0))
        reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
                  " print(c.execute(\"SELECT count(*) FROM trials WHERE state = 'COMPLETE'\").fetchone()[0]); c.close()")
        seen = subprocess.run([sys.executable, "-c", reader, str(db)], capture_output=True, text=True, check=True)
        assert seen.stdout.strip() == "1" and (tmp_path / "s.db-wal").exists()  # the reader left the writer's WAL
        second = b.claim()
        b.finish(second, Outcome("complete", 2.0))
        seen = subprocess.run([sys.executable, "-c", reader, str(db)], capture_output=True, text=True, check=True)
        assert seen.stdout.strip() == "2"  # the next commit is visible to another process
    finally:
        b.close()
        a.close()
