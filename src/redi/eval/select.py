"""Best checkpoint of a training run from its intermediate evaluations.

Rule: the highest ``pass@1``; on a tie (equal to 12 decimals) the **later** step wins (the
more-trained model; ``final`` counts as later than every numbered step unless its metrics
carry a step). All candidates must be evaluations of one benchmark with one ``n_samples``.
Output: ``{"run", "checkpoint", "step", "path", "pass@1", "sem", "benchmark", "n_samples",
"candidates": [{"checkpoint", "step", "pass@1"}, ...]}``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from redi.files import write_json_atomic


def _order_step(m: Mapping) -> float:
    step = m.get("step")
    return math.inf if step is None else float(step)


def select_best(
    metrics: Sequence[Mapping],
    *,
    run: str | None = None,
    checkpoint_paths: Mapping[str, str] | None = None,
) -> dict:
    """Pick the best of ``metrics`` (dicts as in metrics.json); see module doc for the rule.

    ``path`` is ``checkpoint_paths[checkpoint]`` when given, else the evaluated ``model_path``.
    """
    if not metrics:
        raise ValueError("select_best: no candidate metrics")
    benchmarks = {m["benchmark"] for m in metrics}
    if len(benchmarks) != 1:
        raise ValueError(f"select_best: candidates from several benchmarks {sorted(benchmarks)}")
    n_samples = {m["n_samples"] for m in metrics}
    if len(n_samples) != 1:
        raise ValueError(f"select_best: candidates with different n_samples {sorted(n_samples)}")
    runs = {m.get("run") for m in metrics}
    if run is not None and runs != {run}:
        raise ValueError(f"select_best: run {run!r} but candidates from {sorted(map(str, runs))}")
    best = max(metrics, key=lambda m: (round(float(m["pass@1"]), 12), _order_step(m)))
    path = (checkpoint_paths or {}).get(best["checkpoint"], best.get("model_path"))
    return {
        "run": run if run is not None else best.get("run"),
        "checkpoint": best["checkpoint"],
        "step": best.get("step"),
        "path": str(path) if path is not None else None,
        "pass@1": best["pass@1"],
        "sem": best.get("sem"),
        "benchmark": best["benchmark"],
        "n_samples": best["n_samples"],
        "candidates": [
            {"checkpoint": m["checkpoint"], "step": m.get("step"), "pass@1": m["pass@1"]}
            for m in sorted(metrics, key=_order_step)
        ],
    }


def select_best_files(
    metrics_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike | None = None,
    *,
    run: str | None = None,
    checkpoint_paths: Mapping[str, str] | None = None,
) -> dict:
    """:func:`select_best` over metrics.json files; writes the choice to ``out_path`` if given."""
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    best = select_best(metrics, run=run, checkpoint_paths=checkpoint_paths)
    if out_path is not None:
        write_json_atomic(out_path, best, indent=2, ensure_ascii=True)
    return best
