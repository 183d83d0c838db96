"""Snakemake adapter: stage-2 pairs with the student's own negatives
(``redi.data.student_negatives.student_pairs``).

input.pref, input.problems, input.samples (one per shard folder); params.negatives,
params.truncated_as_rejected, params.max_response_length; output.pref, output.report,
output.report_md; log[0].
"""

from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.student_negatives import student_pairs  # noqa: E402

out, params = snakemake.output, snakemake.params
student_pairs(snakemake.input.pref, snakemake.input.problems, [Path(p).parent for p in snakemake.input.samples],
              out.pref, out.report, out.report_md, negatives=params.negatives,
              truncated_as_rejected=params.truncated_as_rejected,
              max_response_length=params.max_response_length)  # fmt: skip
