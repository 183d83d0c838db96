"""Snakemake adapter (local rule): download the corpus from the hub (``save_to_disk``).

params.name, params.revision, params.split; output[0] (directory); log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.sources import download_hub  # noqa: E402

params = snakemake.params
download_hub(params.name, params.revision, params.split, snakemake.output[0])
