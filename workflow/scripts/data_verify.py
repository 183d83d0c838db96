"""Snakemake adapter: re-verify one shard of generations (scatter; ``verify_shard``).

input.canonical; output[0] (shard parquet); params.shard_index, params.n_shards,
params.timeout_s, params.memory_mb; threads = worker processes; log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.verify_stage import verify_shard  # noqa: E402

params = snakemake.params
verify_shard(
    snakemake.input.canonical,
    int(params.shard_index),
    int(params.n_shards),
    snakemake.output[0],
    timeout_s=float(params.timeout_s),
    workers=max(1, int(snakemake.threads)),
    memory_mb=int(params.memory_mb),
)
