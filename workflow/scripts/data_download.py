"""Snakemake adapter (local rule): download the corpus from the hub (save_to_disk).

params.name, params.revision, params.split; output[0] (directory); log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import logging

from redi.data.sources import download_hub

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
try:
    info = download_hub(
        snakemake.params.name,  # noqa: F821
        getattr(snakemake.params, "revision", None),  # noqa: F821
        getattr(snakemake.params, "split", "train"),  # noqa: F821
        snakemake.output[0],  # noqa: F821
    )
except RuntimeError as exc:
    logging.error("%s", exc)
    raise
logging.info("download: %s", info)
