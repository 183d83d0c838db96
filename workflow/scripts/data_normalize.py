"""Snakemake adapter: normalise the corpus into the canonical table (``redi.data.normalize``).

input.corpus (file, directory or save_to_disk dir); output.canonical, output.rejects; log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.normalize import normalize  # noqa: E402

normalize(snakemake.input.corpus, snakemake.output.canonical, snakemake.output.rejects)
