"""Teacher data: synthetic corpus, hub download, normalisation, verification, curation.

Commands: ``redi data corpus|download|normalize|verify-shard|gather|curate``. Each calls one
package function (the same one the Snakemake adapter calls) and prints its summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging

from redi import paper


def _json_arg(text: str | None) -> dict:
    if not text:
        return {}
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _print(result) -> int:
    print(json.dumps(result, indent=1, default=str))
    return 0


def _corpus(args) -> int:
    _setup_logging()
    from redi.data.synthetic import write_corpus

    return _print(write_corpus(_json_arg(args.cfg), args.train, args.test))


def _download(args) -> int:
    _setup_logging()
    from redi.data.sources import download_hub

    return _print(download_hub(args.name, args.revision, args.split, args.out))


def _normalize(args) -> int:
    _setup_logging()
    from redi.data.normalize import normalize

    return _print(normalize(args.input, args.output, args.rejects))


def _verify_shard(args) -> int:
    _setup_logging()
    from redi.data.verify_stage import verify_shard

    return _print(
        verify_shard(
            args.canonical,
            args.shard_index,
            args.n_shards,
            args.out,
            timeout_s=args.timeout_s,
            workers=args.workers,
            memory_mb=args.memory_mb,
        )
    )


def _gather(args) -> int:
    _setup_logging()
    from redi.data.verify_stage import gather

    report = gather(args.shards, args.canonical, args.out, args.report)
    return _print({k: report[k] for k in ("rows", "generations", "overall")})


def _curate(args) -> int:
    _setup_logging()
    from redi.data.curate import curate

    benchmarks = dict(b.split("=", 1) for b in args.benchmark or [])
    report = curate(
        args.verified,
        args.tokenizer,
        args.sft,
        args.pref,
        args.report_json,
        args.report_md,
        args.rejects,
        _json_arg(args.cfg),
        benchmarks,
    )
    return _print({"steps": report["steps"], "final": report["final"], "expected": report["expected"]})


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "corpus", help="write the synthetic teacher corpus (Raw schema) + held-out test set"
    )
    p.add_argument("--train", default="results/data/corpus/train.parquet")
    p.add_argument("--test", default="results/data/corpus/test.json")
    p.add_argument("--cfg", help="JSON object (or @file.json) of synthetic corpus settings")
    p.set_defaults(func=_corpus)

    p = subparsers.add_parser("download", help="download a corpus from the Hugging Face hub (save_to_disk)")
    p.add_argument("--name", default=paper.CORPUS)
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_download)

    p = subparsers.add_parser("normalize", help="normalise a corpus into the canonical table")
    p.add_argument("--input", required=True, help="parquet/jsonl file or directory, or save_to_disk dir")
    p.add_argument("--output", default="results/data/canonical.parquet")
    p.add_argument("--rejects", default="results/data/normalize_rejects.jsonl")
    p.set_defaults(func=_normalize)

    p = subparsers.add_parser("verify-shard", help="re-verify one shard of generations with Math-Verify")
    p.add_argument("--canonical", default="results/data/canonical.parquet")
    p.add_argument("--shard-index", type=int, required=True)
    p.add_argument("--n-shards", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout-s", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--memory-mb", type=int, default=2048)
    p.set_defaults(func=_verify_shard)

    p = subparsers.add_parser("gather", help="join verification shards onto the canonical table")
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--canonical", default="results/data/canonical.parquet")
    p.add_argument("--out", default="results/data/verified.parquet")
    p.add_argument("--report", default="results/data/verify_report.json")
    p.set_defaults(func=_gather)

    p = subparsers.add_parser("curate", help="curate D_SFT and D_Pref with the paper's rules")
    p.add_argument("--verified", default="results/data/verified.parquet")
    p.add_argument("--tokenizer", default="results/model/student")
    p.add_argument("--sft", default="results/data/sft.jsonl")
    p.add_argument("--pref", default="results/data/pref.jsonl")
    p.add_argument("--report-json", default="results/data/curation_report.json")
    p.add_argument("--report-md", default="results/data/curation_report.md")
    p.add_argument("--rejects", default="results/data/rejects.jsonl")
    p.add_argument("--cfg", help="JSON object (or @file.json) of curation settings")
    p.add_argument(
        "--benchmark", action="append", metavar="NAME=PATH", help="benchmark JSON list (repeatable)"
    )
    p.set_defaults(func=_curate)
