import operator
import re

import pytest

from lorascale.errors import ConfigError
from lorascale.rlvr.problems import load_problems, make_problems, prompt_text, split_problems


def test_arithmetic_answers_agree_with_python():
    """Every generated answer equals the question evaluated independently."""
    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    problems = make_problems("arithmetic", 300)
    for p in problems:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", p.question).groups()
        assert p.answer == ops[op](int(a), int(b))
    assert len({p.question for p in problems}) == 300  # distinct
    assert {re.search(r"[-+*]", p.question).group() for p in problems} == {"+", "-", "*"}


def test_sums_are_small_non_negative_and_fill_the_default_budget():
    ops = {"+": operator.add, "-": operator.sub}
    problems = make_problems("sums", 550)  # the defaults: 500 training + 50 held-out, of 20·20 + 20·21/2 = 610 distinct
    for p in problems:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+]) (\d+)\?", p.question).groups()
        assert 1 <= int(a) <= 20 and 1 <= int(b) <= 20 and p.answer == ops[op](int(a), int(b)) >= 0
    assert len({p.question for p in problems}) == 550
    with pytest.raises(ConfigError) as e:
        make_problems("sums", 611)  # one more than there are
    assert e.value.field == "train_problems"


WORD_RULES = [  # (pattern, answer from its numbers): the templates read by a human, not the generator's lambdas
    (r"has (\d+) apples and buys (\d+) more", lambda a, b: a + b),
    (r"had (\d+) stickers and gave (\d+) of them away", lambda a, b: a - b),
    (r"A box holds (\d+) pencils\. How many pencils are in (\d+) boxes", lambda b, c: b * c),
    (r"reads (\d+) pages a day for (\d+) days, then (\d+) more", lambda b, c, a: b * c + a),
    (r"has (\d+) rows of (\d+) books\. \w+ removes (\d+) books", lambda c, b, c2: c * b - c2),
    (r"saves (\d+) dollars a week\. After (\d+) weeks, \w+ spends (\d+) dollars", lambda b, c, b2: b * c - b2),
]


def test_word_problem_answers_follow_their_text():
    problems = make_problems("word-problems", 200)
    seen = set()
    for p in problems:
        for i, (pattern, rule) in enumerate(WORD_RULES):
            m = re.search(pattern, p.question)
            if m:
                assert p.answer == rule(*map(int, m.groups())), p.question
                seen.add(i)
                break
        else:
            pytest.fail(f"no rule reads {p.question!r}")
    assert seen == set(range(len(WORD_RULES)))  # every template appears in 200 draws


def test_problems_are_deterministic_and_the_held_out_set_is_fixed():
    assert make_problems("math", 50) == make_problems("math", 50)
    train_a, val_a = split_problems("math", 10, 8)
    train_b, val_b = split_problems("math", 40, 8)
    assert val_a == val_b  # the held-out problems do not depend on the training budget
    assert train_a == train_b[:10]
    assert not {p.question for p in val_b} & {p.question for p in train_b}


def test_user_problem_file_every_bad_line_reported(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "2+2?", "answer": 4}\n\n{"question": "3-5?", "answer": "-2"}\n')
    assert [(p.question, p.answer) for p in load_problems(good)] == [("2+2?", 4), ("3-5?", -2)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": 1.5}\n{"answer": 2}\nnot json\n{"question": "b", "answer": true}\n')
    with pytest.raises(ConfigError) as e:
        load_problems(bad)
    assert e.value.field == "data" and "4 bad records" in e.value.message and "line 1" in e.value.message
    assert "missing column 'question'" in e.value.message
    with pytest.raises(ConfigError, match="unknown problem set"):
        make_problems("algebra", 3)
    with pytest.raises(ConfigError) as e:
        split_problems(str(good), 5, 1)  # 2 problems, 1 held out: too few to train
    assert e.value.field == "val_problems"


def test_a_problem_file_with_a_byte_order_mark_or_other_bytes(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes('{"question": "2+2?", "answer": 4}\n'.encode("utf-8-sig"))
    assert [(x.question, x.answer) for x in load_problems(p)] == [("2+2?", 4)]
    p.write_bytes(b'{"question": "\xff", "answer": 4}\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_problems(p)


def test_prompt_asks_for_the_tags():
    text = prompt_text("What is 2 + 3?")
    assert "<think>...</think>" in text and "<answer>...</answer>" in text and text.endswith("What is 2 + 3?")
    plain = prompt_text("What is 2 + 3?", "last-number")  # the answer read as the last number: no tags asked for
    assert "<answer>" not in plain and "final answer as a number" in plain and plain.endswith("What is 2 + 3?")
