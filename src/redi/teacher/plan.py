"""What a teacher config will sample, before anything runs.

:func:`expected` reads only the config (and a benchmark-format JSON problem file): the
Snakefile prints :func:`describe` at parse time, so ``snakemake -n`` shows it (parse-time code
needs only snakemake and PyYAML, ``tests/test_cluster.py``). Where the number of problems is only
known once the corpus is read (a hub or local corpus, ``only_missing``), it says so and gives
the bound it has; once ``results/teacher/problems.json`` exists (the ``teacher_problems`` job,
``snakemake results/teacher/problems.json``), the count is exact. Tokens are an upper bound:
every sample at its full generation budget (``max_new_tokens``).
"""

from __future__ import annotations

import json
from pathlib import Path

from redi.teacher.config import TeacherConfig

PROBLEMS = "results/teacher/problems.json"


def expected(config: dict, problems_json: str | Path = PROBLEMS) -> dict:
    """``{"problems", "exact", "n_samples", "samples", "max_new_tokens", "max_tokens", "why"}`` for a validated
    config with ``teacher.enabled`` (``problems``/``samples``/``max_tokens`` None when unknown)."""
    cfg = TeacherConfig.from_dict(config["teacher"])
    sampling = {**config["evaluation"]["sampling"], **cfg.generation.get("sampling", {})}
    budget = int(sampling["max_new_tokens"])
    n, exact, why = None, False, ""
    if Path(problems_json).is_file():
        n, exact, why = len(json.loads(Path(problems_json).read_text())), True, f"selected in {problems_json}"
    elif not cfg.from_corpus and str(cfg.problems).endswith(".json") and Path(cfg.problems).is_file():
        n, why = len(json.loads(Path(cfg.problems).read_text())), f"rows of {cfg.problems}"
    elif cfg.from_corpus and config["corpus"]["source"] == "synthetic":
        from redi.data.synthetic import SynthConfig

        n, why = SynthConfig.from_dict(config["corpus"]["synthetic"]).n_train_problems, "synthetic corpus problems"
    else:
        why = "known once the corpus is read (snakemake results/teacher/problems.json)"
    if n is not None and cfg.limit is not None:
        n = min(n, int(cfg.limit))
    samples = None if n is None else n * cfg.n_samples
    return {"problems": n, "exact": exact, "n_samples": cfg.n_samples, "samples": samples, "max_new_tokens": budget,
            "max_tokens": None if samples is None else samples * budget, "why": why}  # fmt: skip


def describe(config: dict) -> str:
    """One line for the log: the problems, samples and tokens the teacher stage will generate."""
    e = expected(config)
    if e["problems"] is None:
        return f"teacher: {e['n_samples']} samples per problem; number of problems {e['why']}"
    bound = "" if e["exact"] else "at most "
    return (
        f"teacher: {bound}{e['problems']:,} problems x {e['n_samples']} = {bound}{e['samples']:,} "
        f"samples, at most {e['max_tokens']:,} generated tokens ({e['max_new_tokens']:,} per sample; {e['why']})"
    )


__all__ = ["PROBLEMS", "describe", "expected"]
