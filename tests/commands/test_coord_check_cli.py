"""`lorascale coord-check` through `lorascale.cli.main`: the JSON it promises, its files, its exit codes."""

import csv
import json
import math
from pathlib import Path

import pytest

from lorascale.cli import main
from lorascale.diagnostics.coord_spec import TERMS
from lorascale.diagnostics.coord_fit import Verdict

ARGV = ["coord-check", "-m", "tiny-llama", "--widths", "64", "128", "--ranks", "2", "4", "--configs", "mua-A-1",
        "lora-alpha", "--steps", "2", "--seeds", "2", "--seq-len", "8"]


@pytest.fixture(scope="module")
def one_thread_module(one_thread):
    """Tiny models: one intra-op thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def json_run(tmp_path_factory, one_thread_module):
    out = tmp_path_factory.mktemp("cc") / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*ARGV, "--out", str(out), "--json"]) == 0
    return json.loads(buf.getvalue()), out


def test_json_carries_slope_ci_and_verdict_per_configuration_and_term(json_run):
    report, _ = json_run
    assert set(report["configs"]) == {"mua-A-1", "lora-alpha"}
    for config, entry in report["configs"].items():
        assert entry["rank"]["at"] == 128 and entry["rank"]["sizes"] == [2, 4]  # ranks at the largest width
        assert entry["width"]["at"] == 2 and entry["width"]["sizes"] == [64, 128]  # widths at the smallest rank
        for axis in ("rank", "width"):
            terms = entry[axis]["terms"]
            assert set(terms) == set(TERMS)
            for term, t in terms.items():
                assert {"slope", "ci", "verdict", "correction", "eta_order"} <= set(t), (config, axis, term)
                assert t["verdict"] in {v.value for v in Verdict}
                assert set(t["by_step"]) == {"1", "2"} and t["by_step"]["2"]["verdict"] == t["verdict"]
                if t["verdict"] != "zero":
                    assert isinstance(t["slope"], float) and len(t["ci"]) == 2 and t["ci"][0] <= t["slope"] <= t["ci"][1]
    mua, lora = report["configs"]["mua-A-1"], report["configs"]["lora-alpha"]
    # rel=1e-9: float rounding only
    assert mua["rank"]["lr_exponent"] == pytest.approx(-0.5, rel=1e-9) and mua["width"]["lr_exponent"] == pytest.approx(-0.5, rel=1e-9)
    assert lora["rank"]["lr_exponent"] == 0.0 and {x["lr"] for x in lora["lrs"]} == {2e-5}  # η_FFT everywhere
    assert mua["rank"]["terms"]["delta1"]["by_step"]["1"]["verdict"] == "zero"  # Init[A]: B = 0 at step 1
    assert report["runs"] == 2 * (2 * 2 * 2 + 1)  # configs × (widths × ranks × seeds + the η-order run)
    assert report["reference"] == {"lr": 1e-3, "width": 64, "rank": 16}


def test_files_figures_measurements_and_the_json_copy(json_run):
    report, out = json_run
    files = report["files"]
    for key in ("figure", "terms_figure"):
        assert Path(files[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(files[key]).parent == out
    rows = list(csv.DictReader(open(files["measurements"])))
    assert {r["term"] for r in rows} == set(TERMS) and {r["config"] for r in rows} == {"mua-A-1", "lora-alpha"}
    assert json.loads(Path(files["report"]).read_text())["configs"] == report["configs"]
    # every reported slope, refitted by hand from the CSV: per seed, log y's change over log size between
    # the two sizes (at the other axis' fixed size, η as planned), then the mean over seeds
    checked = 0
    for config, entry in report["configs"].items():
        for axis, other in (("rank", "width"), ("width", "rank")):
            at, (x0, x1) = entry[axis]["at"], entry[axis]["sizes"]
            for term, t in entry[axis]["terms"].items():
                for step, fit in t["by_step"].items():
                    y = {(int(r[axis]), r["seed"]): float(r["value"]) for r in rows
                         if (r["config"], r["term"], r["kind"], r["step"]) == (config, term, "all", step)
                         and int(r[other]) == at and float(r["eta_scale"]) == 1.0}
                    seeds = sorted({sd for _, sd in y})
                    if fit["verdict"] == "zero":
                        assert all(v == 0.0 for v in y.values()) and y, (config, axis, term, step)
                        continue
                    if fit["slope"] is None:  # some values ≤ 0 or not finite: no power law to fit
                        assert not all(v > 0 and math.isfinite(v) for v in y.values())
                        continue
                    per_seed = [(math.log(y[x1, sd]) - math.log(y[x0, sd])) / (math.log(x1) - math.log(x0)) for sd in seeds]
                    assert len(per_seed) == 2 and fit["slope"] == pytest.approx(sum(per_seed) / 2, rel=1e-12, abs=1e-12), \
                        (config, axis, term, step)  # abs: a flat term's slope is ~0, where rel means nothing; both float rounding
                    checked += 1
    assert checked >= 30  # most terms are fitted, not zero


def test_readable_output(tmp_path, capsys, one_thread_module):
    argv = ["coord-check", "-m", "tiny-llama@64", "--ranks", "2", "4", "--configs", "mua-B-1", "--steps", "1",
            "--seeds", "1", "--seq-len", "8", "--lr-rule", "fixed", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Init[B] α=1 — against rank [2, 4] at width 64, step 1" in text
    assert "η = 0.001 for every μA run" in text and "verdict" in text and "wrote" in text


def test_every_bad_flag_at_once_exit_2_and_nothing_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["coord-check", "-m", "smollm2-135m", "--widths", "64", "128", "--ranks", "0", "4", "--steps", "0",
            "--lr-rule", "x", "--configs", "nope", "--eta-factor", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for flag in ("--ranks", "--steps", "--lr-rule", "--configs", "--eta-factor"):
        assert f"error: {flag}" in err, (flag, err)
    assert main(["coord-check", "-m", "tiny-llama", "--widths", "64", "--ranks", "4", "8", "128"]) == 2
    err = capsys.readouterr().err
    assert "error: --ranks: [128] exceed the smallest width 64" in err
    assert main(["coord-check", "--ranks", "4", "8"]) == 2  # --model is required
    assert "error: --model: missing" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
