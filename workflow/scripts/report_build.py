"""Snakemake adapter: build reports/ (tables, figures, summary) from results/."""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.report.build import run  # noqa: E402
from redi.report.config import ReportConfig  # noqa: E402

run(ReportConfig.from_dict(dict(snakemake.params.items())), snakemake.config)
