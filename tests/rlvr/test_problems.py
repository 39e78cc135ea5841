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


def _same_problem(question: str):
    """A question read by a human: "What is a op b?" with the operands of + and * in either order is one problem."""
    m = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", question)
    if m is None:
        return question
    a, op, b = int(m[1]), m[2], int(m[3])
    return (op, *sorted((a, b))) if op in "+*" else (op, a, b)


def test_sums_are_small_non_negative_and_distinct_up_to_commuting():
    ops = {"+": operator.add, "-": operator.sub}
    problems = make_problems("sums", 420)  # 20·21/2 = 210 sums a + b up to order, 210 differences a − b with a ≥ b
    for p in problems:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+]) (\d+)\?", p.question).groups()
        assert 1 <= int(a) <= 20 and 1 <= int(b) <= 20 and p.answer == ops[op](int(a), int(b)) >= 0
    assert len({_same_problem(p.question) for p in problems}) == 420
    with pytest.raises(ConfigError) as e:
        make_problems("sums", 421)  # one more than there are
    assert e.value.field == "train_problems" and e.value.fix == "ask for at most 420 in all (train_problems + val_problems)"


@pytest.mark.parametrize("kind", ["sums", "arithmetic", "math"])
def test_no_held_out_problem_is_a_training_problem_written_the_other_way_round(kind):
    train, val = split_problems(kind, 370 if kind == "sums" else 500, 50)
    assert not {_same_problem(p.question) for p in val} & {_same_problem(p.question) for p in train}


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
    assert not {_same_problem(p.question) for p in val_b} & {_same_problem(p.question) for p in train_b}


def test_user_problem_file_every_bad_line_reported(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "2+2?", "answer": 4}\n\n{"question": "3-5?", "answer": "-2"}\n')
    assert sorted((p.question, p.answer) for p in load_problems(good)) == [("2+2?", 4), ("3-5?", -2)]
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


def test_a_problem_file_is_deduplicated_shuffled_once_and_must_hold_the_budget(tmp_path):
    f = tmp_path / "p.jsonl"
    lines = [f'{{"question": "What is {i} + 1?", "answer": {i + 1}}}' for i in range(30)]
    f.write_text("\n".join(lines + lines[:3]) + "\n")  # three lines repeated: each would sit in both splits
    pool = load_problems(f)
    assert len(pool) == 30 and len(set(pool)) == 30 and pool == load_problems(f)  # the same order every call
    assert [p.answer for p in pool] != list(range(1, 31))  # held out at random, not the file's first lines
    train, val = split_problems(str(f), 25, 5)
    assert (len(train), len(val)) == (25, 5) and not set(train) & set(val)
    with pytest.raises(ConfigError) as e:
        split_problems(str(f), 26, 5)  # 30 distinct, 5 held out: 25 left, not the 26 the config would record
    assert (e.value.field, e.value.fix) == ("train_problems", "set train_problems to 25 or less, or add problems")


def test_a_problem_file_with_a_byte_order_mark_or_other_bytes(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes('{"question": "2+2?", "answer": 4}\n'.encode("utf-8-sig"))
    assert [(x.question, x.answer) for x in load_problems(p)] == [("2+2?", 4)]
    p.write_bytes(b'{"question": "\xff", "answer": 4}\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_problems(p)


def test_prompt_asks_for_the_tags():
    text = prompt_text("What is 2 + 3?")
    assert text == ("Solve the following grade-school math problem. Show reasoning in <think>...</think>, then give the"
                    " final numerical answer in <answer>...</answer>.\nQuestion: What is 2 + 3?\nSolution:")  # μA Table 5
    plain = prompt_text("What is 2 + 3?", "last-number")  # the answer read as the last number: no tags asked for
    assert "<answer>" not in plain and "final answer as a number" in plain and plain.endswith("What is 2 + 3?")


def _same_word_problem(question: str):
    """A word problem read by a human: its sentence with the name taken out (the same numbers in the same
    template are one problem whoever is in it); arithmetic as :func:`_same_problem` reads it."""
    return re.sub(r"\b(Ava|Ben|Chloe|Dev|Emma|Farid|Grace|Hugo|Ines|Jon)\b", "NAME", str(_same_problem(question)))


@pytest.mark.parametrize("kind", ["word-problems", "math"])
def test_no_held_out_word_problem_is_a_training_problem_with_another_name(kind):
    train, val = split_problems(kind, 500, 50)  # before keys left out the name, 7 of 50 held out were in training
    assert not {_same_word_problem(p.question) for p in val} & {_same_word_problem(p.question) for p in train}


def test_a_problem_file_keeps_a_question_once_however_spaced_and_refuses_two_answers(tmp_path):
    f = tmp_path / "p.jsonl"
    lines = [f'{{"question": "What is {i} + 1?", "answer": {i + 1}}}' for i in range(10)]
    f.write_text("\n".join(lines + ['{"question": "What is 0 + 1?  ", "answer": 1}',
                                    '{"question": "What  is 1 + 1?", "answer": "2"}']) + "\n")
    pool = load_problems(f)
    assert len(pool) == 10 and {p.answer for p in pool} == set(range(1, 11))  # the two respaced copies kept once
    f.write_text("\n".join(lines + ['{"question": "What is 0 + 1? ", "answer": 3}',
                                    '{"question": "What is 2 + 1?", "answer": 4}']) + "\n")
    with pytest.raises(ConfigError) as e:
        load_problems(f)
    assert e.value.field == "data" and "2 questions appear with different answers" in e.value.message
    assert "'What is 0 + 1?' has answers 1, 3" in e.value.message
