"""Report: rebuild the paper's tables and figures from an existing results/ tree."""

from __future__ import annotations

import logging


def _build(args) -> int:
    from redi.plan import load_config
    from redi.report.build import build_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    paths = build_report(args.results, args.reports, config, args.benchmarks)
    print(f"wrote {len(paths)} files under {args.reports} (summary: {args.reports}/summary.md)")
    return 0


def register(subparsers) -> None:
    build = subparsers.add_parser(
        "build",
        help="tables (md, tex, csv, html), figures (png, pdf) and summary.md from results/ (no training or evaluation)",
    )
    build.add_argument("--results", default="results", help="results tree (default: results)")
    build.add_argument("--reports", default="reports", help="output folder (default: reports)")
    build.add_argument("--config", default="config/config.yaml", help="the config that produced the results")
    build.add_argument("--benchmarks", default=None, help="Snakemake benchmark: files (default: benchmarks/ beside --results)")
    build.set_defaults(func=_build)
