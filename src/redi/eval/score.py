"""Scoring generations with bounded Math-Verify (:mod:`redi.verify`).

Per sample, in this order:

1. ``finish_reason == "length"`` -> wrong, status ``truncated`` (a truncated generation counts
   as wrong whatever it contains);
2. no ``</think>`` in the response -> wrong, status ``no_think_close`` (the prompt opened the
   answer with ``<think>``, the paper's protocol); when the prompt did not
   (``EvalConfig.force_think`` false, e.g. the untrained row of a student that is not an R1-style
   reasoner), the whole response is the answer segment instead;
3. otherwise the final answer is the text after the last ``</think>``
   (:func:`redi.verify.final_answer_segment`), checked gold-first by
   :func:`redi.verify.verify_many` (``\\boxed{}`` preferred, worker processes, hard per-item
   wall-clock bound) under the scoring rules of :mod:`redi.verify` - the same function that
   labels corpus traces, audited on every benchmark gold in docs/scoring-audit.md. Statuses
   ``ok``, ``no_answer``, ``unparseable``, ``too_deep``, ``timeout``, ``error`` come from there.

A problem with several acceptable golds (see :mod:`redi.eval.benchmarks`) is correct when any
gold matches. The first gold is tried for every sample; the others only for samples that were
compared (``ok``/``unparseable``) and found wrong, so a sample that timed out is not retried.
Status: ``ok`` when any gold was compared, else the first gold's status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence

from redi.eval.benchmarks import Problem

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = (
    "problem_id",
    "sample_index",
    "text",
    "extracted",
    "correct",
    "status",
    "length",
    "finish_reason",
)
PRE_STATUSES = ("truncated", "no_think_close")
RETRY_STATUSES = ("ok", "unparseable")


def precheck(text: str, finish_reason: str, require_think_close: bool = True) -> tuple[str | None, str | None]:
    """(status, final-answer segment): a status when the sample is wrong before verification.
    ``require_think_close`` false: a response without ``</think>`` is its own answer segment."""
    from redi.verify import final_answer_segment

    if finish_reason != "stop":
        return "truncated", None
    segment = final_answer_segment(text)
    if segment is None:
        if require_think_close:
            return "no_think_close", None
        segment = text
    return None, segment


def verify_against_golds(
    items: Sequence[tuple[Sequence[str], str]],
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
) -> list[tuple[bool, str, str | None]]:
    """(correct, status, extracted) for ``(golds, answer_segment)`` items; any gold may match."""
    from redi.verify import verify_many

    results: list[tuple[bool, str, str | None]] = [(False, "error", None)] * len(items)
    pending = list(range(len(items)))
    round_ = 0
    compared = [False] * len(items)
    while pending:
        pairs = [(items[i][0][round_], items[i][1]) for i in pending]
        verdicts = verify_many(pairs, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb)
        nxt = []
        for i, v in zip(pending, verdicts):
            prev_correct, prev_status, prev_extracted = results[i]
            if round_ == 0:
                results[i] = (bool(v.correct), v.status, v.extracted)
            elif v.correct:
                results[i] = (True, "ok", v.extracted)
            else:
                results[i] = (
                    False,
                    "ok" if (compared[i] or v.status == "ok") else prev_status,
                    prev_extracted if prev_extracted is not None else v.extracted,
                )
            compared[i] = compared[i] or v.status == "ok"
            if (
                not results[i][0]
                and v.status in RETRY_STATUSES
                and round_ + 1 < len(items[i][0])
            ):
                nxt.append(i)
        pending = nxt
        round_ += 1
    return results


def score_generations(
    problems: Sequence[Problem] | Mapping[str, Problem],
    generations: Iterable[Mapping],
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
    require_think_close: bool = True,
):
    """Score generation records (``problem_id, sample_index, text, length, finish_reason``) ->
    DataFrame with :data:`SAMPLE_COLUMNS`, sorted by problem order then sample index.
    ``require_think_close``: step 2 of the module's rule (false when the prompt did not open
    ``<think>``)."""
    import pandas as pd

    by_id = dict(problems) if isinstance(problems, Mapping) else {p.problem_id: p for p in problems}
    order = {pid: k for k, pid in enumerate(by_id)}
    rows = []
    to_verify: list[tuple[int, tuple[str, ...], str]] = []
    for g in generations:
        problem = by_id[g["problem_id"]]
        status, segment = precheck(g["text"], g["finish_reason"], require_think_close)
        rows.append(
            {
                "problem_id": g["problem_id"],
                "sample_index": int(g["sample_index"]),
                "text": g["text"],
                "extracted": None,
                "correct": False,
                "status": status,
                "length": int(g["length"]),
                "finish_reason": g["finish_reason"],
            }
        )
        if status is None:
            to_verify.append((len(rows) - 1, problem.golds, segment))
    t0 = time.perf_counter()
    verdicts = verify_against_golds(
        [(golds, seg) for _, golds, seg in to_verify],
        timeout_s=timeout_s,
        workers=workers,
        memory_mb=memory_mb,
    )
    for (row, _, _), (correct, status, extracted) in zip(to_verify, verdicts):
        rows[row].update(correct=bool(correct), status=status, extracted=extracted)
    log.info("verified %d of %d samples in %.1fs", len(to_verify), len(rows), time.perf_counter() - t0)
    rows.sort(key=lambda r: (order[r["problem_id"]], r["sample_index"]))
    df = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    return df.astype(
        {
            "problem_id": "string",
            "sample_index": "int64",
            "text": "string",
            "extracted": "string",
            "correct": "bool",
            "status": "string",
            "length": "int64",
            "finish_reason": "string",
        }
    )


def score_gold(
    problems: Sequence[Problem], *, timeout_s: float = 5.0, workers: int = 1
) -> dict:
    """Score every problem's gold written as a model response (first gold); a verifier sanity
    check. Returns ``{"n", "correct", "accuracy", "misses": [{index, problem_id, gold,
    status, extracted}]}``."""
    import pandas as pd

    from redi.eval.benchmarks import gold_response

    gens = [
        {
            "problem_id": p.problem_id,
            "sample_index": 0,
            "text": gold_response(p.gold)[len("<think>\n") :],
            "length": 0,
            "finish_reason": "stop",
        }
        for p in problems
    ]
    df = score_generations(problems, gens, timeout_s=timeout_s, workers=workers)
    by_id = {p.problem_id: p for p in problems}
    misses = [
        {
            "index": by_id[r.problem_id].index,
            "problem_id": r.problem_id,
            "gold": by_id[r.problem_id].gold,
            "status": r.status,
            "extracted": None if pd.isna(r.extracted) else str(r.extracted),
        }
        for r in df.itertuples()
        if not r.correct
    ]
    n = len(df)
    correct = int(df["correct"].sum())
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0, "misses": misses}
