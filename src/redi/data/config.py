"""Curation's configuration: every knob, its default and what it does (``config.curation``).

The workflow passes ``config["curation"]`` as a plain dict; :meth:`CurationConfig.from_dict`
fills defaults and rejects unknown keys naming the key, so a typo fails the job instead of
curating with a default. Defaults are the paper's rules (:mod:`redi.paper`, "Data curation");
``config/schema.yaml`` repeats them for Snakemake and ``tests/test_data_config.py`` checks that
the two agree. The same pattern as training's ``RunConfig``.
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
#: label_rule -> the label list of the *second* verifier, whose disagreement with the rule is
#: counted (and, with ``drop_disputed``, dropped): our own bounded Math-Verify re-verification,
#: or the corpus' Math-Verify label where the rule already is ours.
DISPUTE_VERIFIER: dict[str, str] = {
    "llama_and_mv": "label_recomputed",
    "llama_or_mv": "label_recomputed",
    "mv": "label_recomputed",
    "recomputed": "label_mv",
}

#: ``pairs`` modes: how many (chosen, rejected) pairs a problem gives (``redi.data.curate.pair_indices``).
PAIR_MODES = ("first", "all", "groups")

#: keys renamed so that one concept has one name (training's length names) -> new name
RENAMED = {"max_prompt_tokens": "max_prompt_length", "max_response_tokens": "max_response_length"}


@dataclass
class DecontaminationConfig:
    """Drop problems sharing a normalised word n-gram with a benchmark problem (Open-R1)."""

    enabled: bool = field(
        default=True,
        metadata={"help": "Drop problems sharing a normalised word n-gram with a problem of the benchmarks "
                          "`decontaminate.benchmarks`."},
    )
    ngram: int = field(
        default=paper.CURATION_DECONTAMINATION_NGRAM,
        metadata={"help": "Words per n-gram (Open-R1: 8)."},
    )
    benchmarks: list[str] = field(
        default_factory=list,
        metadata={"help": "Benchmark names (keys of `evaluation.benchmarks`) to decontaminate against; the "
                          "workflow gives curation their files."},
    )


@dataclass
class ExpectedCounts:
    """Counts printed beside ours in the curation report (``None`` = not compared).

    The paper's own (77,629 / 53,175, :data:`redi.paper.CURATION_EXPECTED`) are always shown in
    the report's "paper" column; set these to compare a run against them (config/paper.yaml).
    """

    sft: int | None = field(
        default=None,
        metadata={"help": "Expected D_SFT size after `select_sft`, printed beside ours (paper: 77629)."},
    )
    pairs_before_length_filter: int | None = field(
        default=None,
        metadata={"help": "Expected D_Pref size after `select_pref`, before the length filter (paper: 53175)."},
    )


@dataclass
class CurationConfig:
    """Curation of the verified corpus into D_SFT and D_Pref (``redi.data.curate``).

    Each field's ``help`` is the one home of its documentation: ``python -m redi.config_docs``
    writes it into ``config/schema.yaml``'s descriptions and ``config/README.md``'s table.
    """

    valid_only: bool = field(
        default=paper.CURATION_VALID_ONLY,
        metadata={"help": "Keep rows with `problem_is_valid == \"yes\"` (stripped, case-insensitive). Where the "
                          "corpus has the column a null is dropped (`problem_is_valid null`), as the paper's rule "
                          "drops it."},
    )
    keep_unknown_validity: bool = field(
        default=True,
        metadata={"help": "Keep rows of corpora without a `problem_is_valid` column (the 220k flat schema, "
                          "MV-only), counted apart."},
    )
    exclude_sources: list[str] = field(
        default_factory=lambda: list(paper.CURATION_EXCLUDE_SOURCES),
        metadata={"help": "Sources dropped (paper: `cn_k12`)."},
    )
    label_rule: str = field(
        default=paper.CURATION_LABEL_RULE,
        metadata={"help": "When a generation is positive: `llama_and_mv` (judge AND Math-Verify re-parsed, the "
                          "paper), `llama_or_mv`, `mv`, or `recomputed` (our own Math-Verify label). A row lacking "
                          "a label list the rule reads is dropped (the lists per corpus schema: config/README.md)."},
    )
    truncated_as_rejected: bool = field(
        default=False,
        metadata={"help": "A truncated trace (`is_reasoning_complete` false or `finish_reasons` \"length\", 220k) "
                          "is never a positive; with `true` it may be the rejected trace of a pair. Counted at "
                          "`select_sft` / `select_pref`."},
    )
    drop_disputed: bool = field(
        default=False,
        metadata={"help": "Disputed examples: a pair whose rejected trace a second verifier calls correct (our "
                          "bounded Math-Verify re-verification, `label_recomputed`; under `label_rule: recomputed` "
                          "the corpus' `label_mv`), and an SFT row whose trace it calls wrong. Under the paper's "
                          "rule (judge AND Math-Verify) a trace the judge alone calls wrong becomes a rejected "
                          "trace even when its answer matches the gold. Counted at `disputed_sft` / "
                          "`disputed_pref` either way; `true` drops them (one reject line each), `false` keeps "
                          "them (the paper)."},
    )
    shuffle_seed: int = field(
        default=paper.CURATION_SHUFFLE_SEED,
        metadata={"help": "Seed of the shuffle before picking the first positive / negative; the original row "
                          "index is kept."},
    )
    max_prompt_length: int = field(
        default=paper.CURATION_MAX_PROMPT_LENGTH,
        metadata={"help": "Length filter: prompt tokens (the student's tokenizer and chat template, generation "
                          "prompt included); training's key of the same name truncates. The old "
                          "`max_prompt_tokens` stops with a message naming this key."},
    )
    max_response_length: int = field(
        default=paper.CURATION_MAX_RESPONSE_LENGTH,
        metadata={"help": "Length filter: tokens of each response (chosen and rejected; the SFT response with "
                          "`length_filter_sft`). The old `max_response_tokens` stops with a message naming this key."},
    )
    length_filter_sft: bool = field(
        default=False,
        metadata={"help": "Also length-filter the SFT set (the paper filters the pairs only)."},
    )
    pairs: str = field(
        default="first",
        metadata={"help": "Pairs per problem in D_Pref: `first` (the paper: first positive x first non-positive), "
                          "`all` (every positive x non-positive combination, in the deterministic order of "
                          "`redi.data.curate.pair_indices`, capped by `max_pairs_per_problem`) or `groups` (all of "
                          "them, never capped, each row carrying its problem's group counts for group objectives)."},
    )
    max_pairs_per_problem: int | None = field(
        default=None,
        metadata={"help": "`pairs: all`: at most this many pairs of one problem (the first ones in that order; 1 "
                          "gives `first`'s pair); null = no cap."},
    )
    decontaminate: DecontaminationConfig = field(
        default_factory=DecontaminationConfig,
        metadata={"help": "Decontamination against benchmark problems (Open-R1's n-gram rule)."},
    )
    expected: ExpectedCounts = field(
        default_factory=ExpectedCounts,
        metadata={"help": "Counts printed beside ours in the curation report (null = not compared)."},
    )

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


__all__ = [
    "CurationConfig",
    "DecontaminationConfig",
    "DISPUTE_VERIFIER",
    "ExpectedCounts",
    "LABEL_RULES",
    "PAIR_MODES",
    "RENAMED",
    "RULE_LISTS",
]
