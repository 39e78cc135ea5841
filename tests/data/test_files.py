"""User data files that are not what they claim to be fail with the record, the part and the expected shape."""

import json

import pytest

from lorascale.cli import main
from lorascale.data import load_examples
from lorascale.errors import ConfigError


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


def test_a_plain_folder_says_what_a_data_folder_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    for name in ("plain", str(tmp_path / "plain")):  # a bare name that exists is a path too
        with pytest.raises(ConfigError, match="is a folder but not a saved dataset .*dataset_dict.json or state.json") as e:
            load_examples(name)
        assert "save_to_disk" in e.value.fix and "install" not in e.value.message


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
