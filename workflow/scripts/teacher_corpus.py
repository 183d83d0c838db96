"""Snakemake adapter: the teacher traces as a Raw-layout corpus (``redi.teacher.corpus.build_corpus``).

input.problems, input.canonical (the configured corpus, when kept); params.shards (shard
folders), params.keep_corpus_traces, params.unknown_validity; output.corpus, output.origins,
output.report; log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.teacher.corpus import build_corpus  # noqa: E402

out, params = snakemake.output, snakemake.params
build_corpus(snakemake.input.problems, params.shards, out.corpus, out.origins, out.report,
             canonical_path=snakemake.input.get("canonical"), keep_corpus_traces=params.keep_corpus_traces,
             unknown_validity=params.unknown_validity)  # fmt: skip
