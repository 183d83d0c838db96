"""Snakemake adapter: gather verification shards into the verified table (``gather``).

input.shards (list), input.canonical; output.verified, output.report (JSON); log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.verify_stage import gather  # noqa: E402

gather(list(snakemake.input.shards), snakemake.input.canonical, snakemake.output.verified, snakemake.output.report)
