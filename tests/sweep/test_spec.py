"""Sweep specs: expansion into points, stable keys, the rules' predictions, and all errors at once."""

import copy
import math
from pathlib import Path

import pytest
import yaml
from sweep_fakes import BASE, MUA_CONFIGS, PATHS

from lorascale.errors import ConfigErrors
from lorascale.sweep.spec import load_spec, parse_spec, point_key

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def spec_dict(**over):
    d = {"name": "t", "base": dict(BASE),
         "grid": {"configs": MUA_CONFIGS, "ranks": [4, 16], "log2_lr": {"from": -12, "to": -9}, "seeds": [0, 1]}}
    d.update(over)
    return d


def test_grid_expands_configs_ranks_lrs_seeds_with_fft_rankless():
    spec = parse_spec(spec_dict())
    # 3 LoRA configs × 2 ranks × 4 lrs × 2 seeds, plus FFT: 4 lrs × 2 seeds (no rank axis)
    assert len(spec.points) == 3 * 2 * 4 * 2 + 4 * 2
    fft = [p for p in spec.points if p.label == "FFT"]
    assert {p.rank for p in fft} == {None} and {p.train.finetune for p in fft} == {"full"}
    assert sorted({p.log2_lr for p in spec.points}) == [-12.0, -11.0, -10.0, -9.0]
    assert all(p.train.lr == 2.0**p.log2_lr for p in spec.points)
    assert [p.seed for p in spec.points] == sorted(p.seed for p in spec.points)  # all of seed 0 first
    assert all(p.train.save_model is False for p in spec.points)  # results go to storage, not adapters


def test_points_carry_mua_predictions_from_the_rules():
    by = {p.label: p for p in parse_spec(spec_dict()).points}
    assert by["A1"].predicted_slope == -0.5 and by["A1"].gamma_eff == 0.0  # Cor. 4.4, α = 1
    assert by["A1/r"].predicted_slope == 0.0 and by["A1/r"].gamma_eff == 1.0  # α = 1/r: rank-invariant
    assert by["B1"].predicted_slope == 0.0  # Cor. 4.6
    assert by["FFT"].predicted_slope is None
    assert by["A1"].peft_alpha == by["A1"].rank  # s = 1 → lora_alpha = r (μA App. B.2)


def test_keys_are_stable_and_distinct():
    a, b = parse_spec(spec_dict()), parse_spec(spec_dict())
    assert [p.key for p in a.points] == [p.key for p in b.points]
    assert len({p.key for p in a.points}) == len(a.points)
    p = a.points[0]
    assert point_key(p.train.replace(out_dir="/elsewhere")) == p.key  # where outputs go is not the run
    assert point_key(p.train.replace(lr=p.train.lr * 2)) != p.key


def test_paths_follow_eq2_and_share_the_m1_point():
    spec = parse_spec(spec_dict(grid=None, paths=dict(PATHS, ranks=[4])))
    # η-path and α-path over 8 multipliers each, the m = 1 run shared: 15 points at one rank
    assert len(spec.points) == 15
    eta = {m: p for p in spec.points for k, m in p.paths if k == "eta"}
    alpha = {m: p for p in spec.points for k, m in p.paths if k == "alpha"}
    assert eta[1.0].key == alpha[1.0].key
    assert eta[4.0].train.lr == pytest.approx(4 * 2e-4, rel=1e-15) and eta[4.0].train.adapter.scaling.lora_alpha == 16
    assert alpha[4.0].train.lr == pytest.approx(2e-4, rel=1e-15) and alpha[4.0].train.adapter.scaling.lora_alpha == 64
    assert alpha[4.0].peft_alpha == 64 and alpha[4.0].alpha_mult == 4.0  # fixed-alpha: s·r = lora_alpha
    assert {p.train.adapter.scaling.rule for p in spec.points} == {"fixed-alpha"}


def test_alpha_multipliers_scale_the_rules_knob():
    d = spec_dict(grid={"configs": [{"name": "la", "rule": "lora-alpha"}], "ranks": [4], "log2_lr": [-10],
                        "alpha_multipliers": [0.5, 2]})
    pts = parse_spec(d).points
    assert sorted(p.train.adapter.scaling.alpha for p in pts) == [0.5, 2.0]
    assert sorted(p.peft_alpha for p in pts) == [0.5 * 256 * 2, 2 * 256 * 2]  # α·C·√r (LoRA-α eq. (5))


def test_peft_alpha_is_s_times_r_under_rslora_too():
    """α*(r) is fitted on s·r (LoRA-α's α); rsLoRA's own lora_alpha is s·√r, and fitting on it would shift p by ½."""
    d = spec_dict(grid={"configs": [{"name": "rs", "rule": "rslora", "lora_alpha": 64}], "ranks": [4, 16, 64],
                        "log2_lr": [-10]})
    pts = sorted(parse_spec(d).points, key=lambda p: p.rank)
    assert [p.peft_alpha for p in pts] == pytest.approx([64 * 2, 64 * 4, 64 * 8], rel=1e-12)  # s = 64/√r: float rounding


def test_bad_spec_lists_every_error_at_once():
    bad = {
        "name": "bad name", "extra": 1,
        "base": {"model": "tiny-llama", "lr": 1e-3, "colour": "red", "steps": 0},
        "grid": {"configs": [{"finetune": "full", "init": "B"}, {"rule": "mua", "init": "A", "rank": 4},
                             {"rule": "mua", "init": "B", "gamma": 0, "alpha_multipliers": [2]}, {"rule": "nope"}],
                 "ranks": [], "log2_lr": {"from": -3, "to": -5}, "seeds": [0, 0]},
        "paths": {"ranks": [4], "lr_fft": -1, "alpha0": 16, "multipliers": [0], "rule": "mua"},
    }
    with pytest.raises(ConfigErrors) as e:
        parse_spec(bad)
    fields = [err.field for err in e.value.errors]
    assert sorted(fields) == sorted([  # every problem once; the file's shape is checked before its points
        "extra", "name", "base.lr", "base.colour", "grid.ranks", "grid.log2_lr", "grid.seeds",
        "grid.configs[0]", "grid.configs[1].rank", "base.steps", "grid.configs[2].alpha_multipliers",
        "grid.configs[3].rule", "paths.lr_fft", "paths.rule",
    ])
    text = str(e.value)
    assert "empty grid" in text and "conflicting options" in text and "unknown" in text


def test_a_knob_no_rule_reads_is_refused_where_it_is_written():
    """A configuration's own knob is judged by its rule (the base's, when it gives none); a base knob only
    when no configuration's rule reads it; the paths' knobs by the paths' rule (fixed-alpha by default)."""
    configs = [{"rule": "mua", "init": "A", "gamma": 0, "alpha": 2}, {"rule": "alpha-r", "init": "B", "c": 512},
               {"finetune": "full"}]
    with pytest.raises(ConfigErrors) as e:
        parse_spec({"base": {**BASE, "gamma": 1, "lora_alpha": 32}, "grid": {"configs": configs, "ranks": [4], "log2_lr": [-10]},
                    "paths": {**PATHS, "alpha": 2}})
    assert sorted((x.field, x.message) for x in e.value.errors) == [
        ("base.lora_alpha", "no run's rule reads it, so it would be ignored"),  # gamma: mua reads it
        ("grid.configs[0].alpha", "rule mua reads only `gamma`, so this would be ignored"),
        ("grid.configs[1].c", "rule alpha-r has no knob, so this would be ignored"),
        ("paths.alpha", "rule fixed-alpha reads only `lora_alpha`, so this would be ignored")]
    # a base knob that some configuration reads is fine, and so is one the others ignore
    spec = parse_spec({"base": {**BASE, "alpha": 2}, "grid": {"configs": [{"rule": "lora-alpha"}, {"rule": "alpha-r"}],
                                                              "ranks": [4], "log2_lr": [-10]}})
    # the paths read their rule's knobs but the one they set; a knob out of range and ignored is one error
    base_c = {"base": {**BASE, "c": 512}, "grid": {"configs": [{"rule": "mua", "init": "A"}], "ranks": [4], "log2_lr": [-10]}}
    assert parse_spec({**base_c, "paths": {**PATHS, "rule": "lora-alpha"}}).points  # the paths read c
    for bad, field in (({"base": {**BASE, "alpha": 3}, "paths": PATHS}, "base.alpha"),  # fixed-alpha paths
                       ({"base": BASE, "paths": {**PATHS, "lora_alpha": 99}}, "paths.lora_alpha"),  # set from alpha0
                       ({"base": BASE, "grid": {**base_c["grid"], "configs": [{"rule": "alpha-r", "gamma": 5}]}},
                        "grid.configs[0].gamma"),
                       ({"base": {**BASE, "gamma": 5}, "grid": {"configs": [{"rule": "alpha-r"}], "ranks": [4],
                                                                "log2_lr": [-10]}}, "base.gamma")):
        with pytest.raises(ConfigErrors) as e:
            parse_spec(bad)
        assert [x.field for x in e.value.errors] == [field]
    assert sorted((p.label, p.train.adapter.scaling.alpha) for p in spec.points) == [
        ("Init[kaiming] α=1 (lora_alpha=r)", 2.0), ("lora-alpha Init[kaiming] alpha=2", 2.0)]  # alpha-r ignores it


def test_a_user_data_files_columns_are_checked_with_the_specs_other_problems(tmp_path):
    """check_inputs reads a user's file only once the spec parses: a repeated configuration name hid the missing
    column until it was fixed. The file is judged against the section's task, else the base's."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": "x"}\n{"foo": "y"}\n')
    configs = [{"name": "x", "rule": "alpha-r"}, {"name": "x", "rule": "alpha-2r", "data": str(bad), "task": "lm"}]
    with pytest.raises(ConfigErrors) as e:
        parse_spec({"base": {**BASE, "data": str(bad)}, "grid": {"configs": configs, "ranks": [4], "log2_lr": [-10]}})
    assert [x.field for x in e.value.errors] == ["grid.configs[1].name", "base.data", "grid.configs[1].data"]
    assert "2 of 2 records miss column(s) needed for language modelling (text)" in e.value.errors[1].message


def test_two_bad_entries_of_one_list_do_not_hide_the_rest_of_the_grid():
    """The second bad rank's path led to a key the first had already removed, and the removal fell on its
    parent: the whole grid went, with every configuration's problems."""
    with pytest.raises(ConfigErrors) as e:
        parse_spec({"base": {"model": "tiny-llama", "data": "shakespeare", "steps": 5},
                    "grid": {"configs": [{"init": "Z"}, {"rule": "nope"}], "ranks": [-1, -2], "log2_lr": [-10]}})
    assert [err.field for err in e.value.errors] == ["grid.ranks[0]", "grid.ranks[1]", "grid.configs[0].init",
                                                     "grid.configs[1].rule"]


def test_a_spec_without_base_or_with_a_refused_configuration_still_reports_the_rest():
    """A missing base used to stop the check at "base: missing"; a full-finetuning entry with adapter keys, or
    an α multiplier without a knob, skipped that entry's other settings; misspelt model and data names waited
    until everything else was fixed. Each problem now comes at once, with a fix."""
    with pytest.raises(ConfigErrors) as e:
        parse_spec({"grid": {"configs": [{"rule": "nosuchrule", "batch_size": 0}], "ranks": [4], "log2_lr": [-8]}})
    assert sorted(err.field for err in e.value.errors) == ["base", "grid.configs[0].batch_size", "grid.configs[0].rule"]
    assert all(err.fix for err in e.value.errors)
    bad = {"base": {"model": "nosuchmodel", "data": "nosuchdata", "steps": 5},
           "grid": {"configs": [{"finetune": "full", "alpha": 2, "weight_decay": -1},
                                {"rule": "alpha-r", "alpha_multipliers": [2], "grad_clip": -1}],
                    "ranks": [4], "log2_lr": [-8]}}
    with pytest.raises(ConfigErrors) as e:
        parse_spec(bad)
    assert sorted(err.field for err in e.value.errors) == sorted([
        "grid.configs[0]", "grid.configs[0].weight_decay", "grid.configs[1].alpha_multipliers",
        "grid.configs[1].grad_clip", "base.model", "base.data"])


def test_empty_sweep_and_identical_configs_are_errors():
    with pytest.raises(ConfigErrors, match="sweeps nothing"):
        parse_spec({"base": dict(BASE)})
    twin = spec_dict(grid={"configs": [{"name": "x", "rule": "mua", "init": "A"}, {"name": "y", "rule": "mua", "init": "A"}],
                           "ranks": [4], "log2_lr": [-10]})
    with pytest.raises(ConfigErrors, match="repeats runs"):
        parse_spec(twin)


def test_paths_named_like_a_grid_configuration_are_refused():
    """The fit tells runs apart by (label, α multiplier, rank, log2 η, seed): a fixed-alpha grid configuration X
    (lora_alpha 32) and an η-path named X from (2^-10, α₀ = 16) both hold rank 4, log2 η = -11, -10, -9, seed 0
    as different runs, and one would silently overwrite the other in the fit."""
    d = spec_dict(grid={"configs": [{"name": "X", "rule": "fixed-alpha", "lora_alpha": 32}], "ranks": [4],
                        "log2_lr": [-11, -10, -9]},
                  paths={"name": "X", "ranks": [4], "lr_fft": 2.0**-10, "alpha0": 16, "multipliers": [-1, 0, 1],
                         "which": ["eta"]})
    with pytest.raises(ConfigErrors) as e:
        parse_spec(d)
    (err,) = e.value.errors
    assert err.field == "paths.name" and err.message == "'X' is also the label of grid.configs[0]"
    assert err.fix == "give the paths a name of their own"
    parse_spec({**d, "paths": {**d["paths"], "name": "X paths"}})  # a name of its own is welcome


def test_spec_errors_carry_their_fix_apart_from_the_message():
    """TrainConfig's own fix reaches the spec's error as .fix (it used to be pasted into the message), and the
    spec's own fixes are .fix too; the rendered text is unchanged: "field: message; fix"."""
    from lorascale.train.config import TrainConfig

    with pytest.raises(ConfigErrors) as want:
        TrainConfig.from_flat({"model": "tiny-llama", "grad_clip": -1})
    (train_err,) = want.value.errors
    assert train_err.fix == "μA clips the global norm at 1.0"  # the case under test: TrainConfig names a fix
    d = spec_dict(base={**BASE, "grad_clip": -1, "lr": 1e-3})
    with pytest.raises(ConfigErrors) as e:
        parse_spec(d)
    by_field = {x.field: x for x in e.value.errors}
    assert (by_field["base.grad_clip"].message, by_field["base.grad_clip"].fix) == ("must be > 0, got -1", train_err.fix)
    assert by_field["base.lr"].message == "conflicts with the sweep, which sets lr per point"
    assert by_field["base.lr"].fix == "declare it as log2_lr instead"
    assert str(by_field["base.lr"]) == "base.lr: conflicts with the sweep, which sets lr per point; declare it as log2_lr instead"


@pytest.mark.parametrize("name", ["sweep-tiny", "mua-minilm-classification", "mua-smollm2-lm", "lora-alpha-paths"])
def test_shipped_specs_validate(name):
    spec = load_spec(CONFIGS / f"{name}.yaml")
    assert spec.name == name and spec.points
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert spec.raw == raw


def test_log2_range_is_inclusive_integer_grid():
    spec = parse_spec(spec_dict(grid={"configs": MUA_CONFIGS[:1], "ranks": [4], "log2_lr": {"from": -17, "to": -9}}))
    assert [p.log2_lr for p in spec.points] == [float(x) for x in range(-17, -8)]  # μA Table 6: [−17, −9]
    assert all(math.isclose(p.train.lr, 2.0**p.log2_lr) for p in spec.points)


@pytest.mark.parametrize("grid, field", [
    ({"log2_lr": [-10, 100]}, "grid.log2_lr[1]"),  # η = 2^100: Optuna cannot store it (issue #14)
    ({"log2_lr": {"from": -10, "to": float("inf")}}, "grid.log2_lr"),
    ({"log2_lr": [2000]}, "grid.log2_lr[0]"),
    ({"seeds": [0, 5_000_000_000]}, "grid.seeds[1]"),
    ({"seeds": [-1]}, "grid.seeds[0]"),
    ({"log2_lr": {"from": -20, "to": 0, "step": 0.001}}, "grid.log2_lr"),  # 20,001 points
])
def test_values_storage_cannot_hold_are_refused_before_anything_is_stored(grid, field):
    g = {"configs": MUA_CONFIGS[:1], "ranks": [4], "log2_lr": [-10], **grid}
    with pytest.raises(ConfigErrors) as e:
        parse_spec(spec_dict(grid=g))
    assert [x.field for x in e.value.errors] == [field]


def test_parse_never_edits_the_callers_mapping():
    raw = spec_dict(grid={"configs": [{"rule": "nope"}], "ranks": [0], "log2_lr": [-10]})
    before = copy.deepcopy(raw)
    with pytest.raises(ConfigErrors):
        parse_spec(raw)
    assert raw == before


def test_baseline_methods_are_grid_configurations_with_their_own_keys_and_labels():
    configs = [{"rule": "lora-alpha"}, {"rule": "lora-alpha", "method": "dora"}, {"rule": "alpha-r", "method": "pissa"},
               {"rule": "lora-alpha", "method": "loraplus"}, {"rule": "lora-alpha", "method": "olora", "loraplus_lr_ratio": 4}]
    spec = parse_spec({"name": "t", "base": dict(BASE), "grid": {"configs": configs, "ranks": [4], "log2_lr": [-10]}})
    by_label = {p.label: p for p in spec.points}
    assert sorted(by_label) == sorted(["lora-alpha Init[kaiming] alpha=1", "lora-alpha Init[kaiming] alpha=1 + dora",
                                       "Init[kaiming] α=1 (lora_alpha=r) + pissa",
                                       "lora-alpha Init[kaiming] alpha=1 + loraplus ×16",
                                       "lora-alpha Init[kaiming] alpha=1 + olora + loraplus ×4"])
    assert len({p.key for p in spec.points}) == 5  # the method enters the point key
    assert by_label["lora-alpha Init[kaiming] alpha=1 + dora"].train.adapter.method == "dora"
    assert by_label["Init[kaiming] α=1 (lora_alpha=r) + pissa"].train.lr == 2.0**-10  # the grid's lr, not PiSSA's default


def test_bad_method_in_a_spec_names_the_configuration():
    with pytest.raises(ConfigErrors) as e:
        parse_spec(spec_dict(grid={"configs": [{"rule": "lora-alpha", "method": "vera"}], "ranks": [4], "log2_lr": [-10]}))
    assert any("method" in x.field and "configs[0]" in x.field for x in e.value.errors)


def test_the_fine_foods_mua_spec_expands_to_its_committed_study():
    """configs/mua-minilm-fine-foods-cpu.yaml as committed: 3 ranks × 6 rates for Init[A] α = 1, 2 × 6 for
    Init[B], 5 FFT rates and 2 × 7 for Init[A] α = 1/r, × 3 seeds = 147 points (the count
    docs/results/mua-minilm-fine-foods-cpu states)."""
    from collections import Counter
    from pathlib import Path

    from lorascale.sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "configs" / "mua-minilm-fine-foods-cpu.yaml")
    assert len(spec.points) == (3 * 6 + 2 * 6 + 5 + 2 * 7) * 3 == 147
    per = Counter((p.label, p.rank) for p in spec.points)
    assert per == {("Init[A] α=1", 4): 18, ("Init[A] α=1", 16): 18, ("Init[A] α=1", 64): 18,
                   ("Init[B] α=1", 4): 18, ("Init[B] α=1", 64): 18, ("FFT", None): 15,
                   ("Init[A] α=1/r", 4): 21, ("Init[A] α=1/r", 64): 21}
    assert {p.train.steps for p in spec.points} == {150} and {p.seed for p in spec.points} == {0, 1, 2}


def test_the_fine_foods_paths_spec_runs_both_paths_from_the_headlines_eta_fft():
    """configs/lora-alpha-paths-minilm-fine-foods-cpu.yaml: from (η = 2^-13, the fine-foods headline's η_FFT,
    lora_alpha 16), the α-path lora_alpha = 16·2^m and the η-path η = 2^(m-13), m = 0…7, at ranks 4, 16, 64 and
    3 seeds: 8·3·3 α-path points plus 7·3·3 η-path ones (m = 0 is the shared base run) = 135."""
    from pathlib import Path

    from lorascale.sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "configs" / "lora-alpha-paths-minilm-fine-foods-cpu.yaml")
    assert len(spec.points) == 8 * 3 * 3 + 7 * 3 * 3 == 135
    alpha = [p for p in spec.points if any(k == "alpha" for k, _ in p.paths)]
    eta = [p for p in spec.points if any(k == "eta" for k, _ in p.paths)]
    assert {p.log2_lr for p in alpha} == {-13.0} and sorted({p.log2_lr for p in eta}) == [float(x) for x in range(-13, -5)]
    assert {p.rank for p in spec.points} == {4, 16, 64} and {p.seed for p in spec.points} == {0, 1, 2}
    assert sorted({m for p in alpha for k, m in p.paths if k == "alpha"}) == [2.0 ** m for m in range(8)]
    assert len([p for p in spec.points if len(p.paths) == 2]) == 9  # the base run, once per rank and seed
    assert {p.train.steps for p in spec.points} == {150} and {p.train.data for p in spec.points} == {"fine-foods"}
