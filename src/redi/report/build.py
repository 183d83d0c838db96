"""Build every table, figure and the summary of ``reports/`` from ``results/`` and the config.

Reads only files (no training, no evaluation, no model); writes exactly the files
:func:`redi.report.layout.report_outputs` lists, so Snakemake and the command line agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redi.report.collect import collect
from redi.report.layout import all_report_files

log = logging.getLogger(__name__)


def build_report(
    results: str | Path,
    reports: str | Path,
    config: dict,
    benchmarks_dir: str | Path | None = None,
) -> list[Path]:
    """Write ``reports/tables/*``, ``reports/figures/*`` and ``reports/summary.{md,html}``.

    ``config`` is a validated config (``redi.plan.load_config``); ``benchmarks_dir`` holds the
    Snakemake ``benchmark:`` files (default: ``benchmarks/`` beside ``results/``). Returns the
    written paths; raises if any file the layout promises was not written.
    """
    from redi.report.figures import build_figures
    from redi.report.summary import build_summary, markdown_to_html
    from redi.report.tables import build_tables

    reports = Path(reports)
    data = collect(results, config, benchmarks_dir)
    for problem in data.problems:
        log.warning(problem)
    written: list[Path] = []
    tables = build_tables(data)
    for table in tables:
        written += table.write(reports / "tables")
    written += build_figures(data, reports / "figures")
    text = build_summary(data, tables)
    (reports / "summary.md").write_text(text, encoding="utf-8")
    (reports / "summary.html").write_text(markdown_to_html(text, "REDI reproduction: summary"), encoding="utf-8")
    written += [reports / "summary.md", reports / "summary.html"]
    expected = {Path(p) for p in all_report_files(config, str(reports))}
    absent = sorted(str(p) for p in expected - set(written))
    if absent:
        raise RuntimeError(f"report layout promised files that were not written: {absent}")
    log.info("wrote %d report files under %s", len(written), reports)
    return written
