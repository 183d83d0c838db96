"""Metrics of one evaluation and the average over benchmarks (accuracies as fractions).

* ``pass@1``: mean correctness over every problem and every sample.
* ``sem`` (the paper's): with ``k`` samples per problem, ``P_j`` is the benchmark-wide accuracy
  of the ``j``-th sample of every problem; ``SEM = std(P_1..P_k, ddof=0) / sqrt(k)``. This is
  not lighteval's stderr (std of per-problem scores / sqrt(N)). Undefined (``None``) for k < 2.
* ``pass@k`` for every ``k <= n``: the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` per problem
  (Chen et al. 2021), averaged over problems.
* Generation length statistics over all samples (generated tokens, stop token excluded).
* The benchmark average (the paper's "Avg" column) and its SEM: :func:`benchmark_average`, the
  one implementation the report's tables and summary use.
* ``per_problem``: ``{"problem_id": [...], "correct": [...], "samples": k}`` (correct samples of
  every problem) and ``sem_rule`` (:data:`SEM_RULE`, the rule of ``sem``). A ``metrics.json``
  without ``sem_rule`` was written by older code: :func:`load_problem_scores` then reads the
  ``samples.parquet`` beside it, or reports the scores as missing (never guessed).

Verdicts ("is model A better than model B?") never use the paper's SEM: with k = 4 or 8 samples
it measures only the spread between sample indices, and the same checkpoint evaluated twice
(4 and 8 samples) differs from itself by "more than 2 combined SEMs". They use the **paired
problem-level difference** (:func:`paired_difference`): per problem ``d_i = c_A,i/n_A - c_B,i/n_B``
over the problems both evaluated, its mean and standard error ``std(d, ddof=1) / sqrt(N)``
(paired differences as in Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640);
over several benchmarks the difference of the unweighted averages, ``SE = sqrt(sum SE_b^2) / B``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# Metric keys of metrics.json, in the order of the tidy CSV (pass@k columns follow pass@1/sem).
SCALAR_KEYS = (
    "run",
    "checkpoint",
    "step",
    "benchmark",
    "model_path",
    "n_problems",
    "n_samples",
    "pass@1",
    "sem",
)
TAIL_KEYS = (
    "mean_length",
    "median_length",
    "max_length",
    "truncated",
    "no_think_close",
    "timeouts",
    "no_answer",
    "wall_seconds",
    "generation_seconds",
    "generated_tokens",
    "tokens_per_second",
    "backend",
)


#: Names the rule of ``sem`` in ``metrics.json`` (absent = older code; see module doc).
SEM_RULE = "paper: std(ddof=0) of the k per-sample-index pass@1 values / sqrt(k)"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``n`` samples, ``c`` of them correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def correctness_matrix(samples, n_samples: int | None = None) -> tuple[list[str], np.ndarray]:
    """(problem ids in first-seen order, bool matrix problems x samples) from a samples table.

    Every problem must have exactly the sample indices ``0..n-1`` (an evaluation over fewer
    samples than it claims is an error, not a smaller n).
    """
    ids = list(dict.fromkeys(samples["problem_id"].tolist()))
    pos = {pid: i for i, pid in enumerate(ids)}
    counts = samples.groupby("problem_id", sort=False)["sample_index"].agg(["count", "max", "min"])
    n = int(n_samples) if n_samples is not None else int(counts["count"].max())
    bad = counts[(counts["count"] != n) | (counts["max"] != n - 1) | (counts["min"] != 0)]
    if len(bad) or samples.duplicated(["problem_id", "sample_index"]).any():
        raise ValueError(
            f"samples are not a complete problems x {n} grid "
            f"(e.g. {bad.index[:3].tolist()} have counts {bad['count'][:3].tolist()})"
        )
    matrix = np.zeros((len(ids), n), dtype=bool)
    rows = samples["problem_id"].map(pos).to_numpy()
    cols = samples["sample_index"].to_numpy(dtype=int)
    matrix[rows, cols] = samples["correct"].to_numpy(dtype=bool)
    return ids, matrix


def per_sample_scores(matrix: np.ndarray) -> np.ndarray:
    """``P_j``: accuracy over problems of the j-th sample."""
    return np.asarray(matrix, dtype=float).mean(axis=0)


def sem(scores: Sequence[float]) -> float | None:
    """The paper's SEM of pass@1: std (ddof 0) of the per-sample-index scores / sqrt(k).

    ``None`` (not available) for k < 2: one sample per problem has no spread to measure, and
    ``std`` of one score would report a false ``0.0``. Reports print ``n/a``."""
    s = np.asarray(scores, dtype=float)
    if s.size < 2:
        return None
    return float(s.std(ddof=0) / math.sqrt(s.size))


def pass_at_k_curve(matrix: np.ndarray) -> dict[str, float]:
    """``{"1": pass@1, ..., "n": pass@n}``, the unbiased estimator averaged over problems."""
    m = np.asarray(matrix, dtype=bool)
    n = m.shape[1]
    correct = m.sum(axis=1)
    return {
        str(k): float(np.mean([pass_at_k(n, int(c), k) for c in correct])) if len(correct) else 0.0
        for k in range(1, n + 1)
    }


def length_stats(lengths: Sequence[int]) -> dict:
    arr = np.asarray(lengths, dtype=float)
    if arr.size == 0:
        return {"mean_length": 0.0, "median_length": 0.0, "max_length": 0}
    return {
        "mean_length": float(arr.mean()),
        "median_length": float(np.median(arr)),
        "max_length": int(arr.max()),
    }


def summarise(samples, n_samples: int | None = None) -> dict:
    """Accuracy, SEM, pass@k, per-sample scores, length and status counts of a samples table."""
    ids, matrix = correctness_matrix(samples, n_samples)
    scores = per_sample_scores(matrix)
    status = samples["status"].astype(str).value_counts().to_dict()
    out = {
        "n_problems": len(ids),
        "n_samples": int(matrix.shape[1]),
        "pass@1": float(matrix.mean()) if matrix.size else 0.0,
        "sem": sem(scores),
        "pass@k": pass_at_k_curve(matrix),
        "per_sample_pass@1": [float(s) for s in scores],
        "sem_rule": SEM_RULE,
        "per_problem": {
            "problem_id": [str(i) for i in ids],
            "correct": [int(c) for c in matrix.sum(axis=1)],
            "samples": int(matrix.shape[1]),
        },
        **length_stats(samples["length"].tolist()),
        "truncated": int((samples["finish_reason"].astype(str) == "length").sum()),
        "no_think_close": int(status.get("no_think_close", 0)),
        "timeouts": int(status.get("timeout", 0)),
        "no_answer": int(status.get("no_answer", 0)),
        "status_counts": {str(k): int(v) for k, v in sorted(status.items())},
        "generated_tokens": int(samples["length"].sum()),
    }
    return out


def tidy_row(metrics: Mapping) -> dict:
    """One flat CSV row: scalar keys, then ``pass@k`` columns, then the tail keys."""
    row = {k: metrics.get(k) for k in SCALAR_KEYS}
    for k, v in sorted(metrics.get("pass@k", {}).items(), key=lambda kv: int(kv[0])):
        row[f"pass@{k}"] = v
    row.update({k: metrics.get(k) for k in TAIL_KEYS})
    return row


def benchmark_average(metrics: Sequence[Mapping], expected: Sequence[str] | None = None) -> dict:
    """Unweighted average over benchmarks (the paper's "Avg" column) of one model's metrics.

    Any number of benchmarks (the paper uses five). ``pass@1`` and every ``pass@k`` common to
    all benchmarks are averaged; the SEM is :func:`sem` applied to the per-sample-index averages
    ``A_j = mean_b P_{b,j}`` (the paper's rule). ``sem`` is ``None`` (reports print n/a) when a
    benchmark lacks ``per_sample_pass@1``, when the benchmarks have different ``n_samples``, or
    when k < 2.
    ``expected``: benchmark names that must all be present (e.g. ``redi.paper.BENCHMARKS``).

    Raises:
        ValueError: no metrics, a benchmark twice, or not exactly the ``expected`` benchmarks.
    """
    if not metrics:
        raise ValueError("no metrics to average")
    names = [m["benchmark"] for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate benchmarks in average: {names}")
    if expected is not None and set(expected) != set(names):
        raise ValueError(f"average needs benchmarks {sorted(expected)}, got {sorted(names)}")
    ks = set.intersection(*(set(m.get("pass@k", {})) for m in metrics))
    out = {
        "benchmarks": names,
        "n_benchmarks": len(metrics),
        "pass@1": float(np.mean([m["pass@1"] for m in metrics])),
        "pass@k": {k: float(np.mean([m["pass@k"][k] for m in metrics])) for k in sorted(ks, key=int)},
        "sem": None,
    }
    per = [m.get("per_sample_pass@1") for m in metrics]
    if all(p is not None for p in per) and len({len(p) for p in per}) == 1:
        out["per_sample_pass@1"] = [float(x) for x in np.mean(np.asarray(per, dtype=float), axis=0)]
        out["sem"] = sem(out["per_sample_pass@1"])
    return out


# ---- per-problem scores and the paired difference (the statistic of every verdict) ----------


def problem_scores(metrics: Mapping) -> dict[str, tuple[int, int]] | None:
    """``{problem_id: (correct, samples)}`` from a metrics dict's ``per_problem``; None when the
    dict has none (older code). Raises ``ValueError`` on a malformed record."""
    rec = metrics.get("per_problem")
    if not rec:
        return None
    ids, correct, n = rec.get("problem_id"), rec.get("correct"), rec.get("samples")
    if not isinstance(ids, list) or not isinstance(correct, list) or len(ids) != len(correct) or not n:
        raise ValueError("per_problem needs equal-length problem_id and correct lists and samples > 0")
    return {str(i): (int(c), int(n)) for i, c in zip(ids, correct)}


def load_problem_scores(metrics_path) -> tuple[dict[str, tuple[int, int]] | None, str]:
    """(scores, source) of one evaluation: ``metrics.json``'s ``per_problem`` (source
    ``"metrics.json"``), else the ``samples.parquet`` beside it (``"samples.parquet"``, for files
    written before ``per_problem`` existed), else ``(None, "missing")``."""
    import json
    from pathlib import Path

    path = Path(metrics_path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "missing"
    found = problem_scores(metrics)
    if found is not None:
        return found, "metrics.json"
    samples = path.with_name("samples.parquet")
    if samples.is_file():
        import pandas as pd

        frame = pd.read_parquet(samples, columns=["problem_id", "sample_index", "correct"])
        ids, matrix = correctness_matrix(frame, metrics.get("n_samples"))
        return {str(i): (int(c), int(matrix.shape[1])) for i, c in zip(ids, matrix.sum(axis=1))}, "samples.parquet"
    return None, "missing"


def paired_difference(
    a: Sequence[Mapping[str, tuple[int, int]]], b: Sequence[Mapping[str, tuple[int, int]]], z: float = 2.0
) -> dict | None:
    """Paired problem-level difference A - B of pass@1 (fractions), averaged over benchmarks.

    ``a`` / ``b``: per benchmark (same order), ``{problem_id: (correct, samples)}`` of model A /
    B (:func:`problem_scores`). Per benchmark, over the problems both evaluated:
    ``d_i = c_A/n_A - c_B/n_B``, ``diff_b = mean(d)``, ``se_b = std(d, ddof=1) / sqrt(N_b)``; the
    benchmark average's ``diff = mean_b diff_b``, ``se = sqrt(sum se_b^2) / B``. Returns
    ``{"diff", "se", "low", "high", "z", "n_problems", "significant"}`` (interval
    ``diff ± z se``; significant when it excludes 0) or None when a benchmark lacks scores or
    the two share fewer than 2 problems on one. ``n_problems``: shared problems summed over
    benchmarks.
    """
    if len(a) != len(b) or not a:
        return None
    diffs, variances, n_total = [], [], 0
    for sa, sb in zip(a, b):
        if not sa or not sb:
            return None
        common = [p for p in sa if p in sb]
        if len(common) < 2:
            return None
        d = np.array([sa[p][0] / sa[p][1] - sb[p][0] / sb[p][1] for p in common], dtype=float)
        diffs.append(float(d.mean()))
        variances.append(float(d.var(ddof=1)) / len(d))
        n_total += len(common)
    diff = float(np.mean(diffs))
    se = math.sqrt(sum(variances)) / len(diffs)
    low, high = diff - z * se, diff + z * se
    return {
        "diff": diff,
        "se": se,
        "low": low,
        "high": high,
        "z": float(z),
        "n_problems": n_total,
        "significant": bool(low > 0 or high < 0),
    }
