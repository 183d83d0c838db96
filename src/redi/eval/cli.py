"""Evaluation: generate + score a model on a benchmark, pick a run's best checkpoint, check the
verifier on gold answers."""

from __future__ import annotations

import json
import sys


def _kv(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _evaluate(args) -> int:
    from redi.runtime import set_threads

    set_threads(args.threads)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from redi.eval.config import EvalConfig
    from redi.eval.run import evaluate

    sampling = {k: getattr(args, k) for k in ("temperature", "top_p", "max_new_tokens", "seed")}
    config = {
        "backend": args.backend,
        "sampling": {k: v for k, v in sampling.items() if v is not None},
        "n_samples": args.n_samples,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "verify_timeout_s": args.verify_timeout,
        "trust_remote_code": args.trust_remote_code,
        args.backend or EvalConfig.backend: _kv(args.backend_option),
    }  # None = EvalConfig's default
    metrics = evaluate(
        args.model,
        args.benchmark,
        args.benchmark_path,
        args.out_dir,
        EvalConfig.from_dict(config),
        run=args.run,
        checkpoint=args.checkpoint,
        step=args.step,
        threads=args.threads,
        resume=not args.no_resume,
    )
    keep = ("benchmark", "checkpoint", "n_problems", "n_samples", "pass@1", "sem", "truncated")
    print(json.dumps({k: metrics[k] for k in keep}))
    return 0


def _select_best(args) -> int:
    from redi.eval.select import select_best_files

    best = select_best_files(
        args.metrics, args.out, run=args.run, checkpoint_paths=_kv(args.checkpoint_path)
    )
    print(json.dumps({k: best[k] for k in ("run", "checkpoint", "step", "path", "pass@1")}))
    return 0


def _score_gold(args) -> int:
    from redi.eval.benchmarks import load_benchmark
    from redi.eval.score import score_gold

    report = {}
    failed = False
    for spec in args.benchmark:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = spec.rsplit("/", 1)[-1].removesuffix(".json"), spec
        result = score_gold(
            load_benchmark(path, limit=args.limit), timeout_s=args.timeout, workers=args.workers
        )
        report[name] = result
        failed |= result["accuracy"] < args.min_accuracy
        print(
            f"{name}: {result['correct']}/{result['n']} ({100 * result['accuracy']:.2f}%)",
            file=sys.stderr,
        )
        for miss in result["misses"]:
            print(f"  miss #{miss['index']}: {miss['gold']!r} -> {miss['status']}", file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 1 if failed else 0


def register(subparsers) -> None:
    from redi.eval.config import EvalConfig

    ev = subparsers.add_parser(
        "evaluate",
        aliases=["generate"],
        help="sample n responses per problem, score them, write samples.parquet + metrics",
    )
    ev.add_argument("--model", required=True, help="HF model directory or hub name")
    ev.add_argument("--benchmark", required=True, help="benchmark name (recorded in metrics)")
    ev.add_argument("--benchmark-path", required=True, help="JSON list of {problem, answer}")
    ev.add_argument("--out-dir", required=True, help="results/eval/<run>/<ckpt>/<benchmark>")
    ev.add_argument("--run", required=True)
    ev.add_argument("--checkpoint", required=True, help="step-N or final")
    ev.add_argument("--step", type=int, help="training step (default: parsed from --checkpoint)")
    # defaults: redi.eval.config.EvalConfig (one home), shown here
    d = EvalConfig()
    ev.add_argument("--n-samples", type=int, help=f"samples per problem (default {d.n_samples})")
    ev.add_argument("--backend", choices=("transformers", "vllm"), help=f"default {d.backend}")
    ev.add_argument("--temperature", type=float, help=f"default {d.sampling.temperature}")
    ev.add_argument("--top-p", type=float, help=f"default {d.sampling.top_p}")
    ev.add_argument("--max-new-tokens", type=int, help=f"default {d.sampling.max_new_tokens}")
    ev.add_argument("--seed", type=int, help=f"default {d.sampling.seed}")
    ev.add_argument("--batch-size", type=int, help=f"prompts per generation batch (default {d.batch_size})")
    ev.add_argument("--verify-timeout", type=float, help=f"seconds per sample (default {d.verify_timeout_s})")
    ev.add_argument("--threads", type=int, default=1)
    ev.add_argument("--limit", type=int, help="only the first N problems")
    ev.add_argument(
        "--backend-option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option (JSON value; evaluation.<backend> of EvalConfig), e.g. tensor_parallel_size=2; repeatable",
    )
    ev.add_argument("--trust-remote-code", action="store_true")
    ev.add_argument("--no-resume", action="store_true", help="discard earlier generations")
    ev.set_defaults(func=_evaluate)

    sb = subparsers.add_parser("select-best", help="best checkpoint of a run from its metrics.json")
    sb.add_argument("metrics", nargs="+", help="metrics.json of the run's checkpoints")
    sb.add_argument("--out", help="write the choice as JSON here")
    sb.add_argument("--run")
    sb.add_argument(
        "--checkpoint-path", action="append", metavar="CKPT=PATH", help="model path of a checkpoint"
    )
    sb.set_defaults(func=_select_best)

    sg = subparsers.add_parser(
        "score-gold", help="score each gold answer written as a response (verifier sanity check)"
    )
    sg.add_argument("benchmark", nargs="+", help="NAME=PATH or PATH of benchmark JSON files")
    sg.add_argument("--workers", type=int, default=1)
    sg.add_argument("--timeout", type=float, default=5.0)
    sg.add_argument("--limit", type=int)
    sg.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this fraction")
    sg.add_argument("--out", help="write the JSON report here instead of stdout")
    sg.set_defaults(func=_score_gold)
