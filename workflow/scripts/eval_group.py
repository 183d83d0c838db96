"""Snakemake adapter: every evaluation of one run in one process (``redi.eval.group.evaluate_run``;
``evaluation.group_per_run``).

input:  the benchmark files as ``input.<bench>``; ``summary`` (the run's summary.json: the steps
        it saved, ``saved_checkpoints``); ``model`` (the final model, for checkpoint ``final``).
params: ``run``, ``checkpoints`` (the run's checkpoints folder, ``checkpoint-<step>`` inside),
        ``intermediate`` / ``final`` (``{"benchmarks": [...], "eval": EvalConfig dict}``),
        ``final_checkpoints`` (``best`` and/or ``final``).
output: ``best`` (best.json); the final metrics.json files (the intermediate ones are written
        beside them, ``results/eval/{run}/step-<N>/<bench>/``, undeclared: the steps are known
        only once training has run).
"""

import json
import logging
from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import gpu_lease, set_threads  # noqa: E402

set_threads(snakemake.threads)

from redi.eval.config import EvalConfig  # noqa: E402
from redi.eval.group import evaluate_run  # noqa: E402
from redi.eval.run import require_gpus  # noqa: E402

params, inputs = snakemake.params, snakemake.input
steps = json.loads(Path(inputs.summary).read_text())["saved_checkpoints"]
checkpoints = {f"step-{s}": str(Path(params.checkpoints) / f"checkpoint-{s}") for s in steps}
inter, final = params.intermediate, params.final
inter_cfg, final_cfg = EvalConfig.from_dict(inter["eval"]), EvalConfig.from_dict(final["eval"])

gpus = int(snakemake.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("eval_group").info):  # local runs: exclusive GPUs
    require_gpus(inter_cfg, gpus, f"evaluation of {params.run}")
    evaluate_run(
        params.run,
        checkpoints,
        {b: inputs[b] for b in inter["benchmarks"]},
        inter_cfg,
        {b: inputs[b] for b in final["benchmarks"]},
        final_cfg,
        params.final_checkpoints,
        final_model=inputs.model,
        eval_root=Path(snakemake.output.best).parent,
        best_path=snakemake.output.best,
        threads=snakemake.threads,
    )
