"""Chat records (``messages``: a list of {role, content} ending with the assistant's turn) as prompt and
completion text: written by the tokenizer's own chat template when it has one, as the model saw chats
in its instruction tuning; else as plain ``role: content`` lines (and the log says so).

The loss falls on the last assistant turn only (the completion); everything before it is the prompt.
With a template the completion is the rendered conversation past the rendered prompt with the
generation header (``add_generation_prompt=True``): the answer and the template's end-of-turn tokens.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["plain_chat", "templated_chat", "has_chat_template"]


def plain_chat(messages: list[dict]) -> tuple[str, str]:
    """The fallback format: ``role: content`` lines, then ``assistant: `` and the answer."""
    prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1]) + "\nassistant: "
    return prompt, str(messages[-1]["content"])


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def templated_chat(messages: list[dict], tokenizer) -> tuple[str, str]:
    """(prompt, completion) rendered by ``tokenizer.apply_chat_template``."""
    from jinja2 import TemplateError  # transformers renders chat templates with jinja2

    try:
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
    except TemplateError as e:  # the template's own checks: e.g. "System role not supported", roles must alternate
        roles = "/".join(str(m.get("role")) for m in messages)
        raise ConfigError("data", f"the tokenizer's chat template refuses a conversation ({roles}): {e}",
                          "reshape the records as its template expects (e.g. fold a system message into the first user"
                          " turn), or write them as prompt/completion columns") from None
    if not full.startswith(prompt):  # e.g. a template that rewrites earlier turns once an answer follows
        raise ConfigError("data", "the tokenizer's chat template does not render a conversation as its prompt plus the"
                          " answer, so the answer's tokens cannot be told apart for the loss",
                          "write the data as prompt/completion columns")
    return prompt, full[len(prompt):]
