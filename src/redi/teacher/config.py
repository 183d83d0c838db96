"""The teacher source's configuration (``config.teacher``): every knob, its default and what it does.

Same pattern as curation's :class:`redi.data.config.CurationConfig`:
:meth:`TeacherConfig.from_dict` fills defaults and rejects unknown keys naming the key;
``config/schema.yaml`` repeats the defaults and ``tests/test_teacher.py`` checks the two agree.
How a trace is generated is not re-declared here: sampling, backend, batch size, verifier
bounds and backend options are evaluation's (:class:`redi.eval.config.EvalConfig`), taken from
the ``evaluation`` section and overridden key by key by ``teacher.generation``
(:meth:`TeacherConfig.eval_config`). Issue 16.

Nothing heavy is imported here: ``rules/teacher.smk`` reads it at parse time (only snakemake
and PyYAML are installed there, ``tests/test_cluster.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from redi.eval.config import _check_keys, _check_names  # one home of "unknown key, naming it"

#: ``teacher.problems`` value meaning "the problems of the configured corpus"
CORPUS = "corpus"
#: model kinds: tiny = the pipeline's tiny Qwen2 built like the student (a CPU demo teacher);
#: pretrained = a hub name or local copy, loaded like a reference model
MODEL_KINDS = ("tiny", "pretrained")
#: curation label rules the mixed corpus can serve: teacher traces have no Llama-judge label
TEACHER_LABEL_RULES = ("mv", "recomputed")


@dataclass
class TeacherModel:
    """Which model samples the traces (``teacher.model``)."""

    kind: str = "pretrained"  # one of MODEL_KINDS
    hub_name: str | None = None  # e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (kind pretrained)
    revision: str | None = None  # hub revision; pin a commit for reproducibility
    local_path: str | None = None  # a local copy (wins over hub_name; offline clusters)
    trust_remote_code: bool = False  # let transformers run the model's own code (off: safety)


@dataclass
class TeacherConfig:
    """Sampling new teacher traces for a problem set (``redi.teacher``)."""

    enabled: bool = False  # add the teacher stage to the DAG (the corpus then flows through it)
    problems: str = CORPUS  # "corpus" = the configured corpus' problems; else a path: a benchmark
    #   JSON list of {problem, answer}, or any corpus layout the loaders read (parquet/jsonl of
    #   problem, answer; Raw, 220k, MV-only; a save_to_disk dataset)
    keep_corpus_traces: bool = True  # mix: the corpus' own traces stay and the new ones join the
    #   row of the same problem (false: the curated corpus is the new traces only)
    only_missing: bool = False  # sample only problems whose corpus row has no correct or no
    #   incorrect trace yet (the corpus' own labels, label_mv), where new pairs come from
    limit: int | None = None  # sample at most the first N selected problems (None = all)
    n_samples: int = 4  # traces sampled per problem
    shards: int = 1  # sampling jobs (each resumes from its own journal after preemption)
    model: TeacherModel = field(default_factory=TeacherModel)
    generation: dict[str, Any] = field(default_factory=dict)  # EvalConfig keys overriding the
    #   evaluation section's (backend, sampling, batch_size, verify_timeout_s, vllm, transformers)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | TeacherConfig | None) -> TeacherConfig:
        """Defaults filled, unknown keys rejected (``ValueError`` naming the key). ``None``
        values mean "the default" (YAML's empty key), except ``limit`` (default ``None``)."""
        if isinstance(cfg, TeacherConfig):
            return cfg
        values = dict(cfg or {})
        _check_keys(values, cls, "teacher")
        model = values.pop("model", None) or {}
        if not isinstance(model, TeacherModel):
            _check_keys(model, TeacherModel, "teacher.model")
            model = TeacherModel(**{k: v for k, v in model.items() if v is not None})
        out = cls(model=model, **{k: v for k, v in values.items() if v is not None})
        for key in ("n_samples", "shards"):
            setattr(out, key, int(getattr(out, key)))
            if getattr(out, key) < 1:
                raise ValueError(f"teacher key {key!r} must be >= 1, got {getattr(out, key)}")
        if out.limit is not None and int(out.limit) < 1:
            raise ValueError(f"teacher key 'limit' must be >= 1 or null, got {out.limit}")
        if out.model.kind not in MODEL_KINDS:
            raise ValueError(f"teacher key 'model.kind' must be one of {MODEL_KINDS}, got {out.model.kind!r}")
        if out.enabled and out.model.kind == "pretrained" and not (out.model.hub_name or out.model.local_path):
            raise ValueError("teacher key 'model': kind 'pretrained' needs 'hub_name' or 'local_path'")
        if not isinstance(out.generation, dict):
            raise TypeError("teacher.generation must be a mapping of evaluation keys")
        # n_samples and limit are the teacher's own keys, not generation settings
        _check_names(out.generation, _eval_fields() - {"n_samples", "limit"}, "teacher.generation")
        return out

    @property
    def from_corpus(self) -> bool:
        return self.problems == CORPUS

    @property
    def needs_corpus(self) -> bool:
        """Does the stage read the configured corpus (its problems, traces, labels or, for the
        tiny teacher, its text to train a tokenizer on)?"""
        return self.from_corpus or self.keep_corpus_traces or self.only_missing or self.model.kind == "tiny"

    def eval_config(self, evaluation: dict[str, Any]) -> dict[str, Any]:
        """The :class:`~redi.eval.config.EvalConfig` dict of a sampling job: the ``evaluation``
        section's per-job keys (its workflow keys, benchmarks and schedules, dropped), then
        ``generation`` on top (``sampling`` and the backend blocks merged key by key), with
        ``n_samples`` and the teacher model's ``trust_remote_code``."""
        from redi.eval.config import job_settings

        out = job_settings(evaluation)
        for key, value in self.generation.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return {**out, "n_samples": self.n_samples, "limit": None, "trust_remote_code": self.model.trust_remote_code}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _eval_fields() -> set[str]:
    from redi.eval.config import EvalConfig

    return {f.name for f in dataclasses.fields(EvalConfig)}


__all__ = ["CORPUS", "MODEL_KINDS", "TEACHER_LABEL_RULES", "TeacherConfig", "TeacherModel"]
