"""Snakemake adapter: one teacher sampling shard (``redi.teacher.sample.sample_shard``).

input.problems, input.model; params.eval (an EvalConfig dict: TeacherConfig.eval_config),
params.index, params.n_shards; output.samples, output.cost (written beside each other);
resources.gpu (GPU-hours); threads; log[0].
"""

import logging
from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import gpu_lease, set_threads  # noqa: E402

set_threads(snakemake.threads)

from redi.eval.run import require_gpus  # noqa: E402
from redi.teacher.sample import sample_shard  # noqa: E402

params, gpus = snakemake.params, int(snakemake.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("teacher_sample").info):  # local runs: exclusive GPUs
    require_gpus(params.eval, gpus, f"teacher sampling shard {params.index} of {params.n_shards}")
    out_dir = Path(snakemake.output.cost).parent
    sample_shard(
        snakemake.input.problems, snakemake.input.model, out_dir, params.eval,
        index=int(params.index), n_shards=int(params.n_shards), gpus=gpus, threads=snakemake.threads,
    )  # fmt: skip
