"""Snakemake adapter: one training run (sft / redi / dpo / simpo).

input:  model (start model dir), data (sft.jsonl or pref.jsonl), ref_logps (optional, dpo)
params: run (dict: the run's settings, see redi.train.config.RunConfig),
        accelerate_config (optional: ddp | zero2 | zero3 | fsdp; used when resources.gpu > 1)
output: model (results/train/{run}/model; its parent is the run directory, which also receives
        metrics.jsonl and summary.json, and keeps checkpoints/ across failed attempts)
resources: gpu (optional; > 1 starts one worker per GPU with accelerate launch)
"""

from redi.runtime import set_threads

set_threads(snakemake.threads)  # noqa: F821

import logging  # noqa: E402
from pathlib import Path  # noqa: E402

from redi.train.launch import run_training  # noqa: E402

sm = snakemake  # noqa: F821
logging.basicConfig(filename=sm.log[0], level=logging.INFO,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
run_training(
    dict(sm.params.run),
    model_path=str(sm.input.model),
    data_path=str(sm.input.data),
    out_dir=str(Path(sm.output.model).parent),
    ref_logps_path=sm.input.get("ref_logps"),
    threads=sm.threads,
    gpus=int(sm.resources.get("gpu", 0) or 0),
    accelerate_config=sm.params.get("accelerate_config", None),
    log_file=sm.log[0],
)
