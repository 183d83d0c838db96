"""One sampling shard: the teacher's traces for every ``n_shards``-th problem.

There is no generation code here: a shard is an evaluation of the teacher model on the shard's
problems (:func:`redi.eval.run.evaluate`), so it has evaluation's prompt builder
(:mod:`redi.prompts`), generation-budget check, backends (:mod:`redi.eval.backends`: vLLM with
data-parallel engines on GPUs, transformers on CPU), resume journal (a preempted shard re-uses
every finished batch) and bounded Math-Verify scoring (:mod:`redi.verify`).

Files in the shard folder ``results/teacher/samples/shard-{i}-of-{n}/``: ``problems.json`` (the
shard's problems), evaluation's ``generations.jsonl`` journal, ``samples.parquet`` and
``metrics.json``, and ``cost.json`` (written last, atomically):

* ``samples``, ``problems``, ``generated_tokens``, ``truncated`` (finish reason "length");
* ``skipped_over_budget`` (problems left out because their prompt plus ``max_new_tokens`` does
  not fit the teacher's context: every sample gets the full recorded budget or none, as in
  evaluation, and one such problem no longer loses its whole shard) and ``skipped_problems``
  (their ids and prompt lengths);
* ``wall_seconds`` (this job plus the generation time of journal samples re-used from an earlier,
  preempted attempt), ``generation_seconds``, ``samples_per_second``, ``tokens_per_second``;
* ``gpus`` (the job's request) and ``gpu_hours = gpus * wall_seconds / 3600``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from redi.files import write_json_atomic

log = logging.getLogger(__name__)

COST = "cost.json"
SHARD_PROBLEMS = "problems.json"


def shard_problems(problems: list, index: int, n_shards: int) -> list:
    """Problems of shard ``index`` of ``n_shards`` (every ``n_shards``-th, from ``index``: shards
    get the same mix of the problem set's order)."""
    if not 0 <= index < n_shards:
        raise ValueError(f"shard index {index} is not in [0, {n_shards})")
    return problems[index::n_shards]


def sample_shard(problems_path, model_path, out_dir, eval_config: dict, *, index: int, n_shards: int,
                 gpus: int = 0, threads: int = 1) -> dict:  # fmt: skip
    """Sample shard ``index`` of ``n_shards`` of ``problems_path`` with ``model_path``; write the
    shard folder (module doc) and return its cost record.

    ``eval_config``: an :class:`~redi.eval.config.EvalConfig` dict
    (:meth:`redi.teacher.config.TeacherConfig.eval_config`). Problems whose prompt + budget
    exceeds the teacher's context are skipped and recorded (module doc). Raises what
    ``evaluate`` raises (no problem of the shard fits the context, an unknown key), and
    ``ValueError`` for an empty shard (more shards than problems).
    """
    from redi.eval.run import evaluate

    out = Path(out_dir)
    problems = json.loads(Path(problems_path).read_text(encoding="utf-8"))
    mine = shard_problems(problems, int(index), int(n_shards))
    if not mine:
        raise ValueError(f"{problems_path}: shard {index} of {n_shards} is empty ({len(problems)} problems); "
                         "lower teacher.shards")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / SHARD_PROBLEMS, mine, indent=1, ensure_ascii=False)
    where = f"shard-{index}-of-{n_shards}"
    metrics = evaluate(model_path, "teacher", out / SHARD_PROBLEMS, out, eval_config, run="teacher",
                       checkpoint=where, threads=threads, over_budget="skip")  # fmt: skip
    cost = shard_cost(metrics, problems=len(mine), gpus=gpus)
    write_json_atomic(out / COST, cost, indent=1)
    log.info("teacher %s: %s", where, cost)
    return cost


def shard_cost(metrics: dict, *, problems: int, gpus: int) -> dict:
    """The cost record of a shard from its evaluation ``metrics`` (module doc)."""
    wall, gen = float(metrics["wall_seconds"]), float(metrics["generation_seconds"])
    samples, tokens = int(metrics["n_problems"]) * int(metrics["n_samples"]), int(metrics["generated_tokens"])
    skipped = list(metrics.get("skipped_over_budget") or [])
    return {
        "problems": problems,
        "skipped_over_budget": len(skipped),
        "skipped_problems": skipped,
        "samples": samples,
        "generated_tokens": tokens,
        "truncated": int(metrics["truncated"]),
        "wall_seconds": wall,
        "generation_seconds": gen,
        "samples_per_second": samples / gen if gen > 0 else None,
        "tokens_per_second": tokens / gen if gen > 0 else None,
        "gpus": int(gpus),
        "gpu_hours": int(gpus) * wall / 3600.0,
        "backend": metrics["backend"],
        "model_path": metrics["model_path"],
        "sampling": metrics["sampling"],
    }


__all__ = ["COST", "sample_shard", "shard_cost", "shard_problems"]
