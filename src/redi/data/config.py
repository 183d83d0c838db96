"""Curation's configuration: every knob, its default and what it does (``config.curation``).

The workflow passes ``config["curation"]`` as a plain dict; :meth:`CurationConfig.from_dict`
fills defaults and rejects unknown keys naming the key, so a typo fails the job instead of
curating with a default. Defaults are the paper's rules (:mod:`redi.paper`, "Data curation");
``config/schema.yaml`` repeats them for Snakemake and ``tests/test_data_config.py`` checks that
the two agree. The same pattern as training's ``RunConfig`` (issue 14).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from redi import paper

#: label_rule -> the canonical label lists it reads (the only ones a row must have).
RULE_LISTS: dict[str, tuple[str, ...]] = {
    "llama_and_mv": ("label_llama", "label_mv"),
    "llama_or_mv": ("label_llama", "label_mv"),
    "mv": ("label_mv",),
    "recomputed": ("label_recomputed",),
}
LABEL_RULES = tuple(RULE_LISTS)

#: ``pairs`` modes: how many (chosen, rejected) pairs a problem gives (``redi.data.curate.pair_indices``).
PAIR_MODES = ("first", "all", "groups")

#: keys renamed by issue 14 (one name per concept: training's length names) -> new name
RENAMED = {"max_prompt_tokens": "max_prompt_length", "max_response_tokens": "max_response_length"}


@dataclass
class DecontaminationConfig:
    """Drop problems sharing a normalised word n-gram with a benchmark problem (Open-R1)."""

    enabled: bool = True  # run the step at all
    ngram: int = paper.CURATION_DECONTAMINATION_NGRAM  # words per n-gram (Open-R1: 8)
    benchmarks: list[str] = field(default_factory=list)  # names (keys of evaluation.benchmarks);
    #   the workflow resolves them into the files curate() reads


@dataclass
class ExpectedCounts:
    """Counts printed beside ours in the curation report (``None`` = not compared).

    The paper's own (77,629 / 53,175, :data:`redi.paper.CURATION_EXPECTED`) are always shown in
    the report's "paper" column; set these to compare a run against them (config/paper.yaml).
    """

    sft: int | None = None  # D_SFT size after select_sft
    pairs_before_length_filter: int | None = None  # D_Pref size after select_pref


@dataclass
class CurationConfig:
    """Curation of the verified corpus into D_SFT and D_Pref (``redi.data.curate``)."""

    valid_only: bool = paper.CURATION_VALID_ONLY  # keep rows with problem_is_valid == "yes"
    #   (stripped, case-insensitive); a null where the corpus has the column is dropped
    keep_unknown_validity: bool = True  # keep rows of corpora without a problem_is_valid column
    #   (220k flat / MV-only), counted apart
    exclude_sources: list[str] = field(default_factory=lambda: list(paper.CURATION_EXCLUDE_SOURCES))
    #   sources dropped (paper: cn_k12)
    label_rule: str = paper.CURATION_LABEL_RULE  # when a generation is positive: one of LABEL_RULES
    truncated_as_rejected: bool = False  # may a truncated trace be a pair's rejected? (never positive)
    shuffle_seed: int = paper.CURATION_SHUFFLE_SEED  # Dataset.shuffle(seed) order before selection
    max_prompt_length: int = paper.CURATION_MAX_PROMPT_LENGTH  # length filter: prompt tokens
    #   (student's chat template, generation prompt included); same name as training's cap
    max_response_length: int = paper.CURATION_MAX_RESPONSE_LENGTH  # length filter: tokens of each
    #   response (chosen and rejected; SFT's too with length_filter_sft)
    length_filter_sft: bool = False  # also length-filter D_SFT (the paper filters pairs only)
    pairs: str = "first"  # D_Pref pairs per problem: "first" (the paper: first positive x first
    #   non-positive), "all" (every positive x non-positive combination, in the deterministic
    #   order of redi.data.curate.pair_indices, capped by max_pairs_per_problem) or "groups" (all
    #   of them, never capped, each row carrying its problem's group counts for group objectives)
    max_pairs_per_problem: int | None = None  # pairs="all": at most this many pairs of one
    #   problem (the first ones in that order; 1 gives "first"'s pair); null = no cap
    decontaminate: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    expected: ExpectedCounts = field(default_factory=ExpectedCounts)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | CurationConfig | None) -> CurationConfig:
        """Defaults filled, unknown keys rejected (``ValueError`` naming the key). A ``None``
        value means "the default", as YAML gives it for an empty key."""
        if isinstance(cfg, CurationConfig):
            return cfg
        values = dict(cfg or {})
        _check_keys(values, cls, "curation")
        nested = {"decontaminate": DecontaminationConfig, "expected": ExpectedCounts}
        for key, kind in nested.items():
            sub = values.pop(key, None) or {}
            if not isinstance(sub, kind):
                _check_keys(sub, kind, f"curation.{key}")
                sub = kind(**sub)
            values[key] = sub
        out = cls(**{k: v for k, v in values.items() if v is not None})
        if out.pairs not in PAIR_MODES:
            raise ValueError(f"curation key 'pairs' must be one of {PAIR_MODES}, got {out.pairs!r}")
        if out.pairs == "groups" and out.max_pairs_per_problem is not None:
            raise ValueError(
                "curation key 'max_pairs_per_problem' must be null with pairs 'groups' (a group is all its pairs)"
            )
        if out.max_pairs_per_problem is not None:
            out.max_pairs_per_problem = int(out.max_pairs_per_problem)
            if out.max_pairs_per_problem < 1:
                raise ValueError(
                    f"curation key 'max_pairs_per_problem' must be >= 1 or null, got {out.max_pairs_per_problem}"
                )
        if out.label_rule not in LABEL_RULES:
            raise ValueError(f"curation key 'label_rule' must be one of {LABEL_RULES}, got {out.label_rule!r}")
        for key in ("max_prompt_length", "max_response_length", "shuffle_seed"):
            setattr(out, key, int(getattr(out, key)))
        out.decontaminate.ngram = int(out.decontaminate.ngram)
        if out.decontaminate.ngram < 1 or out.max_prompt_length < 1 or out.max_response_length < 1:
            raise ValueError(
                "curation keys 'decontaminate.ngram', 'max_prompt_length', 'max_response_length' must be >= 1"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the curation report's ``cfg``)."""
        return dataclasses.asdict(self)

    @property
    def rule_lists(self) -> list[str]:
        """The label lists ``label_rule`` reads."""
        return list(RULE_LISTS[self.label_rule])


def _check_keys(values: dict, kind: type, where: str) -> None:
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}
    for key in values:
        if key in known:
            continue
        if where == "curation" and key in RENAMED:
            raise ValueError(f"curation key {key!r} was renamed to {RENAMED[key]!r} (training's name for the same cap)")
        raise ValueError(f"unknown key {where}.{key}; known keys: {sorted(known)}")


__all__ = ["CurationConfig", "DecontaminationConfig", "ExpectedCounts", "LABEL_RULES", "PAIR_MODES", "RENAMED",
           "RULE_LISTS"]
