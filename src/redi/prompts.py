"""The one prompt builder shared by curation, training and evaluation.

Training text and evaluation prompts must tokenise identically up to the start of the
reasoning, so both go through the student's own chat template here. The paper's evaluation
template ended ``<|im_start|>assistant<think>\\n`` while its training text was
``<|im_start|>assistant\\n<think>\\n``; building both from the same template avoids that drift.
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


def generation_prompt(tokenizer, problem: str, instruction: str = OPENR1_INSTRUCTION) -> str:
    """Chat-templated prompt with the assistant turn opened and forced to start with ``<think>``."""
    text = tokenizer.apply_chat_template(
        user_messages(problem, instruction), tokenize=False, add_generation_prompt=True
    )
    return text + THINK_PREFIX
