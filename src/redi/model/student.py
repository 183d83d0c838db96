"""The tiny default student: a Qwen2-architecture model and a tokenizer trained on the corpus.

The tokenizer is trained with Qwen2's own pre-tokenizer (its Split regex, then byte-level
without a regex) and NFC normaliser and is saved as a ``Qwen2Tokenizer``. ``AutoTokenizer``
reloads a tokenizer saved beside a ``qwen2`` config as ``Qwen2Tokenizer`` and installs that
pre-tokenizer, so any other pre-tokenizer would silently change the ids after a reload.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from redi.model.shape import TINY_DEFAULTS  # noqa: F401  (re-exported; one home in shape.py)
from redi.prompts import OPENR1_INSTRUCTION

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML as Qwen2.5 writes it, without a default system turn (it would only lengthen every
# sequence of the tiny demo). The generation prompt is "<|im_start|>assistant\n".
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)



def _qwen2_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def corpus_texts(canonical_path: str, instruction: str = OPENR1_INSTRUCTION) -> Iterator[str]:
    """Tokenizer training text: every prompt (instruction + problem) and every generation."""
    table = pd.read_parquet(canonical_path, columns=["problem", "generations"])
    for problem, generations in zip(table["problem"], table["generations"]):
        # The instruction opens every prompt: give BPE the chance to compress it.
        yield instruction + "\n\n" + str(problem)
        for text in generations if generations is not None else ():
            yield str(text)


def train_tokenizer(texts: Iterable[str], vocab_size: int, chat_template: str = CHAT_TEMPLATE):
    """Train a byte-level BPE with Qwen2's pre-tokenizer on ``texts``; return a Qwen2Tokenizer
    (eos ``<|im_end|>``, pad ``<|endoftext|>``) with ``chat_template``."""
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = _qwen2_pre_tokenizer()
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = chat_template
    return tokenizer


def qwen2_config(tokenizer, cfg: dict | None = None):
    """A Qwen2 config sized by ``cfg`` (keys of TINY_DEFAULTS) for ``tokenizer``'s vocabulary.

    ``tokenizer=None`` (benchmarks of the model alone): ``cfg["vocab_size"]`` entries, no
    special-token ids."""
    from transformers import Qwen2Config

    cfg = {**TINY_DEFAULTS, **(cfg or {})}
    return Qwen2Config(
        vocab_size=len(tokenizer) if tokenizer is not None else int(cfg["vocab_size"]),
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        rope_theta=cfg["rope_theta"],
        tie_word_embeddings=cfg["tie_word_embeddings"],
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>") if tokenizer is not None else None,
        pad_token_id=tokenizer.pad_token_id if tokenizer is not None else None,
    )


def random_student(tokenizer, cfg: dict | None = None, **from_config):
    """A randomly initialised Qwen2 student (``cfg``: keys of TINY_DEFAULTS; ``torch`` seeded with
    ``cfg["seed"]``); ``from_config`` goes to ``AutoModelForCausalLM.from_config`` (e.g.
    ``attn_implementation``)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = {**TINY_DEFAULTS, **(cfg or {})}
    torch.manual_seed(cfg["seed"])
    return AutoModelForCausalLM.from_config(qwen2_config(tokenizer, cfg), **from_config)


def save_student(model, tokenizer, out_dir: str) -> Path:
    """Save model + tokenizer; generation stops at ``<|im_end|>`` or ``<|endoftext|>``."""
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_student(canonical_path: str, out_dir: str, cfg: dict | None = None) -> dict:
    """Train the tokenizer on the corpus and save a randomly initialised Qwen2 student."""
    cfg = {**TINY_DEFAULTS, **(cfg or {})}
    from redi.chat_template import store_settings

    tokenizer = train_tokenizer(corpus_texts(canonical_path), cfg["vocab_size"])
    # the student record every checkpoint's tokenizer carries (redi.model.base.student_record)
    store_settings(tokenizer, student={"hub": None, "revision": None, "local_path": None, "weights_sha256": None,
                                       "name_or_path": "redi tiny Qwen2 student", "license": None,
                                       "tiny": {k: cfg[k] for k in sorted(cfg)}})  # fmt: skip
    model = random_student(tokenizer, cfg)
    out = save_student(model, tokenizer, out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny student: %d parameters, vocabulary %d, saved to %s", n_params, len(tokenizer), out)
    return {"parameters": n_params, "vocab_size": len(tokenizer), "path": str(out)}
