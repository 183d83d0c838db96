"""Generation throughput (generated tokens/s) of the transformers backend on the tiny student.

The student has the demo's architecture (``config/config.yaml`` ``student.tiny``: Qwen2, hidden
128, 4 layers, 4/2 heads) with random weights, built by the pipeline's own builder
(``redi.model.student``: tokenizer trained on the synthetic corpus, chat template, config keys).
Each setting (torch threads x prompts per batch) runs in a fresh process (thread pools are fixed
per process): a short warm-up call, then ``prompts`` Open-R1 prompts x ``samples`` samples with
``max_new_tokens`` (the evaluation's ``SamplingConfig`` otherwise), through
``redi.eval.backends.TransformersBackend`` exactly as the evaluation stage calls it.
A random model rarely emits the stop token, so nearly every sample runs to ``max_new_tokens``
(``truncated`` counts them).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchlib import REPO, interleaved, median, ratio, rnd, run_worker


def build(out_dir: str) -> dict:
    import pandas as pd
    import yaml

    from redi.data.synthetic import generate
    from redi.model.student import build_tiny_student

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows, _ = generate(dict(config["corpus"]["synthetic"], malformed_rows=0))  # the demo's corpus
    #   trains the tokenizer, as in the workflow
    canonical = Path(f"{out_dir}.corpus.parquet")
    canonical.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"problem": [r["problem"] for r in rows], "generations": [list(r["generations"]) for r in rows]}
                 ).to_parquet(canonical)  # fmt: skip
    build_tiny_student(str(canonical), out_dir, config["student"]["tiny"])
    return {"path": out_dir, "config": config["student"]["tiny"]}


def measure(model: str, threads: int, batch_size: int, prompts: int, samples: int, max_new_tokens: int) -> dict:
    from benchlib import set_threads

    set_threads(threads)
    import torch

    from redi.eval.backends import TransformersBackend
    from redi.eval.generate import GenerationJob, SamplingConfig
    from redi.prompts import prompt_token_ids

    backend = TransformersBackend(model, batch_size=batch_size, device="cpu")
    problems = [f"Let $x = {k}$. Compute $x^2 + {k + 1}x + {2 * k}$ and simplify the result." for k in range(prompts)]
    jobs = [
        GenerationJob(f"p{k}", tuple(prompt_token_ids(backend.tokenizer, p)), tuple(range(samples)))
        for k, p in enumerate(problems)
    ]
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)  # the evaluation's temperature, top-p, seed
    backend.generate(
        [GenerationJob("w", jobs[0].prompt_ids, (0,))], SamplingConfig(max_new_tokens=8), lambda g, s: None
    )
    lengths: list[int] = []
    t0 = time.perf_counter()
    backend.generate(jobs, sampling, lambda gens, secs: lengths.extend(g.length for g in gens))
    seconds = time.perf_counter() - t0
    return {
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "batch_size_prompts": batch_size,
        "sequences_per_batch": batch_size * samples,
        "sequences": len(lengths),
        "prompt_tokens": len(jobs[0].prompt_ids),
        "generated_tokens": sum(lengths),
        "truncated": sum(1 for n in lengths if n == max_new_tokens),
        "seconds": rnd(seconds, 3),
        "tokens_per_s": rnd(sum(lengths) / seconds, 1),
    }


def run(quick: bool, repeats: int, workdir: str, log=print) -> dict:
    import os

    if quick:
        prompts, samples, max_new, settings = 2, 2, 16, [(1, 2)]
    else:
        prompts, samples, max_new, settings = 16, 4, 128, [(1, 1), (1, 16), (2, 16)]
    model = os.path.join(workdir, "gen-student")
    info = run_worker("bench_generate:build", {"out_dir": model})
    if "error" in info:
        return {"error": "building the student failed", "detail": info}
    variants = {
        f"threads{t}_batch{b}": (
            lambda t=t, b=b: run_worker(
                "bench_generate:measure",
                {
                    "model": model,
                    "threads": t,
                    "batch_size": b,
                    "prompts": prompts,
                    "samples": samples,
                    "max_new_tokens": max_new,
                },
                threads=t,
                timeout=3600,
            )
        )
        for t, b in settings
    }
    log(f"  {prompts} prompts x {samples} samples x {max_new} new tokens: {', '.join(variants)}")
    runs = interleaved(variants, repeats, log)
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "tokens_per_s_median": rnd(median([r.get("tokens_per_s") for r in rs]), 1),
            "tokens_per_s_all": [r.get("tokens_per_s") for r in rs],
            "generated_tokens": next((r["generated_tokens"] for r in rs if "generated_tokens" in r), None),
            "truncated": next((r["truncated"] for r in rs if "truncated" in r), None),
            "errors": [r["error"] for r in rs if "error" in r],
        }
    first = next(iter(summary))
    for name in summary:
        summary[name]["ratio_vs_" + first] = ratio(
            summary[name]["tokens_per_s_median"], summary[first]["tokens_per_s_median"]
        )
    return {
        "backend": "transformers",
        "device": "cpu",
        "model": info.get("config"),
        "prompts": prompts,
        "samples_per_prompt": samples,
        "max_new_tokens": max_new,
        "repeats": repeats,
        "settings": summary,
        "runs": runs,
    }
