"""Snakemake adapter: the problems the teacher samples (``redi.teacher.problems.select_problems``).

input.canonical (the configured corpus, normalised; when the stage reads it), input.problems
(teacher.problems when it is a file); params.cfg (config.teacher), params.truncated_as_rejected;
output[0] (problems.json); log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.teacher.problems import select_problems  # noqa: E402

select_problems(snakemake.output[0], snakemake.params.cfg, canonical_path=snakemake.input.get("canonical"),
                problems_path=snakemake.input.get("problems"),
                truncated_as_rejected=snakemake.params.truncated_as_rejected)  # fmt: skip
