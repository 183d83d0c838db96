"""Snakemake adapter: one training run (any objective) -> ``redi.train.launch``.

input:  ``model`` (start model dir), ``data`` (sft.jsonl or pref.jsonl), ``ref_logps`` (optional;
        required by objectives that need reference log-probs: dpo)
params: ``run`` (dict: the run's settings, see ``redi.train.config.RunConfig``; the workflow's
        ``start`` key is accepted), ``accelerate_config`` (optional: ddp | zero2 | zero3 | fsdp
        or a path; used when ``resources.gpu > 1``), ``cpu_processes`` (optional: with no GPU,
        that many CPU workers)
output: ``model`` (results/train/{run}/model; its parent is the run directory, which also gets
        metrics.jsonl and summary.json, and keeps checkpoints/ across failed attempts)
resources: ``gpu`` (optional; > 1 starts one worker per GPU with ``accelerate launch``; outside
           SLURM the job first takes an exclusive lease on that many local GPUs)
"""

from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])  # noqa: F821

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)  # noqa: F821

import logging  # noqa: E402

from redi.runtime import gpu_lease  # noqa: E402
from redi.train.launch import run_training  # noqa: E402

sm = snakemake  # noqa: F821
gpus = int(sm.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("train_run").info):  # local runs: exclusive GPUs
    run_training(
        dict(sm.params.run),
        model_path=str(sm.input.model),
        data_path=str(sm.input.data),
        out_dir=str(Path(sm.output.model).parent),
        ref_logps_path=sm.input.get("ref_logps") or None,
        threads=sm.threads,
        gpus=gpus,
        accelerate_config=sm.params.get("accelerate_config", None),
        cpu_processes=int(sm.params.get("cpu_processes", 1)),
        log_file=sm.log[0],
    )
