"""Snakemake adapter: gather verification shards into the verified table (gather).

input.shards (list), input.canonical; output.verified, output.report (JSON); log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import logging

from redi.data.verify_stage import gather

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
report = gather(
    list(snakemake.input.shards),  # noqa: F821
    snakemake.input.canonical,  # noqa: F821
    snakemake.output.verified,  # noqa: F821
    snakemake.output.report,  # noqa: F821
)
logging.info("gather: overall %s", report["overall"])
