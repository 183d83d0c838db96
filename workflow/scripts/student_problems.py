"""Snakemake adapter: the problems of the teacher pairs with their answers
(``redi.data.student_negatives.write_problems``).

input.pref, input.verified; output[0]; log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.data.student_negatives import write_problems  # noqa: E402

write_problems(snakemake.input.pref, snakemake.input.verified, snakemake.output[0])
