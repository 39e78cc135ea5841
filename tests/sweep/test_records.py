"""The stored-record schema: round trips, strict reading, one representation of non-finite numbers."""

import json
import math

import pytest
from sweep_fakes import small_spec

from lorascale.errors import ConfigError
from lorascale.sweep.records import (
    COORDINATE_KEYS, OUTCOME_ATTRS, RECORD_STATUSES, Outcome, PointCoords, Record, json_number, read_number,
)
from lorascale.vocabulary import RunStatus

COORDS = {"key": "k1", "config": "A1", "rank": 4, "log2_lr": -10.0, "alpha_mult": 2.0, "seed": 1, "finetune": "lora",
          "paths": [["alpha", 2.0]], "init": "A", "gamma_eff": 0.0, "predicted_slope": -0.5, "peft_alpha": 8.0}


def test_spec_points_store_exactly_the_record_coordinates():
    """Point.attrs() (spec.py) writes what PointCoords reads: the same keys, and a lossless round trip."""
    for p in small_spec(ranks=(4, 16), paths={"ranks": [4], "lr_fft": 2e-4, "alpha0": 16, "multipliers": [0, 1]}).points:
        attrs = p.attrs()
        assert tuple(attrs) == COORDINATE_KEYS
        assert PointCoords.from_dict(attrs).to_dict() == json.loads(json.dumps(attrs))


def test_record_round_trip_and_flat_coordinate_reads():
    out = Outcome("complete", 1.25, "val_accuracy", 0.75, 1.5, 3.0, ((1, 2.0), (2, 1.25)), "", "/runs/x")
    rec = Record(PointCoords.from_dict(COORDS), out)
    assert Record.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    assert (rec.rank, rec.config, rec.paths, rec.curve) == (4, "A1", (("alpha", 2.0),), ((1, 2.0), (2, 1.25)))
    assert rec.outcome.status is RunStatus.COMPLETE
    with pytest.raises(AttributeError, match="on .outcome"):
        rec.status  # outcome fields are not flattened: one place for each


@pytest.mark.parametrize("level", ["point", "outcome", "record"])
def test_unknown_stored_keys_are_rejected_by_name(level):
    d = Record(PointCoords.from_dict(COORDS), Outcome("failed", None)).to_dict()
    target = d if level == "record" else d[level]
    target["rank_pattern"] = {"q": 8}
    with pytest.raises(ConfigError, match=r"unknown stored keys \['rank_pattern'\]") as e:
        Record.from_dict(d)
    assert e.value.field == level


def test_missing_coordinates_and_bad_statuses_are_errors():
    with pytest.raises(ConfigError, match=r"lack \['seed'\]"):
        PointCoords.from_dict({k: v for k, v in COORDS.items() if k != "seed"})
    assert PointCoords.from_dict({k: COORDS[k] for k in ("key", "config", "rank", "log2_lr", "seed")}).alpha_mult == 1.0
    with pytest.raises(ConfigError, match="outcome"):
        Outcome.from_stored({"status": "running"})  # a record is of a run that ran
    with pytest.raises(ValueError):
        Outcome("exploded", 1.0)
    assert RECORD_STATUSES == ("complete", "diverged", "interrupted", "failed")


def test_non_finite_numbers_are_strings_that_read_back_as_themselves():
    out = Outcome("diverged", math.inf, "val_nll", math.nan, -math.inf)
    attrs = out.stored_attrs()
    assert tuple(attrs) == OUTCOME_ATTRS
    assert (attrs["final_ema_loss"], attrs["eval_value"], attrs["val_loss"]) == ("inf", "nan", "-inf")
    json.dumps(attrs, allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    back = Outcome.from_stored(json.loads(json.dumps(attrs)))
    assert (back.final_ema_loss, back.val_loss) == (math.inf, -math.inf) and math.isnan(back.eval_value)
    assert [read_number(v) for v in ("inf", "-inf", None, 2, "2.5")] == [math.inf, -math.inf, None, 2.0, 2.5]
    assert math.isnan(read_number("nan"))
    assert [json_number(v) for v in (math.inf, -math.inf, None, 3)] == ["inf", "-inf", None, 3.0]
    old = Outcome.from_stored({"status": "diverged", "final_ema_loss": "inf", "eval_metric": "val_nll"})  # the oldest writer
    assert (old.status, old.final_ema_loss) == ("diverged", math.inf)
    between = Outcome.from_stored({"status": "complete", "final_ema_loss": 1.0, "val_loss": None})  # null-writing studies
    assert between.val_loss is None


@pytest.mark.parametrize("metric, eval_metric", [("val_loss", None), ("eval", "val_nll"), ("eval", "val_accuracy")])
def test_a_non_finite_held_out_value_scores_worst_after_a_round_trip(metric, eval_metric):
    """Outcome('complete', 1.2, val_loss=nan) scores +inf (the worst of a minimised score; accuracy is negated, so
    +inf is its worst too) in memory; a null in storage used to turn it into None: left out of the fit instead."""
    from lorascale.sweep.optima import score

    nan_out = Outcome("complete", 1.2, eval_metric, math.nan if eval_metric else None, math.nan if metric == "val_loss" else None)
    rec = Record(PointCoords.from_dict(COORDS), nan_out)
    back = Record.from_dict(json.loads(json.dumps(rec.to_dict(), allow_nan=False)))
    assert score(rec, metric) == math.inf and score(back, metric) == math.inf
