"""All of one run's evaluations in one process (``evaluation.group_per_run``).

On the CPU demo a Snakemake job per checkpoint spends ~10 s starting Python and importing torch
and transformers for an evaluation of ~20 s; here one process per run

1. evaluates every saved checkpoint on every intermediate benchmark, loading each checkpoint once
   for all of them (one tokenizer and one backend engine per checkpoint);
2. picks the best checkpoint (:func:`redi.eval.select.select_best_files`, the ``select_best``
   rule's rule) and writes ``best.json``;
3. evaluates the final checkpoints (``best`` and/or ``final``) on the final benchmarks.

Each evaluation is the same :func:`redi.eval.run.evaluate` call, with the same settings, journal
and output folder as the per-checkpoint rules: the samples (seeded per batch) and the metrics are
the same, and a rerun resumes from each folder's journal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from redi.eval.config import EvalConfig

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    model_path: str | os.PathLike,
    benchmarks: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    config: EvalConfig | dict | None,
    *,
    run: str,
    checkpoint: str,
    step: int | None = None,
    threads: int = 1,
) -> dict[str, dict]:
    """One model on several benchmarks, loaded once: ``{benchmark: metrics}``; each benchmark
    writes ``out_dir/<benchmark>/`` as :func:`redi.eval.run.evaluate` does."""
    from transformers import AutoTokenizer

    from redi.eval.backends import make_backend
    from redi.eval.run import engine_options, evaluate

    cfg = EvalConfig.from_dict(config)
    out = {}
    from redi.model.base import trusts_remote_code

    trust = trusts_remote_code(model_path, cfg.trust_remote_code)  # or as the student was prepared
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), trust_remote_code=trust)
    engine = make_backend(cfg.backend, model_path, tokenizer=tokenizer, batch_size=cfg.batch_size,
                          trust_remote_code=trust, **engine_options(cfg, model_path))  # fmt: skip
    try:
        for bench, path in benchmarks.items():  # one load of the model for all the benchmarks
            out[bench] = evaluate(model_path, bench, path, Path(out_dir) / bench, cfg, run=run, checkpoint=checkpoint,
                                  step=step, threads=threads, tokenizer=tokenizer, engine=engine)  # fmt: skip
    finally:
        engine.close()
    return out


def evaluate_run(
    run: str,
    checkpoints: Mapping[str, str | os.PathLike],
    intermediate: Mapping[str, str | os.PathLike],
    intermediate_config: EvalConfig | dict | None,
    final: Mapping[str, str | os.PathLike],
    final_config: EvalConfig | dict | None,
    final_checkpoints: Sequence[str],
    *,
    final_model: str | os.PathLike,
    eval_root: str | os.PathLike,
    best_path: str | os.PathLike,
    threads: int = 1,
) -> dict:
    """Every evaluation of run ``run``; returns the ``best.json`` choice.

    ``checkpoints``: ``{"step-N": checkpoint folder}`` of every saved step (the intermediate
    candidates); ``intermediate``/``final``: ``{benchmark: file}``; ``final_checkpoints``: any of
    ``best`` (the checkpoint ``best.json`` names) and ``final`` (``final_model``). Outputs under
    ``eval_root/<checkpoint>/<benchmark>/`` (``results/eval/{run}``) and ``best_path``.

    Raises:
        ValueError: no checkpoints, or a final checkpoint other than ``best``/``final``.
    """
    from redi.eval.run import METRICS_JSON, checkpoint_step
    from redi.eval.select import select_best_files

    if not checkpoints:
        raise ValueError(f"run {run}: no saved checkpoints to evaluate")
    root = Path(eval_root)
    for name, path in checkpoints.items():
        log.info("%s/%s: %d intermediate benchmark(s) with one load of %s", run, name, len(intermediate), path)
        evaluate_checkpoint(path, intermediate, root / name, intermediate_config, run=run, checkpoint=name,
                            step=checkpoint_step(name), threads=threads)  # fmt: skip
    candidates = [root / name / bench / METRICS_JSON for name in checkpoints for bench in intermediate]
    best = select_best_files(candidates, best_path, run=run)  # the select_best rule's inputs and rule
    log.info("%s: best checkpoint %s (pass@1 %.4f)", run, best["checkpoint"], best["pass@1"])
    for ckpt in final_checkpoints:
        if ckpt == "best":
            path, step = best["path"], best.get("step")
        elif ckpt == "final":
            path, step = str(final_model), None
        else:
            raise ValueError(f"final checkpoint must be 'best' or 'final', got {ckpt!r}")
        evaluate_checkpoint(path, final, root / ckpt, final_config, run=run, checkpoint=ckpt, step=step,
                            threads=threads)  # fmt: skip
    return best


__all__ = ["evaluate_checkpoint", "evaluate_run"]
