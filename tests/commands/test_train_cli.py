"""`lorascale train` and `lorascale demo` end to end on tiny models; train under SIGTERM and full disks."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import torch

from lorascale.cli import main


def test_train_cli_writes_run_and_diverged_exit_0(tmp_path, capsys):
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "6", "--batch-size", "2", "--seq-len", "32",
            "--max-examples", "40", "--rule", "alpha-r", "--lr", "1e-3", "--quiet", "--out", str(tmp_path / "ok")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["status"] == "complete"
    argv[argv.index("1e-3")] = "1e5"
    argv[-1] = str(tmp_path / "boom")
    assert main(argv) == 0  # a sweep must carry on past a diverged run
    assert json.loads((tmp_path / "boom" / "summary.json").read_text())["status"] == "diverged"
    assert "diverged" in capsys.readouterr().err


def test_train_cli_missing_column_fails_before_training(tmp_path, capsys):
    f = tmp_path / "d.jsonl"
    f.write_text('{"body": "x"}\n')
    assert main(["train", "--model", "tiny-llama", "--data", str(f), "--out", str(tmp_path / "r")]) == 2
    assert "record 0 lacks text" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written


def test_demo_table_and_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny-llama", "--steps", "3", "--out", str(out), "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["rule"] for r in res["rows"]] == ["alpha-r", "lora-alpha"]
    assert all(r["statuses"] == ["complete"] for r in res["rows"])
    assert (out / "loss_curves.png").stat().st_size > 10_000
    assert main(["demo", "--model", "tiny-llama", "--out", str(out)]) == 2  # never overwrites a demo
    capsys.readouterr()
    (out / "loss_curves.png").unlink()
    # read back: the same rows and the figure again, nothing trained (the run folders are untouched)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    assert main(["demo", "--model", "tiny-llama", "--steps", "3", "--out", str(out), "--report-only", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [{k: r[k] for k in ("rule", "ema_loss", "eval")} for r in again["rows"]] == \
        [{k: r[k] for k in ("rule", "ema_loss", "eval")} for r in res["rows"]]
    assert (out / "loss_curves.png").stat().st_size > 10_000
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamps
    assert main(["demo", "--model", "tiny-llama", "--steps", "4", "--out", str(out), "--report-only"]) == 2  # other runs
    assert main(["demo", "--model", "tiny-llama", "--steps", "3", "--report-only"]) == 2  # which folder? --out is needed
    capsys.readouterr()
    (out / "alpha-r-seed1").mkdir()  # a demo of more seeds than asked for: refused, not read as one seed
    assert main(["demo", "--model", "tiny-llama", "--steps", "3", "--out", str(out), "--report-only"]) == 2
    assert "holds runs past 1 seed(s)" in capsys.readouterr().err


def test_train_cli_resume_continues_and_refuses_changed_settings(tmp_path, capsys, monkeypatch):
    from lorascale.train import Callback

    class StopAt4(Callback):
        def on_step_end(self, ctx, logs):
            if ctx.step == 4:
                raise KeyboardInterrupt  # before step 4 is logged or checkpointed: the last checkpoint is step 2's

    run = tmp_path / "r"
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "5", "--batch-size", "2", "--seq-len", "32",
            "--max-examples", "40", "--rule", "alpha-r", "--lr", "1e-3", "--save-every", "2", "--quiet", "--out", str(run)]
    with monkeypatch.context() as m:
        m.setattr("lorascale.commands.train.make_diagnostics", lambda args: [StopAt4()])
        assert main(argv) == 130
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"

    assert main(["train", "--resume", str(run), "--lr", "1e-2"]) == 2  # a resumed run keeps its settings
    assert "--lr: a resumed run keeps the settings in its config.json" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 5
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]  # the first run's step 3 came after its checkpoint at 2: replaced, not repeated


def test_train_cli_refuses_a_precision_the_launcher_contradicts(tmp_path, capsys, monkeypatch):
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "2", "--quiet", "--out", str(tmp_path / "r")]
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # as `accelerate launch --mixed_precision fp16` sets it
    assert main(argv + ["--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "--precision: the launcher set --mixed_precision fp16" in err and "Traceback" not in err
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    if not torch.cuda.is_available():
        assert main(argv + ["--precision", "fp16"]) == 2
        assert "--precision: fp16 needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
# ---- signals and full disks -----------------------------------------------------------------

TINY_TRAIN = ["train", "--model", "tiny-llama", "--data", "kjv", "--batch-size", "2", "--seq-len", "32", "--max-examples", "40",
              "--quiet"]
SRC = Path(__file__).resolve().parents[2] / "src"


def when_training(run_dir: Path, act, timeout: float = 120.0) -> threading.Event:
    """Call ``act()`` from a thread once ``run_dir/metrics.jsonl`` has a step; set the returned event
    when the run is over, so that a late ``act`` never fires outside the run."""
    over = threading.Event()

    def watch():
        t0 = time.monotonic()
        while not over.is_set() and time.monotonic() - t0 < timeout:
            m = run_dir / "metrics.jsonl"
            if m.exists() and m.read_text().strip():
                act()
                return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return over


def test_sigterm_marks_the_run_interrupted_and_exits_143(tmp_path, capsys):
    out = tmp_path / "run"
    over = when_training(out, lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        rc = main([*TINY_TRAIN, "--steps", "100000", "--log-every", "1", "--out", str(out)])
    finally:
        over.set()
    assert rc == 143  # 128 + SIGTERM, as Ctrl-C's 130 is 128 + SIGINT
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "interrupted" and 1 <= s["steps_done"] < 100000
    assert s["message"] == f"interrupted by SIGTERM after {s['steps_done']} steps"
    assert "train: interrupted by SIGTERM" in capsys.readouterr().err


def fill_on_write(monkeypatch, names: set[str]):
    """Path.write_text into a file named in ``names`` fails as on a full disk: the file is created, its
    data is not written (what ENOSPC leaves: a 0-byte file)."""
    real = Path.write_text

    def write_text(self, *a, **k):
        if self.name in names:
            self.touch()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("full_at", ["config.json", "summary.json.tmp"])
def test_a_full_disk_at_the_start_is_a_clean_error_naming_out(tmp_path, capsys, monkeypatch, full_at):
    fill_on_write(monkeypatch, {full_at})
    out = tmp_path / "run"
    assert main([*TINY_TRAIN, "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out: cannot write the run directory {out}: No space left on device" in err and "Traceback" not in err
    assert not out.exists()  # nothing left behind: no config.json, no 0-byte summary.json.tmp


def test_a_full_disk_when_saving_records_failed_with_a_message(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    def save_fails(model, target, metadata, **_):  # what safetensors raises when the disk fills mid-file
        target.mkdir(parents=True)
        (target / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("lorascale.train.loop.save_adapter", save_fails)
    out = tmp_path / "run"
    assert main([*TINY_TRAIN, "--steps", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"train: No space left on device writing {out / 'adapter'}; the run stopped" in err and "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "failed" and s["message"] == f"OSError: [Errno 28] No space left on device: '{out / 'adapter'}'"
    assert not (out / "adapter").exists()  # the half-written adapter is removed, freeing its space


def in_tmpfs(tmp_path, size_kib: int, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with $D a fresh tmpfs of ``size_kib`` KiB, mounted in a private mount and
    user namespace (`unshare -rm`: no root needed where user namespaces are allowed). The tmpfs goes
    away with the namespace: ``script`` copies what the test inspects to $KEEP."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a tmpfs")
    tmp_path.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=4k tmpfs {tmp_path}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")
    (tmp_path / "mnt").mkdir()
    (tmp_path / "keep").mkdir()
    env = dict(os.environ, D=str(tmp_path / "mnt"), KEEP=str(tmp_path / "keep"), PY=sys.executable,
               PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return subprocess.run(["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size_kib}k tmpfs "$D" && {script}'],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_disk_full_on_a_real_tmpfs(tmp_path):
    """Opt-in (two `lorascale train` processes, ~10 s each): a tmpfs full from the start, and one that
    holds the run's records but not its 140 KB adapter."""
    train = " ".join([*TINY_TRAIN, "--steps", "3"])
    full = in_tmpfs(tmp_path / "a", 64, f'(dd if=/dev/zero of="$D/fill" bs=4k || true) 2>/dev/null;'
                                         f' "$PY" -m lorascale.cli {train} --out "$D/run"; echo "rc=$?"; ls -A "$D"')
    assert full.stdout.split() == ["rc=2", "fill"], full.stderr  # the run directory is gone again
    assert "--out: cannot write the run directory" in full.stderr and "No space left on device" in full.stderr
    assert "Traceback" not in full.stderr

    mid = in_tmpfs(tmp_path / "b", 64, f'"$PY" -m lorascale.cli {train} --out "$D/run"; echo "rc=$?";'
                                       ' cp -a "$D/run" "$KEEP/run"; ls -A "$D/run"')
    assert mid.stdout.split() == ["rc=1", "config.json", "metrics.jsonl", "summary.json"], mid.stderr
    assert "No space left on device" in mid.stderr and "Traceback" not in mid.stderr
    s = json.loads((tmp_path / "b" / "keep" / "run" / "summary.json").read_text())
    assert s["status"] == "failed" and "No space left on device" in s["message"] and s["steps_done"] == 3


@pytest.mark.slow
def test_sigterm_of_a_train_process(tmp_path):
    """Opt-in (a `lorascale train` process, ~10 s of imports): what a scheduler's SIGTERM leaves."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "lorascale.cli", *TINY_TRAIN, "--steps", "100000", "--log-every", "1",
                             "--out", str(out)], env=dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1"),
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
        assert proc.poll() is None and time.monotonic() - t0 < 120, "the run never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "interrupted" and "SIGTERM" in s["message"] and not (out / "summary.json.tmp").exists()
