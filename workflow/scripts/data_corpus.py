"""Snakemake adapter: synthetic teacher corpus.

output.train (parquet, Raw schema), output.test (JSON list); params.cfg (dict, optional);
log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import json
import logging

from redi.data.synthetic import write_corpus

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
stats = write_corpus(
    dict(getattr(snakemake.params, "cfg", None) or {}),  # noqa: F821
    snakemake.output.train,  # noqa: F821
    snakemake.output.test,  # noqa: F821
)
logging.info("corpus: %s", json.dumps(stats, default=str))
