"""The tests' tiny student, built by the pipeline's own builder (:mod:`redi.model.student`): its
Qwen2 tokenizer trainer, config keys (``TINY_DEFAULTS``) and chat template, so every test runs
the template the demo trains and evaluates with. Also small curated data sets (the formats of
docs/design.md). Offline; no hub access. Import as ``from helpers import ...`` (pytest puts
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
from pathlib import Path

from redi.prompts import OPENR1_INSTRUCTION, user_content

#: test-sized shape (keys of redi.model.student.TINY_DEFAULTS): small enough for CI's 2 cores
TEST_SHAPE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}

_LINES = [
    OPENR1_INSTRUCTION,
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
    """Deterministic tokenizer training text: prompt-like lines, chat-formatted turns (so merges
    such as "assistant", "<think", ">\\n" and "</think>" exist as in a real Qwen vocabulary),
    arithmetic and pseudo-words."""
    rng = random.Random(0)
    lines = list(_LINES)
    for k in range(40):
        opening = "<think>\n\n" if k % 2 else "<think>\n"
        lines.append(
            f"<|im_start|>user\n{OPENR1_INSTRUCTION}\n\nWhat is {k} + {k}?<|im_end|>\n<|im_start|>assistant\n"
            f"{opening}Okay, {k} + {k} = {2 * k}.\n</think>\n\nTherefore, the final answer is: "
            f"$\\boxed{{{2 * k}}}$. I hope it is correct<|im_end|>\n"
        )
    lines += [f"{a} + {b} = {a + b}; {a} * {b} = {a * b}" for a in range(30) for b in range(30)]
    letters = "etaoinshrdlucmfwypvbgkqjxz"
    weights = [len(letters) - i for i in range(len(letters))]
    for _ in range(3000):
        words = ["".join(rng.choices(letters, weights, k=rng.randint(2, 9))) for _ in range(rng.randint(3, 12))]
        lines.append(" ".join(words) + rng.choice([".", ",", "?", "!", ":", ";", "$", ")"]))
    return lines


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 1000):
    """The student's tokenizer (``redi.model.student.train_tokenizer``, its chat template) trained
    on :func:`corpus`. Cached: treat it as read-only."""
    from redi.model.student import train_tokenizer

    return train_tokenizer(corpus(), vocab_size)


def tiny_model(tokenizer=None, *, init_std: float | None = None, seed: int = 0,
               attn_implementation: str = "sdpa", **shape):  # fmt: skip
    """A randomly initialised fp32 student (``redi.model.student.random_student``), sized by
    :data:`TEST_SHAPE` updated with ``shape``. ``init_std``: redraw every matrix from
    N(0, init_std) (0.2 gives tiny models non-trivial log-prob differences; None = the default
    init). ``tokenizer=None`` needs ``shape["vocab_size"]``."""
    import torch

    from redi.model.student import random_student

    model = random_student(tokenizer, {**TEST_SHAPE, **shape, "seed": seed}, attn_implementation=attn_implementation)
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, init_std)
    return model.float()


def save_tiny_student(path: str | Path, *, vocab_size: int = 1000, init_std: float | None = None, **shape) -> Path:
    """Save a tiny student (model + tokenizer) in HF format at ``path`` with the pipeline's
    ``save_student`` (generation stops at ``<|im_end|>`` / ``<|endoftext|>``)."""
    from redi.model.student import save_student

    tokenizer = tiny_tokenizer(vocab_size)
    return save_student(tiny_model(tokenizer, init_std=init_std, **shape), tokenizer, str(path))


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


def tiny_training_inputs(root: Path, *, n: int, max_filler: int) -> dict:
    """A saved tiny student (init std 0.2) and its SFT/pair files under ``root``: the inputs the
    training tests share (``model``, ``sft``, ``pref`` paths as strings)."""
    save_tiny_student(root / "student", init_std=0.2)
    sft, pref = write_data(root, n=n, max_filler=max_filler)
    return {"model": str(root / "student"), "sft": str(sft), "pref": str(pref)}


@contextlib.contextmanager
def parsed_workflow(configfile: str | Path):
    """The repository's Snakefile parsed with ``configfile`` through Snakemake's own API (rules,
    their envs, scripts and resources as a run would see them); nothing is executed."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    root = Path(__file__).resolve().parents[1]
    with SnakemakeApi() as api:
        yield api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[root / configfile]),
            snakefile=root / "Snakefile",
            workdir=root,
        )._workflow
