"""Build every table, figure and the summary of ``reports/`` from ``results/`` and the config.

Reads only files (no training, no evaluation, no model); writes exactly the files
:func:`redi.report.layout.report_outputs` lists, so Snakemake and the command line agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redi.report.collect import collect
from redi.report.config import ReportConfig
from redi.report.layout import all_report_files

log = logging.getLogger(__name__)


def build_report(
    results: str | Path,
    reports: str | Path,
    config: dict,
    benchmarks_dir: str | Path | None = None,
) -> list[Path]:
    """Write ``reports/tables/*``, ``reports/figures/*``, ``reports/summary.{md,html}`` and the
    samples browser ``reports/samples.html``.

    ``config`` is a validated config (``redi.plan.load_config``; its ``report`` section holds the
    wording knobs); ``benchmarks_dir`` holds the Snakemake ``benchmark:`` files (default:
    ``benchmarks/`` beside ``results/``). Returns the written paths; raises if any file the
    layout promises was not written.
    """
    folders = {"results": str(results), "reports": str(reports), "benchmarks": benchmarks_dir and str(benchmarks_dir)}
    return run(ReportConfig.from_dict({**folders, **config.get("report", {})}), config)


def run(settings: ReportConfig, config: dict) -> list[Path]:
    """The report stage: collect ``results/``, write tables, figures and the summary, check the
    written files against the layout (see :func:`build_report`)."""
    from redi.report.browser import write_samples_page
    from redi.report.figures import build_figures
    from redi.report.summary import build_summary, markdown_to_html
    from redi.report.tables import build_tables

    reports = Path(settings.reports)
    data = collect(settings.results, config, settings.benchmarks_dir, settings)
    for problem in data.problems:
        log.warning(problem)
    tables = build_tables(data)
    written = [path for table in tables for path in table.write(reports / "tables")]
    written += build_figures(data, reports / "figures")
    text = build_summary(data, tables)
    (reports / "summary.md").write_text(text, encoding="utf-8")
    page = markdown_to_html(text, "REDI reproduction: summary", reports)
    (reports / "summary.html").write_text(page, encoding="utf-8")
    written += [reports / "summary.md", reports / "summary.html"]
    written.append(write_samples_page(data, reports / "samples.html"))
    _check_layout(written, config, reports)
    log.info("wrote %d report files under %s", len(written), reports)
    return written


def _check_layout(written: list[Path], config: dict, reports: Path) -> None:
    expected = {Path(p) for p in all_report_files(config, str(reports))}
    absent = sorted(str(p) for p in expected - set(written))
    if absent:
        raise RuntimeError(f"report layout promised files that were not written: {absent}")
