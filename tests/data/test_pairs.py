"""Contrastive pairs: the builtin dialogue-pairs, query/positive files, their checks, and the batch layout."""

import csv
import json
import logging

import pytest

from lorascale.data import Kind, load_examples, make_loaders, tokenise
from lorascale.errors import ConfigError
from lorascale.models import byte_tokenizer


def test_dialogue_pairs_are_unique_consecutive_turns_of_the_dialogues():
    ex = load_examples("dialogue-pairs")
    assert ex.kind is Kind.QUERY_POSITIVE and ex.kind.task == "contrastive"
    assert len(ex) == 996  # of 2393 turn pairs: the first with each query and each reply, blank turns dropped
    assert len({q.casefold() for q in ex.queries}) == len({p.casefold() for p in ex.positives}) == len(ex)
    turns = set(zip(*(lambda d: (d.prompts, d.completions))(load_examples("dialogues"))))
    stripped = {(a.strip(), b.strip()) for a, b in turns}
    assert all(pair in stripped for pair in zip(ex.queries, ex.positives))
    assert (ex.queries[0], ex.positives[0]) == ("What is AI?", "Artificial Intelligence is the branch of engineering"
                                                                 " and science devoted to constructing machines that think.")


def test_query_positive_files_in_jsonl_and_csv(tmp_path):
    rows = [{"query": "q1", "positive": "p1"}, {"query": "q2", "positive": "p2"}]
    j = tmp_path / "pairs.jsonl"
    j.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = tmp_path / "pairs.csv"
    with c.open("w", newline="") as f:
        w = csv.DictWriter(f, ["query", "positive"])
        w.writeheader()
        w.writerows(rows)
    for path in (j, c):
        ex = load_examples(str(path))
        assert ex.kind is Kind.QUERY_POSITIVE and ex.queries == ["q1", "q2"] and ex.positives == ["p1", "p2"]
    assert load_examples(str(j), "contrastive").kind is Kind.QUERY_POSITIVE


@pytest.mark.parametrize("records, task, match", [
    ([{"query": "a"}, {"query": "b"}], None, r"2 of 2 records miss column.s. needed for contrastive pairs \(positive, query\): record 0 lacks positive; record 1 lacks positive"),
    ([{"text": "a"}, {"text": "b"}], "contrastive", "record 0 lacks positive, query; record 1 lacks positive, query"),
    ([{"query": "a", "positive": "b"}, {"query": "c"}], None, r"1 of 2 records .*: record 1 lacks positive; found"),
    ([{"query": "a", "positive": "b"}], None, "at least 2"),
    ([{"query": "a", "positive": "b"}, {"query": " ", "positive": "c"}], None, "query of pair 1 is blank"),
    ([], None, "no records"),
])
def test_bad_pair_files_fail_before_training(tmp_path, records, task, match):
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ConfigError, match=match) as e:
        load_examples(str(p), task)
    assert e.value.field == "data"


def test_repeated_positives_are_warned_about(tmp_path, caplog):
    p = tmp_path / "dup.jsonl"
    p.write_text("".join(json.dumps({"query": q, "positive": v}) + "\n" for q, v in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "x")]))
    with caplog.at_level(logging.WARNING, logger="lorascale"):
        load_examples(str(p))
    assert "2 pair(s) repeat another pair's positive" in caplog.text  # "x" three times: two repeats
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lorascale"):
        load_examples("dialogue-pairs")
    assert not caplog.text


def test_a_batch_is_its_queries_then_its_positives():
    tok = byte_tokenizer()
    ex = load_examples("dialogue-pairs")
    data = tokenise(ex, tok, seq_len=16, max_items=40)
    assert all(len(i["query_ids"]) <= 16 and len(i["positive_ids"]) <= 16 for i in data.items)
    train, val = make_loaders(data, 4, 0.25, 0, tok.pad_token_id)
    b = next(iter(val))
    assert b["input_ids"].shape[0] == 8 and b["labels"].tolist() == [0, 1, 2, 3]
    rows = [ids[: int(m.sum())].tolist() for ids, m in zip(b["input_ids"], b["attention_mask"])]
    positive_of = {tuple(i["query_ids"]): i["positive_ids"] for i in data.items}
    assert [positive_of[tuple(q)] for q in rows[:4]] == rows[4:]  # row B + i is query i's positive
    assert (b["input_ids"][b["attention_mask"] == 0] == tok.pad_token_id).all()


def test_splits_too_small_for_negatives_are_refused():
    tok = byte_tokenizer()
    data = tokenise(load_examples("dialogue-pairs"), tok, seq_len=16, max_items=3)
    with pytest.raises(ConfigError, match="held-out pair") as e:
        make_loaders(data, 2, 0.2, 0, tok.pad_token_id)  # 3 pairs: 2 train, 1 held out (the CRC32 split)
    assert e.value.field == "data"
    with pytest.raises(ConfigError, match="at least 2 pairs per batch") as e:
        make_loaders(tokenise(load_examples("dialogue-pairs"), tok, 16, 40), 1, 0.25, 0, tok.pad_token_id)
    assert e.value.field == "batch_size"
