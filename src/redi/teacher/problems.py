"""Which problems the teacher samples: ``results/teacher/problems.json``.

The problem set is the configured corpus (its canonical table, so every layout the data stage
reads works, and its rejected rows are already counted there) or a file named by
``teacher.problems``: a benchmark JSON list of ``{problem, answer}`` or any corpus layout the
loaders read (:func:`redi.data.sources.load_corpus`: parquet/jsonl of ``problem, answer``, the
Open-R1 layouts, a ``save_to_disk`` dataset). Problems are keyed by :func:`redi.ids.problem_id`;
a problem text seen twice is sampled once (the first row wins; counted).

``only_missing`` keeps the problems whose corpus row cannot give a pair yet under curation's own
rule (:func:`redi.data.curate.choose_pair` on the corpus' labels and truncation flags): no
correct or no usable incorrect trace, or no corpus row at all. The corpus' labels are its
Math-Verify list (``label_mv``) for the rules ``mv`` and ``recomputed`` (recomputed labels exist
only after verification, which the mixed corpus goes through afterwards); a row without that
list counts as missing.

Output: a JSON list in the benchmark format (``redi.eval.benchmarks.load_benchmark`` reads it)
with, per problem, ``problem_id``, ``source``, ``problem_is_valid`` (``null`` where the set has
no such field) and ``corpus_row`` (the corpus row the new traces join, or ``null``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from redi.files import write_json_atomic
from redi.ids import problem_id
from redi.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


def read_problem_set(path) -> list[dict]:
    """``{problem, answer, source, problem_is_valid}`` per row of a problem file.

    Raises:
        ValueError: the file holds no rows, or a row is unreadable or lacks a problem text or an
            answer (the message names the file and the row).
    """
    path = Path(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of {{problem, answer}}")
    else:
        from redi.data.sources import Unreadable, load_corpus

        rows = [r for batch in load_corpus(path).iter_records(batch_size=4096) for r in batch]
        for i, row in enumerate(rows):
            if isinstance(row, Unreadable):
                raise ValueError(f"{path}: row {i} is unreadable ({row.reason}: {row.detail})")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i} is not an object")
        problem, answer = row.get("problem"), row.get("answer")
        if not isinstance(problem, str) or not problem.strip():
            raise ValueError(f"{path}: row {i} has no problem text (field 'problem')")
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise ValueError(f"{path}: row {i} has no answer (field 'answer')")
        validity = row.get("problem_is_valid")
        out.append(
            {
                "problem": problem,
                "answer": answer,
                "source": str(row.get("source") or "teacher"),
                "problem_is_valid": None if validity is None else str(validity),
            }
        )
    if not out:
        raise ValueError(f"{path}: the problem set is empty")
    return out


def _needs_traces(row: dict | None, truncated_as_rejected: bool) -> bool:
    """No pair can be chosen from this corpus row yet (curation's own choice, on label_mv)."""
    from redi.data.curate import choose_pair, positives, truncated

    if row is None or row.get("label_mv") is None:
        return True
    n = len(row["generations"])
    i_pos, i_neg = choose_pair(positives(row, "mv"), truncated(row, n), truncated_as_rejected)
    return i_pos is None or i_neg is None


def select_problems(
    out_path,
    cfg: TeacherConfig | dict,
    *,
    canonical_path=None,
    problems_path=None,
    truncated_as_rejected: bool = False,
) -> dict:
    """Write the problems to sample (module doc) to ``out_path``; return the selection's counts.

    ``canonical_path``: the configured corpus' canonical table (needed when the problems are the
    corpus', with ``only_missing`` or to mix); ``problems_path``: the problem file otherwise.
    ``truncated_as_rejected``: curation's key of that name (may a truncated trace be rejected?).
    """
    cfg = TeacherConfig.from_dict(cfg)
    corpus: dict[str, dict] = {}  # problem id -> its first corpus row
    rows: list[dict] = []
    if canonical_path is not None:
        from redi.data.normalize import canonical_rows

        rows = canonical_rows(canonical_path)
        for row in rows:
            corpus.setdefault(row["problem_id"], row)
    if cfg.from_corpus:
        items = [{k: r[k] for k in ("problem", "answer", "source", "problem_is_valid")} for r in rows]
        if not items:
            raise ValueError(f"{canonical_path}: the corpus has no problems to sample (every row rejected?)")
    else:
        items = read_problem_set(problems_path)
    counts: Counter = Counter(problem_rows=len(items))
    chosen, seen = [], set()
    for item in items:
        pid = problem_id(item["problem"])
        if pid in seen:
            counts["duplicate_problems"] += 1
            continue
        seen.add(pid)
        row = corpus.get(pid) if cfg.keep_corpus_traces or cfg.only_missing else None
        if cfg.only_missing and not _needs_traces(row, truncated_as_rejected):
            counts["skipped_have_pair"] += 1
            continue
        chosen.append({**item, "problem_id": pid, "corpus_row": None if row is None else row["row_index"]})
    if cfg.limit is not None and len(chosen) > cfg.limit:
        counts["over_limit"] = len(chosen) - int(cfg.limit)
        chosen = chosen[: int(cfg.limit)]
    if not chosen:
        raise ValueError(f"teacher: no problem left to sample ({dict(counts)}); see teacher.only_missing/limit")
    counts["selected"] = len(chosen)
    counts["samples"] = len(chosen) * cfg.n_samples
    write_json_atomic(out_path, chosen, indent=1, ensure_ascii=False)
    log.info("teacher problems: %s", dict(counts))
    return dict(counts)


__all__ = ["read_problem_set", "select_problems"]
