"""User data files: labels are integers or class names, never fractions; files that are not what they
claim to be fail with the record, the part and the expected shape."""

import json

import pytest

from lorascale.cli import main
from lorascale.data import load_examples
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


def _jsonl(tmp_path, *records):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


@pytest.mark.parametrize("record, says", [
    ({"messages": "hi"}, "record 1: messages must be a non-empty list of messages, got str 'hi'"),
    ({"messages": []}, "record 1: messages must be a non-empty list of messages, got an empty list"),
    ({"messages": {"role": "user"}}, "record 1: messages must be a non-empty list of messages, got dict"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "record 1: message 0 lacks content"),
    ({"messages": [{"content": "a"}, {"role": "assistant", "content": "x"}]}, "record 1: message 0 lacks role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}, "record 1: message 1 lacks content"),
    ({"messages": [5, {"role": "assistant", "content": "x"}]}, "record 1: message 0 is int '5', not an object"),
])
def test_malformed_chat_records_name_record_and_message(tmp_path, record, says):
    with pytest.raises(ConfigError) as e:
        load_examples(_jsonl(tmp_path, GOOD, record))
    assert e.value.field == "data" and says in e.value.message, e.value.message
    assert '"messages": [{"role": "user"' in e.value.fix  # the shape to write


def test_well_formed_chat_records_still_load(tmp_path):
    ex = load_examples(_jsonl(tmp_path, GOOD))
    assert ex.prompts == ["user: Hi\nassistant: "] and ex.completions == ["Hello"]


def test_chat_content_given_as_text_parts_is_joined_and_other_parts_refused(tmp_path):
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]}
    ex = load_examples(_jsonl(tmp_path, parts))
    assert ex.prompts == ["user: Hi\nthere\nassistant: "] and ex.completions == ["Hello"]  # not the parts' repr
    assert ex.chats[0][0] == {"role": "user", "content": "Hi\nthere"}
    image = {"messages": [{"role": "user", "content": [{"type": "image", "url": "x.png"}, {"type": "text", "text": "?"}]},
                          {"role": "assistant", "content": "A cat"}]}
    with pytest.raises(ConfigError) as e:
        load_examples(_jsonl(tmp_path, GOOD, image))
    assert e.value.field == "data" and "record 1: message 0 has content parts that are not text (image)" in e.value.message


def test_a_column_on_some_records_only_is_seen_and_every_record_without_it_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b", "label": 1}\n{"text": "c", "label": null}\n{"text": "d"}\n')
    with pytest.raises(ConfigError) as e:  # the first record alone would have read as plain text, labels dropped
        load_examples(str(path))
    assert e.value.field == "data" and "3 of 4 records miss column(s) needed for classification (label, text)" in e.value.message
    assert "record 0 lacks label; record 2 has label null; record 3 lacks label" in e.value.message
    assert e.value.fix.startswith("found columns: label, text;")


def test_a_plain_folder_says_what_a_data_folder_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    for name in ("plain", str(tmp_path / "plain")):  # a bare name that exists is a path too
        with pytest.raises(ConfigError, match="is a folder but not a saved dataset .*dataset_dict.json or state.json") as e:
            load_examples(name)
        assert "save_to_disk" in e.value.fix and "install" not in e.value.message


def test_a_csv_row_wider_than_its_header_is_refused_at_its_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\nfoo,b\nhello, world,a\nbar,a\n")  # csv would read text "hello", label " world"
    with pytest.raises(ConfigError) as e:
        load_file(p, "classification")
    assert e.value.message == f"{p}:3 has more fields than the header (1 row in all)" and "quote" in e.value.fix
    p.write_text("text,label\nfoo,b\nhi\nbar,a\n")  # a row short of a field: read as label None before
    with pytest.raises(ConfigError) as e:
        load_file(p, "classification")
    assert e.value.message == f"{p}:3 has fewer fields than the header (1 row in all)" and "a,,b" in e.value.fix
    p.write_text("prompt,answer\na,b,c\n")  # the missing-column error listed a None key, and crashed sorting it
    with pytest.raises(ConfigError) as e:
        load_file(p, None)
    assert e.value.field == "data"


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "d.csv").write_bytes("text,label\na,0\nb,1\n".encode("utf-8-sig"))  # as Excel writes CSV
    assert load_file(tmp_path / "d.csv", "classification").texts == ["a", "b"]
    rows = [{"text": "a", "label": 0}, {"text": "b", "label": 1}]
    (tmp_path / "d.jsonl").write_bytes("".join(json.dumps(r) + "\n" for r in rows).encode("utf-8-sig"))
    assert load_file(tmp_path / "d.jsonl", "classification").texts == ["a", "b"]


def test_a_saved_dataset_dict_without_a_train_split(tmp_path):
    from datasets import Dataset, DatasetDict

    one = DatasetDict({"test": Dataset.from_dict({"text": ["x y z"] * 3})})
    one.save_to_disk(str(tmp_path / "one"))
    assert load_file(tmp_path / "one", "lm").texts == ["x y z"] * 3  # its only split
    two = DatasetDict({"a": Dataset.from_dict({"text": ["x"]}), "b": Dataset.from_dict({"text": ["y"]})})
    two.save_to_disk(str(tmp_path / "two"))
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "two", "lm")
    assert "splits a, b and no train split" in e.value.message and e.value.fix


def test_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_examples(str(tmp_path / "d.csv"))


def test_train_cli_bad_chat_exits_2_before_any_model_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path, {"messages": "hi"})
    assert main(["train", "--model", "tiny-llama", "--data", "chat.jsonl", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: --data: chat.jsonl: record 0: messages must be" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.jsonl"]
