"""Snakemake adapter: re-verify one shard of generations (scatter).

input.canonical (or input[0]); output[0] (shard parquet); params.shard_index, params.n_shards,
params.timeout_s (default 5), params.memory_mb (default 2048); threads = worker processes;
log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import logging

from redi.data.verify_stage import verify_shard

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
params = snakemake.params  # noqa: F821
summary = verify_shard(
    getattr(snakemake.input, "canonical", None) or snakemake.input[0],  # noqa: F821
    int(params.shard_index),
    int(params.n_shards),
    snakemake.output[0],  # noqa: F821
    timeout_s=float(getattr(params, "timeout_s", 5.0)),
    workers=max(1, int(snakemake.threads)),  # noqa: F821
    memory_mb=int(getattr(params, "memory_mb", 2048)),
)
logging.info("verify_shard: %s", summary)
