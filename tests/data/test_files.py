"""User files as classification data: labels are integers or class names, never fractions."""

import json

import pytest

from lorascale.data.files import load_file
from lorascale.errors import ConfigError


@pytest.mark.parametrize("label", ["1.5", "1.0", "2e-3", " 0.5"])
def test_a_fractional_csv_label_is_refused_with_its_line(tmp_path, label):
    p = tmp_path / "d.csv"
    # a quoted field spans lines 2-3, so the bad row is on line 4, not at record 1 + 2
    p.write_text(f'text,label\n"two\nlines",0\nthird,"{label}"\nfourth,1\nfifth,1.5\n')
    with pytest.raises(ConfigError) as e:
        load_file(p, "classification")
    n_bad = 2  # every parametrised label is fractional, and so is "fifth"'s
    assert e.value.field == "data"
    assert e.value.message.startswith(f"{p}:4: label {label!r} is a number but not an integer ({n_bad} such labels)")
    assert "strings naming classes" in e.value.fix and "write 1, not 1.0" in e.value.fix


def test_a_fractional_jsonl_label_names_its_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": 0}, {}, {"text": "b", "label": 1.5}])
                 .replace("{}", ""))  # a blank line 2 holds no record
    with pytest.raises(ConfigError, match=rf"{p}:3: label 1.5 is a number but not an integer \(1 such labels\)"):
        load_file(p, None)


def test_integer_and_word_labels_still_load(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\na,1\nb,0\nc,1\n")
    assert load_file(p, "classification").labels == [1, 0, 1]
    p.write_text("text,label\na,nan\nb,v2\nc,nan\n")  # words, even number-like ones, name classes
    ex = load_file(p, "classification")
    assert ex.label_names == ["nan", "v2"] and ex.labels == [0, 1, 0]
