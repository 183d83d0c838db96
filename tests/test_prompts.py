"""The evaluation prompt tokenises exactly as the start of the training conversation."""

from __future__ import annotations

import pytest

from helpers import save_tiny_student, tiny_tokenizer
from redi.prompts import (
    OPENR1_INSTRUCTION,
    THINK_PREFIX,
    conversation_messages,
    generation_prompt,
    prompt_token_ids,
    user_content,
)

PROBLEMS = [
    "What is $1+1$?",
    "Let $f(x)=\\frac{3x}{4}$. Find $f^{-1}(6)$.\n\nGive the answer as an integer.",
    "Résumé café: compute ∑_{i=1}^{10} i.   Trailing spaces   ",
    "Line one\r\nLine two\t tab",
]
RESPONSES = [
    "<think>\nOkay, 1+1=2.\n</think>\n\nTherefore, the final answer is: $\\boxed{2}$. I hope it is correct",
    "<think>\n Leading space, then text.</think>The answer is $\\boxed{8}$",
    "<think>\n\\frac{1}{2} starts with a backslash</think>x",
    "<think>\n123 digits first</think>\\boxed{55}",
    "<think>\n<think> nested? </think></think> ok",
    "<think>\nÉcole — naïve.</think> $\\boxed{1}$",
]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """The same tokenizer after save + AutoTokenizer (Qwen2Tokenizer rebuilds the pipeline)."""
    from transformers import AutoTokenizer

    path = save_tiny_student(tmp_path_factory.mktemp("tiny"))
    return AutoTokenizer.from_pretrained(path)


def _training_ids(tok, problem, response):
    enc = tok.apply_chat_template(conversation_messages(problem, response), tokenize=True)
    return list(enc["input_ids"] if hasattr(enc, "keys") else enc)


def test_prompt_text(tokenizer):
    from redi.model.student import CHAT_TEMPLATE

    text = generation_prompt(tokenizer, "What is 2+2?")
    # the pipeline's student template: ChatML with no default system turn
    assert tokenizer.chat_template == CHAT_TEMPLATE and text.startswith("<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    assert user_content("What is 2+2?") in text
    assert user_content("P") == OPENR1_INSTRUCTION + "\n\nP"
    train = tokenizer.apply_chat_template(
        conversation_messages("What is 2+2?", "<think>\nx</think>y"), tokenize=False
    )
    assert train.startswith(text)


def test_reloaded_tokenizer_is_qwen2_and_identical(tokenizer, reloaded):
    assert type(reloaded).__name__ == "Qwen2Tokenizer"
    for problem in PROBLEMS:
        assert prompt_token_ids(reloaded, problem) == prompt_token_ids(tokenizer, problem)


@pytest.mark.parametrize("which", ["built", "reloaded"])
def test_prompt_ids_are_prefix_of_training_ids(tokenizer, reloaded, which):
    tok = tokenizer if which == "built" else reloaded
    for problem in PROBLEMS:
        prompt = prompt_token_ids(tok, problem)
        assert prompt[-2:] != []  # non-trivial
        for response in RESPONSES:
            train = _training_ids(tok, problem, response)
            assert train[: len(prompt)] == prompt, (problem, response)
            assert len(train) > len(prompt)
            # and the rest decodes to the response (minus the forced prefix) + end of turn
            rest = tok.decode(train[len(prompt) :], skip_special_tokens=False)
            assert rest == response[len(THINK_PREFIX) :] + "<|im_end|>\n"


def test_known_exception_double_newline(tokenizer):
    """Qwen2's split regex glues ">\\n\\n" into one piece: a response starting "<think>\\n\\n"
    does NOT extend the prompt's ids (documented in redi.prompts). Proves the check can fail."""
    prompt = prompt_token_ids(tokenizer, PROBLEMS[0])
    train = _training_ids(tokenizer, PROBLEMS[0], "<think>\n\nBlank line first.</think>x")
    assert train[: len(prompt)] != prompt


def test_no_double_think_for_templates_that_open_it(tokenizer):
    """Templates that open the reasoning themselves (DeepSeek-R1-distill style) are completed."""
    import copy

    def opened(suffix):
        tok = copy.deepcopy(tokenizer)
        tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"
                             "{% if add_generation_prompt %}<|im_end|>" + suffix + "{% endif %}")
        return tok

    assert generation_prompt(opened("<think>\n"), "p").endswith("<|im_end|><think>\n")
    assert generation_prompt(opened("<think>"), "p").endswith("<|im_end|><think>\n")
    assert generation_prompt(opened(""), "p").endswith("<|im_end|><think>\n")
    assert generation_prompt(opened(""), "p").count("<think>") == 1
