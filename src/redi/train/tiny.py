"""A tiny Qwen2-style tokenizer and model, built offline, for tests and benchmarks.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library using Qwen2's own
pre-tokenizer and normaliser, wrapped in transformers' ``Qwen2Tokenizer`` (so a save/reload keeps
the ids), with ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` and a Qwen-style chat template.
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Solve the following math problem efficiently and clearly.",
    "<think>\nLet me compute 12 + 30 = 42. So the answer is 42.\n</think>",
    "Therefore, the final answer is: $\\boxed{42}$. I hope it is correct",
    "What is the sum of the first ten positive integers? 1+2+3+4+5+6+7+8+9+10 = 55",
    "The quick brown fox jumps over the lazy dog. 0123456789 ()[]{}=+-*/^_\\",
    "user assistant system think answer problem step by step",
]


def make_tokenizer(vocab_size: int = 300):
    """A ``Qwen2Tokenizer`` with a BPE of about ``vocab_size`` entries (the student's builder)."""
    from redi.model.student import train_tokenizer

    return train_tokenizer(_CORPUS * 4, vocab_size)


def make_model(
    tokenizer=None,
    *,
    vocab_size: int | None = None,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 4096,
    tie_word_embeddings: bool = False,
    seed: int = 0,
    attn_implementation: str = "sdpa",
):
    """A randomly initialised ``Qwen2ForCausalLM`` (fp32)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if vocab_size is None:
        vocab_size = len(tokenizer) if tokenizer is not None else 300
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        use_cache=False,
    )
    if tokenizer is not None:
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.bos_token_id = None
    torch.manual_seed(seed)
    config._attn_implementation = attn_implementation
    model = Qwen2ForCausalLM(config)
    # Larger-than-default init so that tiny models have non-trivial log-prob differences.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    return model.float()


def write_student(path: str | Path, **model_kwargs) -> Path:
    """Save a tiny model + tokenizer in HF format at ``path`` (for tests and smoke runs)."""
    path = Path(path)
    tok = make_tokenizer()
    model = make_model(tok, **model_kwargs)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _trace(rng, correct: bool, filler: int) -> str:
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    s = a + b if correct else a + b + rng.randint(1, 9)
    words = " ".join(rng.choice(["so", "then", "check", "sum", "carry"]) for _ in range(filler))
    return (
        f"<think>\nLet me compute {a} + {b} = {s}. {words}\n</think> Therefore, the final "
        f"answer is: $\\boxed{{{s}}}$. I hope it is correct"
    )


def pair_records(n: int = 5, seed: int = 1, max_filler: int = 25) -> list[dict]:
    """``n`` preference records (the D_Pref format) with traces of varied length."""
    import random

    rng = random.Random(seed)
    records = []
    for i in range(n):
        user = {"role": "user", "content": f"Problem {i}: add {rng.randint(1, 99)} and {rng.randint(1, 99)}."}
        records.append(
            {
                "id": f"q{i}",
                "prompt": [user],
                "chosen": [{"role": "assistant", "content": _trace(rng, True, rng.randint(0, max_filler))}],
                "rejected": [{"role": "assistant", "content": _trace(rng, False, rng.randint(0, max_filler))}],
            }
        )
    return records


def write_data(directory: str | Path, n: int = 24, seed: int = 0, max_filler: int = 30) -> tuple[Path, Path]:
    """Write ``sft.jsonl`` and ``pref.jsonl`` (the curated formats of docs/design.md)."""
    import json
    import random

    from redi.prompts import user_content

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sft, pref = directory / "sft.jsonl", directory / "pref.jsonl"
    with open(sft, "w") as fs, open(pref, "w") as fp:
        for i in range(n):
            user = {"role": "user", "content": user_content(f"What is item {i} of the list?")}
            good = {"role": "assistant", "content": _trace(rng, True, rng.randint(0, max_filler))}
            bad = {"role": "assistant", "content": _trace(rng, False, rng.randint(0, max_filler))}
            base = {"id": f"ex{i:04d}", "row_index": i, "source": "tiny"}
            fs.write(json.dumps({**base, "messages": [user, good]}) + "\n")
            fp.write(json.dumps({**base, "prompt": [user], "chosen": [good], "rejected": [bad]}) + "\n")
    return sft, pref
