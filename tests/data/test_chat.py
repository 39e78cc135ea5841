"""Chat records through the tokenizer's chat template, the loss on the assistant's answer only."""

import json
import logging

import pytest

from lorascale.data import IGNORE_INDEX, load_examples, tokenise
from lorascale.errors import ConfigError
from lorascale.models import byte_tokenizer

# ChatML, the format of SmolLM2-Instruct's template (without its default system prompt)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Name?"},
        {"role": "assistant", "content": "Bo."}]


@pytest.fixture
def chat_file(tmp_path):
    p = tmp_path / "chat.jsonl"
    p.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": CHAT[1:3]}) + "\n")
    return str(p)


def test_the_chat_template_writes_the_turns_and_the_loss_is_the_last_answer(chat_file):
    tok = byte_tokenizer()
    tok.chat_template = CHATML
    item = tokenise(load_examples(chat_file), tok, seq_len=256).items[0]
    # by hand from the template: every turn in ChatML, the last answer with its end-of-turn and nothing after
    expected = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
                "Hello.<|im_end|>\n<|im_start|>user\nName?<|im_end|>\n<|im_start|>assistant\nBo.<|im_end|>\n")
    assert tok.decode(item["input_ids"]) == expected  # no EOS appended: the template's <|im_end|> ends the turn
    n_prompt = len(expected) - len("Bo.<|im_end|>\n")  # a byte tokenizer: one token per character here (ASCII)
    assert item["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt  # the system, user and earlier assistant turns
    assert tok.decode(item["labels"][n_prompt:]) == "Bo.<|im_end|>\n"


def test_without_a_template_the_plain_format_is_used_and_logged(chat_file, caplog):
    tok = byte_tokenizer()  # the tiny models' tokenizer has no chat template
    assert tok.chat_template is None
    with caplog.at_level(logging.INFO, logger="lorascale"):
        item = tokenise(load_examples(chat_file), tok, seq_len=256).items[1]
    assert "no chat template" in caplog.text
    prompt = "user: Hi?\nassistant: "
    assert tok.decode(item["input_ids"]) == prompt + "Hello.</s>"  # the answer, then EOS
    assert item["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert tok.decode(item["labels"][len(prompt):]) == "Hello.</s>"


def test_a_template_that_rewrites_the_prompt_is_refused(chat_file):
    tok = byte_tokenizer()
    # renders the generation header differently from how a finished conversation shows it
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant, go]{% endif %}")
    with pytest.raises(ConfigError) as e:
        tokenise(load_examples(chat_file), tok, seq_len=256)
    assert e.value.field == "data" and "prompt/completion" in e.value.fix


def test_a_template_that_refuses_a_role_is_a_data_error(chat_file):
    tok = byte_tokenizer()
    # as Gemma's template does: it raises on a system turn
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}\n{% endfor %}")
    with pytest.raises(ConfigError) as e:
        tokenise(load_examples(chat_file), tok, seq_len=256)
    assert e.value.field == "data" and "System role not supported" in e.value.message
    assert "(system/user/assistant/user/assistant)" in e.value.message and "system message" in e.value.fix


@pytest.mark.slow
def test_smollm2_tokenizer_has_a_chat_template_and_uses_it(chat_file):
    from lorascale.models import load_model

    tok = load_model("smollm2-135m", quiet=True).tokenizer
    item = tokenise(load_examples(chat_file), tok, seq_len=256).items[1]
    text = tok.decode(item["input_ids"])
    assert "<|im_start|>user\nHi?<|im_end|>" in text and text.endswith("<|im_start|>assistant\nHello.<|im_end|>\n")
    answer = [t for t in item["labels"] if t != IGNORE_INDEX]
    assert tok.decode(answer) == "Hello.<|im_end|>\n"
