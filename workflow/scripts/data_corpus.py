"""Snakemake adapter: synthetic teacher corpus (``redi.data.synthetic.write_corpus``).

params.cfg (config.corpus.synthetic); output.train (parquet, Raw schema), output.test (JSON
list); log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.synthetic import SynthConfig, write_corpus  # noqa: E402

write_corpus(SynthConfig.from_dict(snakemake.params.cfg), snakemake.output.train, snakemake.output.test)
