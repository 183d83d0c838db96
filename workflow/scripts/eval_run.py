"""Snakemake adapter: evaluate one model on one benchmark (``redi.eval.run.evaluate``).

input:  the benchmark file as ``input.<bench>``; ``model`` (model dir) or, for checkpoint
        ``best``, ``best`` (best.json: the path and step it names are evaluated).
params: ``run``, ``checkpoint``, ``eval`` (an EvalConfig dict: rules/common.smk ``eval_params``),
        ``model_path`` (eval_checkpoint: the checkpoint folder; wins over input.model).
output: ``metrics`` (metrics.json; samples.parquet and metrics.csv are written beside it).
"""

import json
import logging
from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import gpu_lease, set_threads  # noqa: E402

set_threads(snakemake.threads)

from redi.eval.config import EvalConfig  # noqa: E402
from redi.eval.run import evaluate, require_gpus  # noqa: E402

params, inputs, bench = snakemake.params, snakemake.input, snakemake.wildcards.bench
cfg = EvalConfig.from_dict(params.eval)
model_path, step = params.get("model_path") or inputs.get("model"), None
if params.checkpoint == "best":
    best = json.loads(Path(inputs.best).read_text())
    model_path, step = best["path"], best.get("step")

gpus = int(snakemake.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("eval_run").info):  # local runs: exclusive GPUs
    require_gpus(cfg, gpus, f"evaluation of {params.run}/{params.checkpoint} on {bench}")
    evaluate(model_path, bench, inputs[bench], Path(snakemake.output.metrics).parent, cfg,
             run=params.run, checkpoint=params.checkpoint, step=step, threads=snakemake.threads)  # fmt: skip
