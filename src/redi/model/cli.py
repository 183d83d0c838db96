"""Student models: build the tiny default student or prepare a pretrained one."""

from __future__ import annotations

import json


def _tiny(args) -> int:
    from redi.model.student import build_tiny_student

    cfg = json.loads(args.config) if args.config else None
    print(json.dumps(build_tiny_student(args.canonical, args.out, cfg)))
    return 0


def _base(args) -> int:
    from redi.model.base import prepare_base

    overrides = json.loads(args.overrides) if args.overrides else None
    info = prepare_base(
        args.out,
        hub_name=args.hub_name,
        revision=args.revision,
        local_path=args.local_path,
        config_overrides=overrides,
        trust_remote_code=args.trust_remote_code,
    )
    print(json.dumps(info))
    return 0


def register(subparsers) -> None:
    tiny = subparsers.add_parser("tiny", help="train a tokenizer on the corpus and build the tiny student")
    tiny.add_argument("--canonical", required=True, help="canonical corpus parquet")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--config", help="JSON object overriding the tiny architecture")
    tiny.set_defaults(func=_tiny)
    base = subparsers.add_parser("base", help="prepare a pretrained student with a config edit")
    base.add_argument("--out", required=True)
    base.add_argument("--hub-name")
    base.add_argument("--revision")
    base.add_argument("--local-path")
    base.add_argument("--overrides", help='JSON, e.g. {"rope_theta": 300000}')
    base.add_argument("--trust-remote-code", action="store_true")
    base.set_defaults(func=_base)
