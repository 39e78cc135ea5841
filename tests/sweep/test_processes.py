"""`lorascale sweep --workers 2` under Ctrl-C, SIGTERM and kill -9 of its parent (sweep/processes.py).

Each test runs the real command table in a subprocess, with the synthetic objective of sweep_fakes in
place of `train`, so that a trial lasts as long as SWEEP_FAKE_SLEEP says: the signal always lands
while both workers are mid-trial. Most of each test's time is spawning the two workers."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sweep_fakes as F
import yaml
from optuna.trial import TrialState

from lorascale.sweep.executors import run_sweep
from lorascale.sweep.spec import load_spec
from lorascale.sweep.storage import SweepStore

SRC = Path(__file__).resolve().parents[2] / "src"
# `lorascale sweep` with the synthetic objective; the workers import it by name
DRIVER = """
import functools, sys
import lorascale.sweep.executors as ex
ex.run_sweep = functools.partial(ex.run_sweep, objective="sweep_fakes:objective")
from lorascale.cli import main
sys.exit(main(sys.argv[1:]))
"""
TRIAL_S = 60  # longer than any test waits: a trial that ends did so because it was stopped
START_S = 120  # spawning two workers takes 2-3 s on an idle machine, ~30 s on a loaded one
STOP_S = 10  # "within a few seconds": workers record their trial and exit in well under 1 s


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, never reaped by an orphan's new parent) does not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_for(what, timeout: float, proc=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = what()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited early with {proc.returncode}")
        time.sleep(0.05)
    pytest.fail(f"gave up after {timeout} s")


def start_sweep(tmp_path, **env):
    """Start the sweep in a session of its own (a terminal's process group) and wait until both
    workers are mid-trial; returns (process, spec path, worker pids)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "proc", "base": F.BASE, "grid": {
        "configs": F.MUA_CONFIGS[:1], "ranks": [4, 16], "log2_lr": [-12, -11], "seeds": [0]}}))
    calls = tmp_path / "calls.txt"
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(Path(__file__).parent)]),
                   SWEEP_FAKE_CALLS=str(calls), SWEEP_FAKE_SLEEP=str(TRIAL_S), **env)
    # an earlier in-process CLI call set this in the test process: the sweep's own driver must set it for its workers
    environ.pop("PYTHONWARNINGS", None)
    with open(tmp_path / "stderr.txt", "w") as err:  # a file: orphans may hold it after the parent is gone
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, "sweep", str(spec), "--workers", "2", "--quiet"],
                                env=environ, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)

    def workers():
        rows = calls.read_text().split("\n") if calls.exists() else []
        pids = {int(r.split()[1]) for r in rows if r.count(" ") == 1}
        return sorted(pids) if len(pids) == 2 else None

    return proc, spec, wait_for(workers, START_S, proc)


def trials_by_state(spec) -> dict:
    """{state: [(status, message) of each trial]} of the sweep's study."""
    store = SweepStore.open(f"sqlite:///{spec.with_suffix('.db')}", "proc")
    out = {}
    for t in store.trials():
        out.setdefault(t.state.name, []).append((t.user_attrs.get("status"), t.user_attrs.get("message")))
    return out


# what every test leaves: each worker recorded its trial interrupted (by the SIGTERM the parent or the
# kernel sent it, never by the terminal's Ctrl-C, which workers ignore); the two points nobody took wait
STOPPED = {"FAIL": [("interrupted", "interrupted by SIGTERM")] * 2, "WAITING": [(None, None)] * 2}


def test_ctrl_c_stops_the_workers_without_a_traceback_or_warnings(tmp_path):
    proc, spec, workers = start_sweep(tmp_path, SWEEP_FAKE_WARN="1")
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the parent and both workers get it
    assert proc.wait(timeout=STOP_S + 30) == 130
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "FutureWarning" not in err, err  # each worker call warned; the CLI's filters reach the workers
    assert "interrupted by Ctrl-C" in err and "Run the same command to resume" in err
    assert not any(alive(p) for p in workers)
    assert trials_by_state(spec) == STOPPED


def test_sigterm_to_the_parent_stops_its_workers_and_exits_143(tmp_path):
    proc, spec, workers = start_sweep(tmp_path)
    os.kill(proc.pid, signal.SIGTERM)  # Kubernetes: only the main process gets it
    assert proc.wait(timeout=STOP_S + 30) == 143  # 128 + SIGTERM, as 130 is 128 + SIGINT
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and "interrupted by SIGTERM" in err, err
    assert not any(alive(p) for p in workers)
    assert trials_by_state(spec) == STOPPED


def test_kill_9_of_the_parent_leaves_no_orphan_and_the_sweep_resumes(tmp_path):
    proc, spec, workers = start_sweep(tmp_path)
    proc.kill()  # SIGKILL: the parent can do nothing; its workers must notice on their own
    proc.wait()
    wait_for(lambda: not any(alive(p) for p in workers), STOP_S)
    assert trials_by_state(spec) == STOPPED  # none is left RUNNING for a stale check to find

    loaded = load_spec(spec)
    url = f"sqlite:///{spec.with_suffix('.db')}"
    res = run_sweep(loaded, url, objective=F.objective, progress=False)
    finished = Counter(t.user_attrs["key"] for t in SweepStore.open(url, "proc").trials((TrialState.COMPLETE,)))
    assert finished == Counter({p.key: 1 for p in loaded.points})  # exactly one finished trial per point
    assert res.ran == 4 and res.by_point == {"finished": 4, "queued": 0, "failed": 0, "missing": 0}
