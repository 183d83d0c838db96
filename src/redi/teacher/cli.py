"""Teacher traces: what a config will sample (``redi teacher plan``)."""

from __future__ import annotations

import json


def _plan(args) -> int:
    from redi.plan import load_config
    from redi.teacher.plan import describe, expected

    config = load_config(args.config)
    if not config["teacher"]["enabled"]:
        print(f"{args.config}: teacher.enabled is false; nothing is sampled")
        return 0
    print(describe(config))
    if args.json:
        print(json.dumps(expected(config), indent=1))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="expected problems, samples and tokens of the teacher stage")
    p.add_argument("--config", required=True, help="config YAML (e.g. config/teacher.yaml)")
    p.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    p.set_defaults(func=_plan)
