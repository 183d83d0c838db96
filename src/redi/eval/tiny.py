"""Tiny offline stand-ins for a Qwen2 student: a byte-level BPE tokenizer built with the
``tokenizers`` library exactly as Qwen2's (NFC normaliser, Qwen2 split regex, ByteLevel without
regex, Qwen2.5 chat template) and a randomly initialised ``Qwen2ForCausalLM``.

Used by the evaluation tests and ``bench/bench_generate.py``; no hub access needed.
"""

from __future__ import annotations

import functools
from pathlib import Path

# Qwen2.5(-Math) style chat template (no tool calls): default system turn, ChatML turns.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within "
    "\\\\boxed{}.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CORPUS = [
    "Solve the following math problem efficiently and clearly. The last line of your response "
    "should be of the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. "
    "I hope it is correct' (without quotes) where ANSWER is just the final number or expression "
    "that solves the problem. Think step by step before answering.",
    "<think>\nOkay, let me think. We have $x^2 + 2x + 1 = 0$, so $(x+1)^2 = 0$ and $x = -1$.\n"
    "</think>\n\nTherefore, the final answer is: $\\boxed{-1}$. I hope it is correct",
    "Let $f(x) = \\frac{3x}{4}$. Compute $\\sqrt{16} + \\pi r^2$ for r = 12, 345, 6789.",
    "What is the sum of the first 100 positive integers? The answer is 5050.",
    "Find all real solutions (a, b) such that a + b = 10 and ab = 21. Hmm, wait: 3 and 7.",
    "The triangle ABC has sides 3, 4, 5; its area is 6 and its circumradius is 5/2.",
    "Résumé: naïve café, façade; Ω ≈ 3.14159, ∑ i = n(n+1)/2 — über.",
    "\t  indented\r\n  lines\n\n\nwith   spaces   and tabs\t\tdone.",
]


def corpus() -> list[str]:
    """Deterministic training text: prompt-like lines, arithmetic and pseudo-words (enough
    distinct pairs for a few thousand merges)."""
    import random

    rng = random.Random(0)
    lines = list(_CORPUS)
    # chat-formatted turns, so that merges such as "assistant", "<think", ">\n", ">\n\n" and
    # "</think>" exist as in a real Qwen vocabulary (they decide token boundaries)
    for k in range(40):
        opening = "<think>\n\n" if k % 2 else "<think>\n"
        lines.append(
            f"<|im_start|>system\nPlease reason step by step.<|im_end|>\n<|im_start|>user\n"
            f"{_CORPUS[0]}\n\nWhat is {k} + {k}?<|im_end|>\n<|im_start|>assistant\n"
            f"{opening}Okay, {k} + {k} = {2 * k}.\n</think>\n\nTherefore, the final answer is: "
            f"$\\boxed{{{2 * k}}}$. I hope it is correct<|im_end|>\n"
        )
    lines += [f"{a} + {b} = {a + b}; {a} * {b} = {a * b}" for a in range(30) for b in range(30)]
    letters = "etaoinshrdlucmfwypvbgkqjxz"
    weights = [len(letters) - i for i in range(len(letters))]
    for _ in range(3000):
        words = [
            "".join(rng.choices(letters, weights, k=rng.randint(2, 9)))
            for _ in range(rng.randint(3, 12))
        ]
        lines.append(" ".join(words) + rng.choice([".", ",", "?", "!", ":", ";", "$", ")"]))
    return lines


@functools.lru_cache(maxsize=4)
def build_tokenizer(vocab_size: int = 1000):
    """A Qwen2 tokenizer (the student's builder) trained on :func:`corpus`, with the Qwen2.5
    chat template and its default system turn."""
    from redi.model.student import train_tokenizer

    return train_tokenizer(corpus(), vocab_size, chat_template=QWEN25_CHAT_TEMPLATE)


def build_tiny_qwen2(
    out_dir: str | Path,
    *,
    vocab_size: int = 1000,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised Qwen2 causal LM + the test tokenizer to ``out_dir``."""
    import torch
    from transformers import Qwen2ForCausalLM

    from redi.model.student import qwen2_config, save_student

    tokenizer = build_tokenizer(vocab_size)
    config = qwen2_config(
        tokenizer,
        {
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size or 4 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "max_position_embeddings": max_position_embeddings,
        },
    )
    torch.manual_seed(seed)
    return save_student(Qwen2ForCausalLM(config), tokenizer, str(out_dir))
