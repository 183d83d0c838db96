"""Shared helpers for the data-stage tests (no tests here)."""

from __future__ import annotations

from pathlib import Path

QWEN_STYLE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(out_dir: Path, extra_texts: list[str] | None = None) -> Path:
    """A small byte-level BPE tokenizer with a Qwen-style chat template, saved with
    transformers so ``AutoTokenizer.from_pretrained(out_dir)`` loads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from redi.prompts import OPENR1_INSTRUCTION

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [OPENR1_INSTRUCTION, "Compute 37 + 45 - 18.", "<think>\n37 + 45 = 82.\n</think>"] + (
        extra_texts or []
    )
    tok.train_from_iterator(texts * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = QWEN_STYLE_TEMPLATE
    out_dir = Path(out_dir)
    fast.save_pretrained(str(out_dir))
    return out_dir


def raw_row(
    problem="Compute 1 + 1.", answer="2", gens=None, llama=None, mv=None, valid="yes", source="olympiads"
):
    gens = gens if gens is not None else ["<think>\n1 + 1 = 2.\n</think>\n\n$\\boxed{2}$"]
    llama = llama if llama is not None else [True] * len(gens)
    mv = mv if mv is not None else [True] * len(gens)
    return {
        "problem": problem,
        "solution": "",
        "answer": answer,
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "source": source,
        "uuid": "u",
        "is_reasoning_complete": [True] * len(gens),
        "generations": gens,
        "correctness": {
            "llama_verification": llama,
            "math_verify_answer": mv,
            "math_verify_reparsed_answer": mv,
        },
        "finish_reasons": ["stop"] * len(gens),
        "correctness_count": sum(mv),
        "problem_is_valid": valid,
        "solution_is_valid": valid,
    }


def write_parquet(rows: list[dict], path: Path, schema=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def gen(ans, body="work"):
    return f"<think>\n{body}\n</think>\n\nTherefore, the final answer is: $\\boxed{{{ans}}}$. I hope it is correct"


def verified_row(
    row_index,
    problem=None,
    llama=None,
    mv=None,
    rec=None,
    gens=None,
    valid="yes",
    source="olympiads",
    answer="2",
    schema="raw",
):
    """A row of the verified table (canonical + recomputed labels). ``schema`` "raw" has a
    problem_is_valid column (a null is dropped), "flat" has none (a null is kept)."""
    from redi.ids import problem_id

    problem = problem if problem is not None else f"Problem number {row_index}: compute {row_index} + 2."
    n = (
        len(gens)
        if gens is not None
        else len(llama if llama is not None else (mv if mv is not None else rec))
    )
    gens = gens if gens is not None else [gen(k, f"row {row_index} gen {k}") for k in range(n)]
    return {
        "problem_id": problem_id(problem),
        "row_index": row_index,
        "source": source,
        "problem": problem,
        "answer": answer,
        "problem_is_valid": valid,
        "generations": gens,
        "label_llama": llama,
        "label_mv": mv,
        "is_reasoning_complete": None,
        "finish_reasons": None,
        "schema": schema,
        "label_recomputed": rec if rec is not None else (list(mv) if mv is not None else None),
        "verify_status": ["ok"] * n,
    }


def write_verified(rows: list[dict], path: Path) -> Path:
    from redi.data.schemas import verified_schema

    return write_parquet(rows, path, verified_schema())
