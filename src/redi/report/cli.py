"""Report: rebuild the paper's tables and figures from an existing results/ tree."""

from __future__ import annotations

import logging

from redi.report.config import ReportConfig


def _build(args) -> int:
    from redi.plan import load_config
    from redi.report.build import run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    folders = {"results": args.results, "reports": args.reports, "benchmarks": args.benchmarks}
    paths = run(ReportConfig.from_dict({**folders, **config.get("report", {})}), config)
    print(f"wrote {len(paths)} files under {args.reports} (summary: {args.reports}/summary.md)")
    return 0


def register(subparsers) -> None:
    build = subparsers.add_parser(
        "build",
        help="tables (md, tex, csv, html), figures (png, pdf) and summary.md from results/ (no training or evaluation)",
    )
    defaults = ReportConfig()
    build.add_argument("--results", default=defaults.results, help=f"results tree (default: {defaults.results})")
    build.add_argument("--reports", default=defaults.reports, help=f"output folder (default: {defaults.reports})")
    build.add_argument("--config", default="config/config.yaml", help="the config that produced the results")
    build.add_argument(
        "--benchmarks", default=None, help="Snakemake benchmark: files (default: benchmarks/ beside --results)"
    )
    build.set_defaults(func=_build)
