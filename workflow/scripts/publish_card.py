"""Snakemake adapter: a run's model card with its evaluation table (``redi.model_card``).

input:  ``summary`` (results/train/{run}/summary.json), the run's final evaluations
output: ``card`` (results/cards/{run}/README.md)
params: ``base_model`` (hub id of the start model, or None)
"""

from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])  # noqa: F821

from redi.model_card import write_card  # noqa: E402

sm = snakemake  # noqa: F821
write_card(Path(sm.input.summary).parent, sm.output.card, results="results", base_model=sm.params.base_model)
