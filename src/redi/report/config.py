"""The report stage's configuration: every knob, its default and what it does.

``config.report`` (``config/schema.yaml`` states the same defaults for Snakemake;
``tests/test_report_config.py`` checks that the two agree) plus the folders the rule passes.
The Snakemake adapter and ``redi report build`` both pass a plain dict to
:meth:`ReportConfig.from_dict`, which fills defaults and rejects unknown keys by name (the
pattern of training's ``RunConfig`` and curation's ``CurationConfig``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keys of ``config.report`` (the rest are the folders the workflow or the CLI passes).
CONFIG_KEYS = ("significance_sems", "max_listed_missing")


@dataclass
class ReportConfig:
    """What the report reads, where it writes, and its two wording rules."""

    results: str = field(default="results", metadata={"help": "The results tree (train/, eval/, data/)."})
    reports: str = field(default="reports", metadata={"help": "Output folder: tables/, figures/, summary.{md,html}."})
    benchmarks: str | None = field(
        default=None, metadata={"help": ("Snakemake benchmark: files; null = benchmarks/ beside the results tree.")}
    )
    significance_sems: float = field(
        default=2.0,
        metadata={
            "help": (
                "Verdicts call two models different only when their paired per-problem difference lies more than this "
                "many paired standard errors from 0 (2 = about a 95 % interval); the headline intervals are "
                "± this many (redi.eval.metrics.paired_difference)."
            )
        },
    )
    max_listed_missing: int = field(
        default=12, metadata={"help": ("Missing results named in a table's footnote before 'and N more'.")}
    )

    def __post_init__(self) -> None:
        if not self.significance_sems > 0:
            raise ValueError(f"report.significance_sems must be > 0, got {self.significance_sems}")
        if int(self.max_listed_missing) < 1:
            raise ValueError(f"report.max_listed_missing must be >= 1, got {self.max_listed_missing}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None) -> ReportConfig:
        """Defaults for absent keys; ``ValueError`` naming any unknown key."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown report setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def benchmarks_dir(self) -> Path:
        return Path(self.benchmarks) if self.benchmarks else Path(self.results).parent / "benchmarks"
