"""Stage 2 with the student's own negatives: the stage-1 (SFT) model's incorrect samples as the
rejected traces (``training.stage2.negatives``: ``teacher`` (the paper), ``student`` or
``both``).

The DAG (``rules/student_negatives.smk``): ``train_sft`` -> :func:`write_problems` (the
problems of the curated teacher pairs, with their gold answers) -> sampling shards of the SFT
model (the teacher stage's :func:`redi.teacher.sample.sample_shard`: evaluation's prompts,
backends, generation budget, resume journal and bounded Math-Verify scoring) ->
:func:`student_pairs` -> stage 2.

:func:`student_pairs` pairs, per problem, the teacher's chosen trace (that of the problem's
first teacher pair) with the student's first incorrect sample (sample order). A sample cut by
the generation budget (finish reason ``length``) is a rejected candidate only with
``curation.truncated_as_rejected`` (as for teacher traces); a sample longer than
``curation.max_response_length`` tokens is not one (the length filter). A problem whose samples
are all correct (or unusable) gives no student pair (counted). ``both`` keeps every teacher
pair and adds the student pairs (ids ending ``-student``). Every pair row says where its
rejected trace came from (``rejected_origin``: ``teacher`` or ``student``); the report
(JSON + markdown) counts samples, pairs by origin and every drop.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from redi.files import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

NEGATIVES = ("teacher", "student", "both")


def negatives_of(run: dict) -> str:
    """A stage-2 run dict's negatives source; ``teacher`` for a run recorded before runs had
    the key (they trained on the teacher's pairs, or see ``redi.report.collect.recorded_negatives``)."""
    return run.get("negatives") or "teacher"


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_problems(pref_path, verified_path, out_path) -> list[dict]:
    """The problems of the teacher pairs in ``pref_path`` (first appearance order), each with
    its gold answer from the verified table: a benchmark-format JSON list ``{problem, answer,
    row_index, source}`` (:func:`redi.eval.benchmarks.load_benchmark` reads it). Raises
    ``ValueError`` naming the row when the verified table has no answer for it."""
    import pyarrow.parquet as pq

    rows = _read_jsonl(pref_path)
    wanted = list(dict.fromkeys(int(r["row_index"]) for r in rows))
    table = pq.read_table(verified_path, columns=["row_index", "problem", "answer", "source"]).to_pylist()
    by_row = {int(r["row_index"]): r for r in table}
    out = []
    for ri in wanted:
        row = by_row.get(ri)
        if row is None or row.get("answer") is None:
            raise ValueError(f"{verified_path}: no gold answer for row_index {ri} (a pair of {pref_path})")
        out.append({"problem": row["problem"], "answer": row["answer"], "row_index": ri, "source": row.get("source")})
    write_json_atomic(out_path, out, indent=1, ensure_ascii=False)
    log.info("student negatives: %d problems from %d teacher pairs", len(out), len(rows))
    return out


def _samples_by_row(problems_path, shard_dirs) -> dict[int, list[dict]]:
    """The shards' samples keyed by the problem's ``row_index`` (sample order)."""
    import pandas as pd

    from redi.eval.benchmarks import load_benchmark

    rows = json.loads(Path(problems_path).read_text(encoding="utf-8"))
    pid_row = {p.problem_id: int(rows[p.index]["row_index"]) for p in load_benchmark(problems_path)}
    out: dict[int, list[dict]] = {}
    for shard in shard_dirs:
        table = pd.read_parquet(Path(shard) / "samples.parquet")
        for rec in table.sort_values(["problem_id", "sample_index"]).to_dict("records"):
            out.setdefault(pid_row[rec["problem_id"]], []).append(rec)
    return out


def student_pairs(pref_path, problems_path, shard_dirs, out_path, report_json, report_md, *,
                  negatives: str, truncated_as_rejected: bool = False,
                  max_response_length: int | None = None) -> dict:  # fmt: skip
    """Write the stage-2 pairs of ``negatives`` (``student`` or ``both``; module doc) and the
    report; returns the report dict. Raises ``ValueError`` for an unknown mode or when no pair
    is left (the report is written first)."""
    if negatives not in ("student", "both"):
        raise ValueError(f"training.stage2.negatives must be 'student' or 'both' here, got {negatives!r}")
    teacher = _read_jsonl(pref_path)
    samples = _samples_by_row(problems_path, shard_dirs)
    first_pair: dict[int, dict] = {}
    for r in teacher:
        first_pair.setdefault(int(r["row_index"]), r)
    drops: Counter = Counter()
    stats = Counter()
    student = []
    for ri, pair in first_pair.items():
        mine = samples.get(ri, [])
        stats["samples"] += len(mine)
        stats["correct"] += sum(bool(s["correct"]) for s in mine)
        stats["truncated"] += sum(str(s["finish_reason"]) == "length" for s in mine)
        pick = None
        for s in mine:
            if bool(s["correct"]):
                continue
            if str(s["finish_reason"]) == "length" and not truncated_as_rejected:
                continue
            if max_response_length is not None and int(s["length"]) > int(max_response_length):
                continue
            pick = s
            break
        if pick is None:
            if not mine:
                why = "no student sample"
            elif all(bool(s["correct"]) for s in mine):
                why = "every student sample correct"
            elif not truncated_as_rejected and any(
                not s["correct"] and str(s["finish_reason"]) == "length" for s in mine
            ):
                why = "incorrect student samples truncated (truncated_as_rejected false) or too long"
            else:
                why = "incorrect student samples too long (curation.max_response_length)"
            drops[why] += 1
            continue
        student.append({
            "id": f"{pair['id']}-student", "row_index": ri, "source": pair.get("source"),
            "prompt": pair["prompt"], "chosen": pair["chosen"],
            "rejected": [{"role": "assistant", "content": str(pick["text"])}],
            "rejected_origin": "student", "student_sample_index": int(pick["sample_index"]),
        })  # fmt: skip
    rows = [{**r, "rejected_origin": "teacher"} for r in teacher] if negatives == "both" else []
    rows += student
    by_origin = Counter(r["rejected_origin"] for r in rows)
    report = {
        "negatives": negatives,
        "teacher_pairs": len(teacher),
        "problems": len(first_pair),
        "student_samples": dict(stats),
        "problems_without_student_negative": dict(sorted(drops.items())),
        "pairs": len(rows),
        "pairs_by_rejected_origin": dict(sorted(by_origin.items())),
        "truncated_as_rejected": bool(truncated_as_rejected),
        "max_response_length": max_response_length,
    }
    write_json_atomic(report_json, report, indent=1)
    write_text_atomic(report_md, render_markdown(report))
    if not rows:
        Path(out_path).unlink(missing_ok=True)
        raise ValueError(
            f"student negatives: no pair left (report: {report_md}): {report['problems_without_student_negative']}"
        )
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    log.info("student negatives: %s", report)
    return report


def render_markdown(report: dict) -> str:
    s = report["student_samples"]
    lines = [
        f"# Stage-2 pairs with the student's own negatives (`negatives: {report['negatives']}`)",
        "",
        f"Problems of the teacher pairs: {report['problems']:,} ({report['teacher_pairs']:,} teacher pairs). "
        f"Student samples: {s.get('samples', 0):,} ({s.get('correct', 0):,} correct, "
        f"{s.get('truncated', 0):,} truncated).",
        "",
        "| rejected trace from | pairs |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in report["pairs_by_rejected_origin"].items()),
        f"| **all** | {report['pairs']:,} |",
        "",
        "| problems without a student negative | count |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in report["problems_without_student_negative"].items()),
        "",
    ]
    return "\n".join(lines)


__all__ = ["NEGATIVES", "negatives_of", "render_markdown", "student_pairs", "write_problems"]
