"""The Markdown/HTML report and the fit JSON, from a stored study."""

import json

import pytest

from lorascale.sweep.fit import fit
from lorascale.sweep.report import fit_to_dict, write_report
from lorascale.sweep.storage import SweepStore


@pytest.fixture(scope="module")
def records(synthetic_study):
    url, name, _ = synthetic_study
    return SweepStore.open(url, name).records()


def test_fit_json_carries_eta_star_slopes_and_predictions(records):
    d = json.loads(json.dumps(fit_to_dict(fit(records, "ema", n_boot=50))))  # JSON-clean: no inf/nan objects
    by = {c["config"]: c for c in d["configs"]}
    a1 = by["A1"]
    assert [e["rank"] for e in a1["eta_star"]] == [4, 16, 64]
    assert a1["eta_star"][0]["lr"] == pytest.approx(2.0**-9, rel=1e-9)  # exact parabola around −9
    assert a1["slope"] == pytest.approx(-0.5, abs=1e-9) and a1["predicted_slope"] == -0.5
    assert a1["slope_ci"] == pytest.approx([-0.5, -0.5], abs=1e-9) and a1["slope_matches_prediction"] is True
    assert by["FFT"]["eta_star"][0]["rank"] is None and by["FFT"]["slope"] is None
    assert d["transfer_gaps"][0]["within_one_step"] is True
    assert d["alpha_laws"][0]["p_free"]["p"] == pytest.approx(0.75, abs=1e-9)
    assert d["alpha_laws"][0]["p_half"]["p"] == 0.5
    assert d["counts"]["diverged"] > 0


def test_report_writes_tables_and_figures(records, tmp_path):
    md = write_report(records, tmp_path, "synthetic", n_boot=50)
    text = md.read_text()
    for heading in ("η* per configuration and rank", "slope of log η* against log r", "Init[B] with α = 1 against full",
                    "LoRA-α scaling paths", "α*(r) = C·r^p"):
        assert heading in text
    assert "| A1 | 4 | 0.00195 | -9.00 |" in text  # η* = 2^-9 for A1 at r = 4
    images = [line[line.rindex("](") + 2:-1] for line in text.splitlines() if line.startswith("![")]
    assert len(images) == 2 * (1 + 5) + 2 * 2 + 5  # (the row of panels + 5 lr sweeps + paths + law) per metric, plus loss curves
    for name in images:
        assert (tmp_path / name).stat().st_size > 10_000
    assert (tmp_path / "report.html").read_text().count("<img") == len(images)


def test_a_rewritten_report_deletes_the_figures_it_no_longer_draws_and_nothing_else(records, tmp_path):
    """Figures are numbered by configuration: with one configuration fewer the names shift, and the first
    report's extra figures must not stay beside the second as if they were its own."""
    from dataclasses import replace

    # a label with brackets, as lorascale's own configurations have (Init[A] α=1): its captions hold "]"
    records = [replace(r, point=replace(r.point, config="Init[A] α=1")) if r.point.config == "A1" else r for r in records]
    write_report(records, tmp_path, "synthetic", n_boot=0)
    first = {p.name for p in tmp_path.glob("*.png")}
    assert any("Init_A" in name for name in first)
    (tmp_path / "mine.png").write_bytes(b"a user's file")  # in the folder, never shown by a report
    dropped = sorted({r.point.config for r in records})[0]
    assert dropped != "Init[A] α=1"  # the bracketed label stays and is renumbered
    text = write_report([r for r in records if r.point.config != dropped], tmp_path, "synthetic", n_boot=0,
                        html_too=False).read_text()
    assert not (tmp_path / "report.html").exists()  # the first report's page showed figures now gone
    shown = {line[line.rindex("](") + 2:-1] for line in text.splitlines() if line.startswith("![")}
    assert {p.name for p in tmp_path.glob("*.png")} == shown | {"mine.png"} and len(shown) < len(first)
    assert any("Init_A" in name for name in first - shown)  # renumbered: its earlier names, caption "Init[A] α=1", gone


def test_a_classification_report_adds_the_held_out_loss_selection(records, tmp_path):
    """With accuracy as the task metric the held-out loss is a selection of its own (issue #15: select on the
    fixed held-out NLL as well as the EMA loss); for LM records val_nll already is it, so no third section
    (test_report_writes_tables_and_figures counts those figures).
    Here every record's held-out loss is its EMA loss + 0.2, so that section's optima equal the EMA ones."""
    from dataclasses import replace

    cls = [replace(r, outcome=replace(r.outcome, eval_metric="val_accuracy", eval_value=0.5,
                                      val_loss=None if r.outcome.final_ema_loss is None else r.outcome.final_ema_loss + 0.2))
           for r in records]
    text = write_report(cls, tmp_path, "synthetic", n_boot=0, html_too=False).read_text()
    assert "## Selected on held-out loss" in text and "## Selected on validation accuracy" in text
    assert "| A1 | 4 | 0.00195 | -9.00 |" in text.split("## Selected on held-out loss")[1]  # the EMA optimum, 2^-9
    assert sorted(p.name for p in tmp_path.glob("val_loss_lr_*.png")) == sorted(p.name.replace("ema_", "val_loss_")
                                                                             for p in tmp_path.glob("ema_lr_*.png"))


def test_a_paths_only_study_prints_no_empty_learning_rate_tables(records):
    """A study of LoRA-α's α-path alone (η fixed at η_FFT) has no η grid: its tables are the path and α*(r),
    nothing empty (configs/lora-alpha-paths-minilm-cpu.yaml printed two empty η tables)."""
    from lorascale.sweep.report import fit_tables

    paths = [r for r in records if r.point.paths and all(kind == "alpha" for kind, _ in r.point.paths)]
    titles = [title for title, _, rows in fit_tables(fit(paths, "ema", n_boot=0))]
    assert titles == ["LoRA-α scaling paths, eq. (2)", "α*(r) = C·r^p (LoRA-α footnote 1)"]


def test_path_comparison_is_reported_in_the_metric_s_own_units(records):
    """Finding II's gaps are α-path minus η-path. On the loss the synthetic α-path is 0.52 lower at r = 64
    (test_fit derives it by hand); scored as an accuracy of 2 − loss, the same gap reads +0.52, higher."""
    from dataclasses import replace

    from lorascale.sweep.report import fit_tables

    acc = [replace(r, outcome=replace(r.outcome, eval_metric="val_accuracy",
                                      eval_value=None if r.outcome.final_ema_loss is None else 2 - r.outcome.final_ema_loss))
           for r in records]
    for recs, metric, sign in ((records, "ema", -1), (acc, "eval", +1)):
        rep = fit(recs, metric, n_boot=0)
        by_rank = {c["rank"]: c for c in fit_to_dict(rep)["path_comparisons"]}
        assert by_rank[64]["best_alpha_minus_eta"] == pytest.approx(sign * 0.52, abs=1e-9)
        assert by_rank[64]["log2_m_star_alpha_minus_eta"] == pytest.approx(2.5, abs=1e-9)  # m* is unit-free
        (table,) = [rows for title, _, rows in fit_tables(rep) if "Finding II" in title]
        assert [row[:3] for row in table] == [["LoRA-α paths", "4", f"{-sign * 0.08:+.4f}"],
                                              ["LoRA-α paths", "16", f"{sign * 0.12:+.4f}"],
                                              ["LoRA-α paths", "64", f"{sign * 0.52:+.4f}"]]
