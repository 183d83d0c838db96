"""Evaluation's configuration: every knob of one evaluation job, its default and what it does.

The workflow builds one dict per job (``rules/common.smk`` ``eval_params``: the ``evaluation``
section's sampling, backend, batch and verifier settings plus the job's ``n_samples`` and
``limit``); :meth:`EvalConfig.from_dict` fills the defaults and rejects unknown keys naming the
key, so a typo fails the job instead of evaluating with a default. ``config/schema.yaml`` repeats
the defaults for Snakemake and ``tests/test_eval_config.py`` checks that the two agree. The same
pattern as training's ``RunConfig`` and curation's ``CurationConfig``.

Nothing heavy is imported here: ``redi.plan`` checks the workflow's ``evaluation`` section with
:meth:`EvalConfig.from_dict` at parse time (through :func:`job_settings`, as every job gets it),
so a value an evaluation job would reject fails before any job starts (the backends' modules
import only the standard library until an engine is built). :class:`SamplingConfig`, which every
backend consumes, is defined with the other generation types in :mod:`redi.eval.generate` and
re-exported here, so imports run one way: config -> backends -> generate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from redi.eval.backends import BACKENDS, backend_options
from redi.eval.generate import SamplingConfig

#: Keys of the workflow's ``evaluation`` section that are not one job's settings: which
#: benchmarks, the intermediate / final schedules (their ``n_samples`` and ``limit`` go to each
#: job), reference models, and the job layout (``group_per_run``).
WORKFLOW_KEYS = (
    "benchmarks", "intermediate", "final", "reference_models", "group_per_run", "base_model_force_think",
    "held_out_selection",
)


def job_settings(evaluation: dict[str, Any]) -> dict[str, Any]:
    """One evaluation job's :class:`EvalConfig` dict from the workflow's ``evaluation`` section:
    every key but :data:`WORKFLOW_KEYS` (unknown keys are kept, so ``from_dict`` names them).
    The caller adds ``n_samples`` and ``limit`` (``rules/common.smk`` ``eval_params``; the teacher
    stage's sampling jobs, ``redi.teacher.config``)."""
    return {k: v for k, v in evaluation.items() if k not in WORKFLOW_KEYS}


def held_out_split(evaluation: dict[str, Any], kind: str) -> dict[str, str]:
    """The ``split`` of an evaluation job of ``kind`` (``"intermediate"`` or ``"final"``): with
    ``evaluation.held_out_selection`` on, every benchmark named by both schedules is halved
    (:func:`redi.eval.benchmarks.split_half`): the intermediate evaluations, on which each run's
    best checkpoint is selected, see the ``"selection"`` half; the final ones, which report it,
    the ``"report"`` half. A benchmark only one schedule names is used whole. Off (the paper's
    protocol: select on MATH-500 x4, report on MATH-500 x16), ``{}``."""
    if not evaluation.get("held_out_selection"):
        return {}
    part = {"intermediate": "selection", "final": "report"}[kind]
    final = set(evaluation["final"]["benchmarks"])
    return {b: part for b in evaluation["intermediate"]["benchmarks"] if b in final}


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation (a model x a benchmark, ``redi.eval.run.evaluate``)."""

    backend: str = field(default="transformers", metadata={"help": (
        "Generation backend: `transformers` (any machine) or `vllm` (GPU, its own env; redi.eval.backends).")})
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata={"help": (
        "How each sample is drawn (the paper's evaluation sampling).")})
    n_samples: int = field(default=4, metadata={"help": (
        "Samples per problem (pass@1 is their mean; the SEM needs >= 2); the workflow passes "
        "evaluation.intermediate/final.n_samples.")})
    limit: int | None = field(default=None, metadata={"help": (
        "Evaluate only the first N problems (null = all); from evaluation.intermediate/final.limit.")})
    split: dict[str, str] = field(default_factory=dict, metadata={"help": (
        "Benchmark name -> `selection` or `report`: evaluate only that half of it (redi.eval.benchmarks.split_half, "
        "after limit); set by the workflow from evaluation.held_out_selection.")})
    batch_size: int = field(default=64, metadata={"help": (
        "Prompts per generate call, each with all its pending samples (both backends); also the resume "
        "granularity (the journal is appended once per batch).")})
    verify_timeout_s: float = field(default=5.0, metadata={"help": (
        "Math-Verify seconds per sample, a hard bound (over it the sample's status is `timeout`).")})
    verify_memory_mb: int = field(default=2048, metadata={"help": (
        "Address-space cap of each Math-Verify worker process (a sample over it is scored as an error).")})
    verify_workers: int | None = field(default=None, metadata={"help": (
        "Math-Verify processes (null = the job's threads).")})
    trust_remote_code: bool = field(default=False, metadata={"help": (
        "Let transformers run a checkpoint's own code (off: safety); the evaluated model's own setting.")})
    force_think: bool = field(default=True, metadata={"help": (
        "Open every answer with `<think>` (the paper's evaluation prompt); false: the chat template's bare "
        "generation prompt.")})
    vllm: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "vLLM engine options (keywords of redi.eval.backends.VLLMBackend): tensor_parallel_size, data_parallel, "
        "gpu_memory_utilization, max_model_len (the context, set explicitly; default the model's "
        "max_position_embeddings), python (the interpreter of a separate vLLM virtualenv when running without "
        "conda), per_request_seeds (default true: each prompt's request carries its own seed, so a sample depends "
        "only on seed, problem and sample index, also across resumes; vLLM then uses its slower per-request "
        "sampler instead of FlashInfer's; false: one engine seed and the fast sampler, reproducible only for the "
        "same job list on the same engines).")})
    transformers: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "Options of the transformers backend (keywords of redi.eval.backends.TransformersBackend): device (e.g. "
        "cuda:0), dtype (default bfloat16 on a GPU, float32 on the CPU), attn_implementation, prefill_once "
        "(default true: each prompt is prefilled once and its KV cache shared by its samples, the same tokens up "
        "to float rounding; false: model.generate prefills every sample).")})

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | EvalConfig | None) -> EvalConfig:
        """Defaults filled, unknown keys rejected (``ValueError`` naming the key, also inside
        ``sampling`` and the backend option blocks). ``None`` means "the default" (YAML's empty
        key), except for ``limit`` and ``verify_workers``, whose default is ``None``."""
        if isinstance(cfg, EvalConfig):
            return cfg
        values = dict(cfg or {})
        _check_keys(values, cls, "evaluation")
        sampling = values.pop("sampling", None) or {}
        if not isinstance(sampling, SamplingConfig):
            _check_keys(sampling, SamplingConfig, "evaluation.sampling")
            try:
                sampling = SamplingConfig(**_typed(sampling, {"temperature": float, "top_p": float,
                                                              "max_new_tokens": int, "seed": int}))  # fmt: skip
            except ValueError as error:  # its messages start with the field's name
                raise ValueError(f"key evaluation.sampling.{str(error).split()[0]}: {error}") from error
        values = {k: v for k, v in values.items() if v is not None}
        values = _typed(values, {"n_samples": int, "limit": int, "batch_size": int, "verify_timeout_s": float,
                                 "verify_memory_mb": int, "verify_workers": int})  # fmt: skip
        out = cls(sampling=sampling, **values)
        if out.backend not in BACKENDS:
            raise ValueError(f"evaluation key 'backend' must be one of {sorted(BACKENDS)}, got {out.backend!r}")
        for name in BACKENDS:
            _check_names(getattr(out, name), backend_options(name), f"evaluation.{name}")
        for key in ("n_samples", "batch_size"):
            if getattr(out, key) < 1:
                raise ValueError(f"evaluation key {key!r} must be >= 1, got {getattr(out, key)}")
        from redi.eval.benchmarks import SPLIT_PARTS

        if not isinstance(out.split, dict) or any(v not in SPLIT_PARTS for v in out.split.values()):
            raise ValueError(
                f"evaluation key 'split' must map benchmark names to one of {SPLIT_PARTS}, got {out.split!r}"
            )
        if out.limit is not None and out.limit < 1:
            raise ValueError(f"evaluation key 'limit' must be >= 1 or null, got {out.limit}")
        if out.verify_timeout_s <= 0:
            raise ValueError(f"evaluation key 'verify_timeout_s' must be > 0, got {out.verify_timeout_s}")
        return out

    @property
    def backend_options(self) -> dict[str, Any]:
        """The chosen backend's options (``vllm`` or ``transformers``), a copy."""
        return dict(getattr(self, self.backend))

    @property
    def max_model_len(self) -> int | None:
        """The context set explicitly for vLLM (``vllm.max_model_len``); None = the model's own."""
        return self.backend_options.get("max_model_len") or None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _typed(values: dict, kinds: dict) -> dict:
    """Cast the named keys (YAML may give ``5`` for a float, a CLI ``"3"``), others untouched."""
    return {k: (kinds[k](v) if k in kinds and v is not None else v) for k, v in values.items()}


def _check_keys(values: dict, kind: type, where: str) -> None:
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a mapping, got {type(values).__name__}")
    _check_names(values, {f.name for f in dataclasses.fields(kind)}, where)


def _check_names(values: dict, known: set[str], where: str) -> None:
    for key in values:
        if key not in known:
            raise ValueError(f"unknown key {where}.{key}; known keys: {sorted(known)}")


__all__ = ["WORKFLOW_KEYS", "EvalConfig", "SamplingConfig", "job_settings"]
