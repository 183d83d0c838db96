"""Peak memory and time of one REDI loss forward+backward on ONE pair, vs response length:
the chunked log-prob head (``logprob_chunk_size=512``) against naive full logits.

Model: Qwen2 with the real vocabulary (151,936), hidden size 64, one layer, fp32, so the
vocabulary projection dominates, as it does for long responses of a 1.5B model. Each
measurement runs in its own process (peak RSS from ``getrusage``), with ``--threads`` torch
threads. Naive runs predicted (linear fit of the earlier ones) to exceed ``--limit-gib`` or the
machine's available memory are skipped and recorded as such.

    .venv/bin/python bench/bench_logprobs.py [--out bench.json] [--lengths 1024,2048,...]

Prints one JSON document (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

VOCAB = 151_936
PROMPT = 64


def worker(method: str, length: int, threads: int, chunk: int) -> dict:
    from redi.runtime import set_threads

    set_threads(threads)
    import numpy as np
    import psutil
    import torch

    from redi.train import tiny
    from redi.train.batching import Collator, TokenizedData
    from redi.train.config import RunConfig
    from redi.train.logprobs import response_logprobs
    from redi.train.trainer import batch_objective

    model = tiny.make_model(vocab_size=VOCAB, hidden_size=64, num_layers=1, num_heads=4,
                            num_kv_heads=2, intermediate_size=128,
                            max_position_embeddings=PROMPT + length + 8)
    rng = np.random.default_rng(0)
    ids = lambda n: rng.integers(0, VOCAB, size=n).astype(np.int32)  # noqa: E731
    data = TokenizedData(ids=["x"], prompts=[ids(PROMPT)], chosen=[ids(length)], rejected=[ids(length)])
    cfg = RunConfig.from_dict({"objective": "redi", "alpha": 0.8})
    batch = Collator(data, 0, padding_free=False, sft_units=False)([{"index": 0, "weight": 1.0}])
    chunk_size = chunk if method == "chunked" else 0
    baseline = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    tok = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                            attention_mask=batch["attention_mask"], chunk_size=chunk_size)
    loss = batch_objective(cfg, tok, batch).loss
    loss.backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    gib = 2**30
    return {
        "method": method,
        "response_tokens": length,
        "tokens": int(batch["input_ids"].numel()),
        "seconds": round(seconds, 3),
        "peak_rss_gib": round(peak / gib, 3),
        "baseline_rss_gib": round(baseline / gib, 3),
        "step_peak_gib": round((peak - baseline) / gib, 3),
        "loss": float(loss),
        "fp32_logits_gib": round(batch["input_ids"].numel() * VOCAB * 4 / gib, 3),
        "threads": torch.get_num_threads(),
    }


def run_one(method, length, threads, chunk) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(length), "--threads", str(threads),
           "--chunk", str(chunk)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"method": method, "response_tokens": length, "error": proc.stderr[-2000:],
                "returncode": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict(points: list[tuple[int, float]], length: int) -> float | None:
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points[-2], points[-1]
    return y1 + (y1 - y0) / (x1 - x0) * (length - x1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "LENGTH"), help=argparse.SUPPRESS)
    ap.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--limit-gib", type=float, default=20.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.threads, args.chunk)))
        return 0

    import psutil

    lengths = [int(x) for x in args.lengths.split(",")]
    results = []
    naive_points: list[tuple[int, float]] = []
    for length in lengths:
        results.append(run_one("chunked", length, args.threads, args.chunk))
        print(json.dumps(results[-1]), file=sys.stderr)
        available = psutil.virtual_memory().available / 2**30
        limit = min(args.limit_gib, available - 2.0)
        guess = predict(naive_points, length)
        if guess is not None and guess > limit:
            results.append({"method": "naive", "response_tokens": length, "skipped": True,
                            "predicted_peak_rss_gib": round(guess, 2), "limit_gib": round(limit, 2)})
        else:
            r = run_one("naive", length, args.threads, args.chunk)
            results.append(r)
            if "peak_rss_gib" in r:
                naive_points.append((length, r["peak_rss_gib"]))
        print(json.dumps(results[-1]), file=sys.stderr)

    def get(method, length):
        return next((r for r in results if r["method"] == method and r["response_tokens"] == length), {})

    summary = []
    for length in lengths:
        c, n = get("chunked", length), get("naive", length)
        naive_peak = n.get("peak_rss_gib", n.get("predicted_peak_rss_gib"))
        row = {"response_tokens": length, "chunked_peak_gib": c.get("peak_rss_gib"),
               "chunked_seconds": c.get("seconds"), "naive_peak_gib": naive_peak,
               "naive_measured": "peak_rss_gib" in n, "naive_seconds": n.get("seconds")}
        if naive_peak and c.get("peak_rss_gib"):
            row["chunked_over_naive"] = round(c["peak_rss_gib"] / naive_peak, 3)
        summary.append(row)
    doc = {
        "benchmark": "REDI loss forward+backward, one pair (chosen and rejected of equal length)",
        "model": {"vocab": VOCAB, "hidden": 64, "layers": 1, "dtype": "float32", "prompt_tokens": PROMPT},
        "chunk_size": args.chunk,
        "threads": args.threads,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "results": results,
        "summary": summary,
    }
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
