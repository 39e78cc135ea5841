"""The settings vocabulary: one number type for every float setting."""

import typing

import pytest

from lorascale.errors import ConfigErrors
from lorascale.schema import leaf_fields
from lorascale.train.config import TrainConfig


def _floats(model) -> list[str]:
    """Leaf settings whose type admits a bare float (not a tuple of them)."""
    out = []
    for name, (_, info) in leaf_fields(model).items():
        args = typing.get_args(info.annotation) or (info.annotation,)
        if any(a is float or typing.get_args(a)[:1] == (float,) for a in args):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _floats(TrainConfig))
def test_no_float_setting_reads_true_or_false_as_a_number(name):
    """YAML's `false` is not 0.0: each float setting uses schema.Float, whose validator refuses booleans."""
    from lorascale.schema import nest

    with pytest.raises(ConfigErrors) as e:
        TrainConfig(**nest(TrainConfig, {name: False}))
    assert any(x.field.split(".")[-1] == name and "true/false" in x.message for x in e.value.errors), e.value


def test_the_float_settings_are_found():
    assert {"lr", "lora_dropout", "weight_decay", "val_fraction"} <= set(_floats(TrainConfig))  # the scan sees them
