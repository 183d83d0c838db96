"""The sampled traces as a corpus in the Open-R1 Raw layout, mixed with the corpus' own.

``build_corpus`` writes ``results/teacher/corpus.parquet`` (:func:`redi.data.schemas.raw_schema`),
which the data stage then normalises, verifies and curates like any corpus:

* ``generations`` are the corpus row's own traces (with ``keep_corpus_traces``) followed by the
  teacher's, in sample order; ``generations_count`` their number;
* ``correctness.math_verify_answer`` / ``math_verify_reparsed_answer``: the corpus' labels, then
  the teacher traces' Math-Verify labels as evaluation scored them (:mod:`redi.verify`, gold
  first, bounded); ``correctness.llama_verification``: the corpus' Llama-judge labels, then null
  per teacher trace (there is no judge: curation rules that read it are refused for a teacher
  config, ``redi.plan``);
* ``finish_reasons``: "stop" or "length" per teacher trace; ``is_reasoning_complete`` false for a
  trace cut by the generation budget (``finish_reasons`` "length"), so a truncated trace is never
  a positive (``redi.data.curate.truncated``);
* ``problem_is_valid``: the corpus' value; for a problem set without that field,
  ``unknown_validity`` (``"yes"`` when curation keeps rows of unknown validity, else null);
* ``synthetic``: false for every row (the Raw column; the traces are real samples).

A corpus row whose label list is null keeps it null (its traces' labels are unknown); its new
traces are then labelled only by the verify stage (``label_rule: recomputed``).

``origins.json`` says, per row of the written corpus (its position, which normalisation keeps as
``row_index``), how many generations came from the corpus and how many from the teacher; the
curation report counts what each source contributed from it. ``teacher_report.json`` has the
stage's counts (problems, problems skipped because prompt + budget exceeds the teacher's context,
samples, correct, incorrect, truncated) and costs (tokens, wall time, GPU-hours, throughput)
summed over the shards' ``cost.json``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from redi.files import write_json_atomic, write_parquet_atomic
from redi.teacher.sample import COST

log = logging.getLogger(__name__)

ORIGINS = ("corpus", "teacher")


def read_samples(shard_dirs) -> dict[str, list[dict]]:
    """Teacher samples by problem id, in sample order, from the shards' ``samples.parquet``."""
    import pandas as pd

    by_problem: dict[str, list[dict]] = defaultdict(list)
    for shard in shard_dirs:
        table = pd.read_parquet(Path(shard) / "samples.parquet")
        for rec in table.sort_values(["problem_id", "sample_index"]).to_dict("records"):
            by_problem[rec["problem_id"]].append(rec)
    return by_problem


def _labels(corpus_list, n_corpus: int, teacher_values: list):
    """A corpus label list followed by the teacher's labels (a null corpus list stays null: its
    traces' labels are unknown and must not read as false)."""
    if n_corpus and corpus_list is None:
        return None
    return list(corpus_list or []) + teacher_values


def _flags(corpus_list, n_corpus: int, teacher_values: list):
    """A per-generation flag list (finish reason, completeness) followed by the teacher's; a
    corpus without it gets null entries for its own traces (unknown, as normalisation reads)."""
    if not teacher_values:
        return corpus_list
    return list(corpus_list if corpus_list is not None else [None] * n_corpus) + teacher_values


def _answer_text(answer) -> str:
    """The Raw ``answer`` string: a benchmark's number or list of alternatives becomes its first
    gold (:func:`redi.eval.benchmarks.normalise_answer`), the answer the data stage verifies."""
    if isinstance(answer, str):
        return answer
    from redi.eval.benchmarks import normalise_answer

    return normalise_answer(answer)[0]


def _raw_row(base: dict, samples: list[dict], validity) -> dict:
    """One Raw-layout row: ``base`` (a canonical row, or a problem with no traces yet) plus the
    teacher ``samples``."""
    n = len(base.get("generations") or [])
    finish = [str(s["finish_reason"]) for s in samples]
    mv = _labels(base.get("label_mv"), n, [bool(s["correct"]) for s in samples])
    return {
        "problem": base["problem"],
        "answer": _answer_text(base["answer"]),
        "problem_is_valid": validity,
        "source": base["source"],
        "synthetic": False,
        "generations": list(base.get("generations") or []) + [str(s["text"]) for s in samples],
        "generations_count": n + len(samples),
        "correctness": {
            # no judge for the new traces: null entries (a row of teacher traces only: no list)
            "llama_verification": _labels(base.get("label_llama"), n, [None] * len(samples)) if n else None,
            "math_verify_answer": mv,
            "math_verify_reparsed_answer": mv,
        },
        "finish_reasons": _flags(base.get("finish_reasons"), n, finish),
        "is_reasoning_complete": _flags(base.get("is_reasoning_complete"), n, [f != "length" for f in finish]),
    }


def build_corpus(problems_path, shard_dirs, out_corpus, out_origins, out_report, *, canonical_path=None,
                 keep_corpus_traces: bool = True, unknown_validity: str | None = "yes") -> dict:  # fmt: skip
    """Write the mixed corpus, its origins and the teacher report (module doc); return the report.

    ``canonical_path``: the configured corpus' canonical table (its rows are kept, with the new
    traces of their problem appended, when ``keep_corpus_traces``).

    Raises:
        RuntimeError: a selected problem has no samples in any shard (a shard output is stale).
    """
    import pyarrow as pa

    from redi.data.io import read_kv_meta
    from redi.data.schemas import META_NORMALIZE, raw_schema

    problems = json.loads(Path(problems_path).read_text(encoding="utf-8"))
    samples = read_samples(shard_dirs)
    # problems whose prompt + budget exceeds the teacher's context have no samples (counted in the report)
    skipped = {s["problem_id"] for d in shard_dirs for s in json.loads((Path(d) / COST).read_text())
               .get("skipped_problems", [])}  # fmt: skip
    missing = [p["problem_id"] for p in problems if not samples.get(p["problem_id"]) and p["problem_id"] not in skipped]
    if missing:
        raise RuntimeError(f"no teacher samples for {len(missing)} selected problem(s), e.g. {missing[0]}; "
                           "rerun the teacher_sample jobs")  # fmt: skip
    by_row = {p["corpus_row"]: p for p in problems if p["corpus_row"] is not None}
    rows, origins = [], {"corpus": [], "teacher": []}

    def add(row: dict, n_corpus: int, n_teacher: int) -> None:
        rows.append(row)
        origins["corpus"].append(n_corpus)
        origins["teacher"].append(n_teacher)

    base_has_validity = True
    if canonical_path is not None and keep_corpus_traces:
        from redi.data.normalize import canonical_rows

        base_has_validity = (read_kv_meta(canonical_path, META_NORMALIZE) or {}).get("has_problem_is_valid", True)
        for row in canonical_rows(canonical_path):
            p = by_row.pop(row["row_index"], None)
            new = samples[p["problem_id"]] if p else []
            validity = row["problem_is_valid"] if base_has_validity else unknown_validity
            add(_raw_row(row, new, validity), len(row["generations"]), len(new))
    for p in problems:
        if keep_corpus_traces and canonical_path is not None and p["corpus_row"] is not None:
            continue  # joined its corpus row above
        new = samples[p["problem_id"]]
        if not new:  # skipped for its length, and no corpus row to keep
            continue
        validity = p["problem_is_valid"] if p["problem_is_valid"] is not None else unknown_validity
        add(_raw_row({**p, "generations": []}, new, validity), 0, len(new))
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=raw_schema()), out_corpus)
    write_json_atomic(out_origins, {"origins": list(ORIGINS), "generations": origins}, indent=None)
    report = teacher_report(problems, samples, shard_dirs, rows, origins)
    write_json_atomic(out_report, report, indent=1)
    log.info("teacher corpus: %s", {k: v for k, v in report.items() if k != "shards"})
    return report


def teacher_report(problems: list[dict], samples: dict, shard_dirs, rows: list, origins: dict) -> dict:
    """Counts and costs of the teacher stage (module doc)."""
    flat = [s for p in problems for s in samples[p["problem_id"]]]
    cut = sum(str(s["finish_reason"]) == "length" for s in flat)
    correct = sum(bool(s["correct"]) for s in flat)
    costs = [json.loads((Path(d) / COST).read_text()) for d in shard_dirs]
    tokens = sum(c["generated_tokens"] for c in costs)
    gen_s = sum(c["generation_seconds"] for c in costs)
    return {
        "problems": len(problems),
        "skipped_over_budget": sum(c.get("skipped_over_budget", 0) for c in costs),
        "samples": len(flat),
        "correct": correct,
        "incorrect": len(flat) - correct,
        "truncated": cut,
        "problems_with_correct": sum(any(s["correct"] for s in samples[p["problem_id"]]) for p in problems),
        "corpus_rows": sum(1 for n in origins["corpus"] if n),
        "rows": len(rows),
        "rows_with_new_traces": sum(1 for n in origins["teacher"] if n),
        "corpus_generations": sum(origins["corpus"]),
        "teacher_generations": sum(origins["teacher"]),
        "generated_tokens": tokens,
        "wall_seconds": sum(c["wall_seconds"] for c in costs),
        "generation_seconds": gen_s,
        "gpu_hours": sum(c["gpu_hours"] for c in costs),
        "samples_per_second": len(flat) / gen_s if gen_s > 0 else None,
        "tokens_per_second": tokens / gen_s if gen_s > 0 else None,
        "shards": costs,
    }


def read_origins(path) -> dict[int, tuple[int, int]]:
    """``row_index -> (corpus generations, teacher generations)`` from ``origins.json``."""
    data = json.loads(Path(path).read_text())
    gens = data["generations"]
    return {i: (c, t) for i, (c, t) in enumerate(zip(gens["corpus"], gens["teacher"]))}


__all__ = ["ORIGINS", "build_corpus", "read_origins", "read_samples", "teacher_report"]
