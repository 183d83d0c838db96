"""Snakemake adapter: build the tiny student (tokenizer trained on the corpus)."""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)

from redi.model.student import build_tiny_student  # noqa: E402

build_tiny_student(snakemake.input[0], snakemake.output[0], snakemake.params.cfg)
