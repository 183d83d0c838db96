"""Command-line entry point: ``redi <stage> <command> ...``.

Each stage package exposes ``register(subparsers)``; the workflow's scripts call the same
functions the commands call.
"""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = ("data", "model", "train", "eval", "report", "teacher")
# stage-independent commands: name -> module with ``register_command(parser)``
COMMANDS = {"status": "redi.status"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redi", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)
    for stage in STAGES:
        module = importlib.import_module(f"redi.{stage}.cli")
        stage_parser = stages.add_parser(stage, help=module.__doc__.strip().splitlines()[0])
        module.register(stage_parser.add_subparsers(dest="command", required=True))
    for name, path in COMMANDS.items():
        module = importlib.import_module(path)
        module.register_command(stages.add_parser(name, help=module.__doc__.strip().splitlines()[0]))
    return parser


def main(argv: list[str] | None = None) -> int:
    from redi.runtime import keep_freed_memory

    keep_freed_memory()  # every command; set_threads repeats it for library callers
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
