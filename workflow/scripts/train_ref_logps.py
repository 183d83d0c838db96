"""Snakemake adapter: DPO reference log-probs of the stage-2 start model
(``redi.train.reference.compute_reference_logps``).

input:  ``model`` (start model dir), ``data`` (pref.jsonl)
params: ``run`` (dict: a DPO run's settings; its truncation lengths and batch size are used),
        ``deepspeed`` (the DPO jobs train under DeepSpeed: the pass then uses bf16 weights too)
resources: ``gpu`` (0 or 1: the pass uses one device)
output: ``ref_logps`` or the first output (results/train/{start}/ref_logps.parquet)
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])  # noqa: F821

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)  # noqa: F821

import logging  # noqa: E402

from redi.runtime import gpu_lease, require_cuda  # noqa: E402
from redi.train.reference import compute_reference_logps  # noqa: E402

sm = snakemake  # noqa: F821
gpus = int(sm.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("train_ref_logps").info):
    require_cuda(gpus, "reference_logps")
    compute_reference_logps(
        str(sm.input.model),
        str(sm.input.data),
        str(sm.output.get("ref_logps") or sm.output[0]),
        dict(sm.params.run),
        threads=sm.threads,
        deepspeed=bool(sm.params.get("deepspeed", False)),
    )
