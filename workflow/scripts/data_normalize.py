"""Snakemake adapter: normalise the corpus into the canonical table.

input.corpus (or input[0]: file, directory or save_to_disk dir); output.canonical,
output.rejects; log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import logging

from redi.data.normalize import normalize

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
corpus = getattr(snakemake.input, "corpus", None) or snakemake.input[0]  # noqa: F821
summary = normalize(corpus, snakemake.output.canonical, snakemake.output.rejects)  # noqa: F821
logging.info("normalize: %s", summary)
