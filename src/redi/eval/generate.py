"""What every sampling backend shares: the job and record types, seeds, stop tokens, the cut at
the stop token, and the generation-budget check. The backends themselves, one per file, are in
:mod:`redi.eval.backends` (``transformers``: CPU/CI and one GPU; ``vllm``: GPU, its own
environment), chosen by name (``evaluation.backend``).

Both produce the same :class:`Generation` records. ``text`` is the continuation after the
prompt (the prompt ends with the forced ``<think>\\n``), decoded from the generated ids with the
stop token cut off and special tokens kept (``</think>`` must survive even where a tokenizer
marks it special); ``length`` is the number of generated tokens without the stop token;
``finish_reason`` is ``"stop"`` (``<|im_end|>`` or EOS) or ``"length"`` (``max_new_tokens`` or the
model's context length).

Seeds: vLLM gets a per-request seed derived from (seed, problem id); its ``n`` children use
``seed + i`` (vLLM's own rule), and a job resumed at sample ``a`` asks for seed ``base + a``, so
a sample's randomness depends only on (seed, problem, sample index). The transformers backend
seeds torch once per batch from (seed, first row of the batch): reproducible for the same job
list, but a resumed run batches differently and so draws different (equally valid) samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FINISH_REASONS = ("stop", "length")
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class GenerationJob:
    """Samples ``sample_indices`` (contiguous) of one prompt."""

    problem_id: str
    prompt_ids: tuple[int, ...]
    sample_indices: tuple[int, ...]


@dataclass(frozen=True)
class Generation:
    problem_id: str
    sample_index: int
    text: str
    length: int
    finish_reason: str  # "stop" | "length"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplingConfig:
    """How each sample is drawn (paper, "Evaluation": temperature 0.6, top-p 0.95). The resume
    journal's fingerprint and ``metrics.json``'s ``sampling`` are this dict."""

    temperature: float = field(default=0.6, metadata={"help": (
        "Softmax temperature (> 0: sampling; greedy decoding is not pass@k). The paper: 0.6.")})
    top_p: float = field(default=0.95, metadata={"help": (
        "Nucleus sampling mass in (0, 1]; top-k and penalties stay off. The paper: 0.95.")})
    max_new_tokens: int = field(default=32768, metadata={"help": (
        "Generation budget per sample (tokens after the prompt); the prompt plus this must fit the model's "
        "context, or the job stops before generating.")})
    seed: int = field(default=0, metadata={"help": (
        "Base seed; a sample's randomness derives from (seed, problem, sample index).")})

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (sampling; greedy decoding is not pass@k)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


# Called after every finished batch with its generations and the batch's wall seconds.
OnBatch = Callable[[list[Generation], float], None]


def stable_int(*parts, bits: int = 31) -> int:
    digest = hashlib.sha1(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (1 << bits)


def request_seed(seed: int, problem_id: str) -> int:
    """Base seed of one prompt; sample ``i`` uses ``request_seed + i`` (kept below 2**31)."""
    return stable_int(seed, problem_id, bits=30)


def contiguous_runs(indices: Sequence[int]) -> list[tuple[int, ...]]:
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return [tuple(r) for r in runs]


def stop_token_ids(tokenizer, model_path: str | os.PathLike | None = None) -> list[int]:
    """The end-of-turn token the chat template closes assistant turns with
    (:func:`redi.chat_template.end_of_turn`: ``<|im_end|>``, Llama-3's ``<|eot_id|>``...),
    ``<|im_end|>``, ``<|endoftext|>`` (where the vocabulary has them), the tokenizer's EOS and the
    EOS ids of the model's generation config."""
    ids: list[int] = []

    def add(value):
        if value is None:
            return
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) >= 0 and int(v) not in ids:
                ids.append(int(v))

    if getattr(tokenizer, "chat_template", None):  # the template's own end-of-turn token first
        from redi.chat_template import end_of_turn_id

        add(end_of_turn_id(tokenizer))
    vocab = tokenizer.get_vocab()
    for tok in STOP_TOKENS:
        if tok in vocab:
            add(vocab[tok])
    add(tokenizer.eos_token_id)
    if model_path is not None and Path(model_path, "generation_config.json").is_file():
        try:
            from transformers import GenerationConfig

            add(GenerationConfig.from_pretrained(model_path).eos_token_id)
        except Exception as exc:  # noqa: BLE001 - a broken generation config is not fatal
            log.warning("could not read generation_config.json of %s: %s", model_path, exc)
    if not ids:
        raise ValueError("no stop token: the tokenizer has neither <|im_end|> nor an EOS token")
    return ids


def finish(
    token_ids: Sequence[int], stop_ids: Sequence[int], tokenizer, finish_reason: str | None = None
) -> tuple[str, int, str]:
    """(text, length, finish_reason) from generated ids: cut at the first stop token.

    ``finish_reason`` from an engine (vLLM) is trusted when given; otherwise a row without a stop
    token ran out of tokens.
    """
    stops = set(stop_ids)
    ids = list(token_ids)
    cut = next((k for k, t in enumerate(ids) if t in stops), None)
    if cut is not None:
        ids = ids[:cut]
        reason = "stop"
    else:
        reason = "length"
    if finish_reason is not None:
        reason = "stop" if finish_reason == "stop" else "length"
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return text, len(ids), reason


class Backend(ABC):
    """A generation backend (one per file in :mod:`redi.eval.backends`, registered by name).

    Constructor: ``(model_path, tokenizer=None, *, batch_size, trust_remote_code, **options)``.
    """

    name: str = ""
    # evaluation.group_per_run: auto takes this: one process per run scoring all its
    # checkpoints pays off where starting a job costs more than an evaluation (CPU); on GPUs
    # one job per checkpoint spreads a run's evaluations over the cluster.
    group_per_run: bool = False

    @abstractmethod
    def generate(
        self, jobs: Sequence[GenerationJob], sampling: SamplingConfig, on_batch: OnBatch
    ) -> None:
        """Generate every sample of every job, calling ``on_batch`` after each batch."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# ----------------------------------------------------------------------------- budget


def model_context_length(model_path: str | os.PathLike) -> int | None:
    """``max_position_embeddings`` of a saved model (``config.json``), or None if absent."""
    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    value = data.get("max_position_embeddings") or (data.get("text_config") or {}).get("max_position_embeddings")
    return int(value) if value else None


def generation_budget(
    prompt_lengths: Sequence[int], max_new_tokens: int, max_model_len: int | None, where: str = "evaluation"
) -> dict:
    """Check that every prompt gets its full ``max_new_tokens`` within ``max_model_len``.

    vLLM does not refuse ``max_tokens > max_model_len - prompt`` (it silently cuts the sample at
    ``max_model_len``), and a model keeps its own context length (4,096 for Qwen2.5-Math-1.5B)
    unless told otherwise: the recorded ``max_new_tokens`` would then not be what the samples had
   . Returns the budget actually given, for the metrics.

    Raises:
        ValueError: naming ``where``, the longest prompt, the budget and the context.
    """
    longest = max((int(n) for n in prompt_lengths), default=0)
    if max_model_len is not None and longest + int(max_new_tokens) > int(max_model_len):
        raise ValueError(
            f"{where}: the longest prompt ({longest} tokens) + max_new_tokens ({int(max_new_tokens)}) "
            f"exceeds the context max_model_len ({int(max_model_len)}); the samples would be cut short "
            "silently. Lower evaluation.sampling.max_new_tokens (or the reference model's "
            "max_new_tokens), or raise max_model_len if the model's positions allow it."
        )
    return {
        "max_new_tokens": int(max_new_tokens),
        "max_model_len": None if max_model_len is None else int(max_model_len),
        "longest_prompt_tokens": longest,
    }


__all__ = [
    "Backend",
    "FINISH_REASONS",
    "Generation",
    "GenerationJob",
    "OnBatch",
    "STOP_TOKENS",
    "SamplingConfig",
    "contiguous_runs",
    "finish",
    "generation_budget",
    "model_context_length",
    "request_seed",
    "stable_int",
    "stop_token_ids",
]
