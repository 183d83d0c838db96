"""Snakemake adapter: build reports/ (tables, figures, summary) from results/."""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from pathlib import Path  # noqa: E402

from redi.report.build import build_report  # noqa: E402

results = Path(snakemake.input.curation).parents[1]  # results/data/curation_report.json -> results
reports = Path(snakemake.output.summary_md).parent
build_report(results, reports, snakemake.config, snakemake.params.benchmarks)
