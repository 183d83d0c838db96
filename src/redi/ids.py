"""Identifiers shared by every stage: the design's ``problem_id`` (see docs/design.md).

One definition for curation (``redi.data``) and evaluation (``redi.eval.benchmarks``), so a
problem has the same id in the curated sets, the decontamination report and the eval records.
"""

from __future__ import annotations

import hashlib


def problem_id(problem: str) -> str:
    """sha1 of the whitespace-normalised problem text (``" ".join(text.split())``), UTF-8, first
    16 hex digits.

    ``surrogatepass`` gives an id even to text holding lone surrogates (not valid UTF-8, e.g. a
    corpus row decoded with ``surrogateescape``); such rows are rejected later, but must be
    named. For valid text the bytes, hence the ids, are those of plain ``encode("utf-8")``.
    """
    return hashlib.sha1(" ".join(problem.split()).encode("utf-8", "surrogatepass")).hexdigest()[:16]


__all__ = ["problem_id"]
