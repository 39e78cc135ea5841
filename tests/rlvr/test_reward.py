import pytest

from lorascale.rlvr.reward import extract_answer, is_formatted, total_reward, trl_reward_functions


@pytest.mark.parametrize("text, answer, expected", [
    ("<think>2 + 3 = 5</think><answer>5</answer>", 5, 1.1),  # right and formatted: 1 + 0.1
    ("<think>2 + 3 = 5</think>\n<answer> 5 </answer>\n", 5, 1.1),  # whitespace between and around the tags
    ("<answer>5</answer>", 5, 1.0),  # right, but no reasoning block
    ("<think>x</think><answer>6</answer>", 5, 0.1),  # wrong, formatted
    ("<think>x</think><answer>1,234</answer>", 1234, 1.1),  # thousands separators are read
    ("<think>x</think><answer>-12</answer>", -12, 1.1),
    ("<think>x</think><answer>The answer is 42.</answer>", 42, 1.1),  # the number inside the block
    ("The answer is 5", 5, 0.0),  # no answer block: no credit
    ("<answer>4</answer> wait <answer>5</answer>", 5, 1.0),  # the last block counts; text after it breaks format
    ("<think>a</think><answer>4</answer> hmm <answer>5</answer>", 5, 1.0),  # right, but two answer blocks: no format
    ("<think>a</think> x </think><answer>5</answer>", 5, 1.0),  # a stray closing tag: no format
    ("<think>x</think><answer>\u2212899</answer>", -899, 1.1),  # a Unicode minus sign is a minus
    ("<think>x</think><answer>5.5</answer>", 5, 0.1),
])
def test_reward_hand_values(text, answer, expected):
    assert total_reward(text, answer) == pytest.approx(expected, abs=1e-12)  # sums of 1 and 0.1: only float rounding


@pytest.mark.parametrize("text, answer, expected", [
    ("2 + 3 = 5", 5, 1.0),  # SmolLM2-135M's way: the last number is the answer
    ("The sum of 2 and 3 is 5.", 5, 1.0),
    ("5, no: 2 + 3 = 6", 5, 0.0),  # the last number counts, not any
    ("<think>2 + 3</think><answer>5</answer>", 5, 1.1),  # the tags still earn the format reward
    ("<answer>5</answer> so 1,000 it is", 5, 0.0),  # outside the block too: the last number of the text
    ("It is 1,234.", 1234, 1.0),
    ("1,2,3", 3, 1.0),  # a list, not one number: commas group digits only in threes
    ("100 - 999 = \u2212899", -899, 1.0),
    ("no digits at all", 0, 0.0),
])
def test_last_number_reward_hand_values(text, answer, expected):
    assert total_reward(text, answer, match="last-number") == pytest.approx(expected, abs=1e-12)  # float rounding only
    assert extract_answer("2 + 3 = 5") is None  # tagged, the default, reads no untagged answer


def test_extract_answer_edge_cases():
    assert extract_answer("<answer></answer>") is None
    assert extract_answer("<answer>seven</answer>") is None
    assert extract_answer("<think>a</think>") is None
    assert not is_formatted("<think>a</think><answer>1</answer><think>b</think>")


def test_trl_functions_take_plain_and_conversational_completions():
    correctness, fmt = trl_reward_functions(fmt=0.25)
    plain = ["<think>a</think><answer>7</answer>", "<answer>8</answer>"]
    chat = [[{"role": "assistant", "content": c}] for c in plain]
    for completions in (plain, chat):
        assert correctness(prompts=["p", "p"], completions=completions, answer=[7, 7]) == [1.0, 0.0]
        assert fmt(prompts=["p", "p"], completions=completions, answer=[7, 7]) == [0.25, 0.0]
    assert fmt.__name__ == "format"  # TRL logs rewards/<name>/mean
    parsed = [[{"role": "assistant", "reasoning_content": "a", "content": "<answer>7</answer>"}]]  # a reasoning parser's
    assert correctness(completions=parsed, answer=[7]) == [1.0] and fmt(completions=parsed, answer=[7]) == [0.25]
    lenient, _ = trl_reward_functions(match="last-number")
    assert lenient(completions=["3 + 4 = 7", "<answer>7</answer>", "7 or 8"], answer=[7, 7, 7]) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("block, read", [
    ("10-3", 3),  # "-" after a digit is an operator: the last number is 3, not -3
    ("x=-3", -3),  # after "=" it is a sign
    (".5", 0.5),  # a bare decimal part is one number, not 5
    ("2.5", 2.5),  # and the tail of a number is never a number of its own
    ("2.5e3", 2500),  # an exponent belongs to its number
    ("1,2345", 2345),  # a comma before four digits groups nothing: two numbers, 1 and 2345
    ("3,000,000", 3_000_000),
    ("1,234.5", 1234.5),
])
def test_numbers_are_read_whole(block, read):
    assert extract_answer(f"<answer>{block}</answer>") == pytest.approx(read, rel=1e-15)  # exact up to float parsing
