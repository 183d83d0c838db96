"""The one prompt builder shared by curation, training and evaluation.

Training text and evaluation prompts must tokenise identically up to the start of the
reasoning, so both go through the student's own chat template here. The paper's evaluation
template ended ``<|im_start|>assistant<think>\\n`` while its training text was
``<|im_start|>assistant\\n<think>\\n``; building both from the same template avoids that drift.

Token-level contract (checked by ``tests/test_prompts.py``): with a Qwen2-style tokenizer,
``prompt_token_ids(tok, problem)`` is an exact prefix of the ids of the training conversation
``[user_content(problem), assistant: "<think>\\n..."]``. The one known exception is an assistant
turn starting ``"<think>\\n\\n"`` (or ``"<think>\\n\\r"``): Qwen2's pre-tokenizer glues the run of
newlines after ``>`` into one piece, so the training ids hold ``">\\n\\n"`` where the prompt ends
in ``">\\n"``.
"""

from __future__ import annotations

OPENR1_INSTRUCTION = (
    "Solve the following math problem efficiently and clearly. The last line of your response "
    "should be of the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. "
    "I hope it is correct' (without quotes) where ANSWER is just the final number or expression "
    "that solves the problem. Think step by step before answering."
)

THINK_PREFIX = "<think>\n"


def user_content(problem: str, instruction: str = OPENR1_INSTRUCTION) -> str:
    """The user turn: the Open-R1 instruction, a blank line, then the problem."""
    return f"{instruction}\n\n{problem}" if instruction else problem


def user_messages(problem: str, instruction: str = OPENR1_INSTRUCTION) -> list[dict]:
    return [{"role": "user", "content": user_content(problem, instruction)}]


def assistant_messages(response: str) -> list[dict]:
    """The assistant turn alone (a pair's ``chosen`` / ``rejected``, TRL's conversational layout)."""
    return [{"role": "assistant", "content": response}]


def conversation_messages(
    problem: str, response: str, instruction: str = OPENR1_INSTRUCTION
) -> list[dict]:
    """The training conversation: user turn + the teacher's response (starts with ``<think>``)."""
    return user_messages(problem, instruction) + assistant_messages(response)


def _think_suffix(text: str) -> str:
    """What to add after a generation prompt so that it opens the reasoning: ``<think>\\n``, or
    only what a template that already opens it (DeepSeek-R1-distill style) has not written."""
    if text.endswith(THINK_PREFIX):
        return ""
    if text.endswith(THINK_PREFIX.rstrip("\n")):
        return "\n"
    return THINK_PREFIX


def generation_prompt(tokenizer, problem: str, instruction: str = OPENR1_INSTRUCTION, *, think: bool = True) -> str:
    """Chat-templated prompt with the assistant turn opened and (``think``) forced to start with
    ``<think>``.

    Templates that already open the reasoning themselves (DeepSeek-R1-distill style, ending in
    ``<think>\\n`` or ``<think>``) are completed rather than given a second ``<think>``. Rendered
    with the student's stored template settings (:func:`redi.chat_template.render`: a fixed date,
    the configured system turn).
    """
    from redi.chat_template import render

    text = render(tokenizer, user_messages(problem, instruction), True)
    return text + _think_suffix(text) if think else text


def prompt_token_ids(tokenizer, problem: str, instruction: str = OPENR1_INSTRUCTION, *,
                     think: bool = True) -> list[int]:  # fmt: skip
    """Token ids of :func:`generation_prompt`: the problem (and instruction) as plain text, so a
    special-token string inside a problem never becomes a control token, between the template's
    own control tokens (:func:`redi.chat_template.prompt_ids`, training's prompt builder). No BOS
    is added beyond what the template writes (one would break the prefix property)."""
    from redi.chat_template import prompt_ids, render

    msgs = user_messages(problem, instruction)
    suffix = _think_suffix(render(tokenizer, msgs, True)) if think else ""
    return prompt_ids(tokenizer, [msgs], ["evaluation prompt"], suffix=suffix)[0].tolist()
