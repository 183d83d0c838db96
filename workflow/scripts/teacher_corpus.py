"""Snakemake adapter: the teacher traces as a Raw-layout corpus (``redi.teacher.corpus.build_corpus``).

input.problems, input.samples (one per shard folder), input.canonical (the configured corpus,
when kept); params.keep_corpus_traces, params.unknown_validity; output.corpus, output.origins,
output.report; log[0].
"""

from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.teacher.corpus import build_corpus  # noqa: E402

out, params = snakemake.output, snakemake.params
shards = [Path(p).parent for p in snakemake.input.samples]
build_corpus(snakemake.input.problems, shards, out.corpus, out.origins, out.report,
             canonical_path=snakemake.input.get("canonical"), keep_corpus_traces=params.keep_corpus_traces,
             unknown_validity=params.unknown_validity)  # fmt: skip
