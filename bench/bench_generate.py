"""Generation throughput of the transformers backend on a tiny random Qwen2 student (CPU).

Builds the student (hidden 128, 4 layers, 4 heads / 2 KV heads, vocab ~2000; the test
tokenizer), then, in a fresh process per setting (torch's thread pools are fixed per process),
samples ``--samples`` responses for each of ``--prompts`` Open-R1 prompts with
``--max-new-tokens`` and reports generated tokens per second. Prints one JSON object.

    .venv/bin/python bench/bench_generate.py [--threads 1 2] [--batch-sizes 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def child(args) -> dict:
    from redi.runtime import set_threads

    set_threads(args.threads[0])
    import torch

    from redi.eval.generate import GenerationJob, SamplingConfig, TransformersBackend
    from redi.prompts import prompt_token_ids

    backend = TransformersBackend(args.model, batch_size=args.batch_sizes[0], device="cpu")
    problems = [
        f"Let $x = {k}$. Compute $x^2 + {k + 1}x + {2 * k}$ and simplify the result."
        for k in range(args.prompts)
    ]
    jobs = [
        GenerationJob(f"p{k}", tuple(prompt_token_ids(backend.tokenizer, p)), tuple(range(args.samples)))
        for k, p in enumerate(problems)
    ]
    sampling = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)
    warm = [GenerationJob("w", jobs[0].prompt_ids, (0,))]
    backend.generate(warm, SamplingConfig(max_new_tokens=8), lambda g, s: None)
    lengths = []
    t0 = time.perf_counter()
    backend.generate(jobs, sampling, lambda gens, secs: lengths.extend(g.length for g in gens))
    seconds = time.perf_counter() - t0
    return {
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "threads": args.threads[0],
        "torch_threads": torch.get_num_threads(),
        "batch_size_prompts": args.batch_sizes[0],
        "sequences": len(lengths),
        "prompt_tokens": len(jobs[0].prompt_ids),
        "generated_tokens": sum(lengths),
        "truncated": sum(1 for n in lengths if n == args.max_new_tokens),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(sum(lengths) / seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="prompts per batch")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    from redi.eval.tiny import build_tiny_qwen2

    results = []
    load_before = os.getloadavg()  # other jobs on the machine distort these numbers
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_qwen2(
            tmp, vocab_size=2000, hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2,
            intermediate_size=384,
        )  # fmt: skip
        for threads in args.threads:
            for bs in args.batch_sizes:
                cmd = [
                    sys.executable, __file__, "--child", "--model", str(model),
                    "--threads", str(threads), "--batch-sizes", str(bs),
                    "--prompts", str(args.prompts), "--samples", str(args.samples),
                    "--max-new-tokens", str(args.max_new_tokens),
                ]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "backend": "transformers",
                "device": "cpu",
                "model": "tiny Qwen2 (hidden 128, 4 layers, 4/2 heads, vocab 2000, fp32)",
                "prompts": args.prompts,
                "samples_per_prompt": args.samples,
                "max_new_tokens": args.max_new_tokens,
                "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in load_before],
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
