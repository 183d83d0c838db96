"""One evaluation: a model x a benchmark -> ``samples.parquet``, ``metrics.json``, ``metrics.csv``.

Output folder (``results/eval/{run}/{ckpt}/{benchmark}/``):

* ``generations.jsonl`` - the resume journal: one line per finished sample, appended and
  fsync'ed after every batch (a kill loses at most the batch in flight; a torn last line is
  dropped). ``generations.meta.json`` holds the fingerprint the journal belongs to (model
  weights' names/sizes/mtimes, temperature, top-p, max new tokens, seed); a journal with another
  fingerprint is moved aside to ``generations.jsonl.stale`` and generation starts over. Each
  line also carries a hash of its prompt ids, so a changed prompt or tokenizer is regenerated.
  Samples are keyed by (problem id, sample index): raising ``n_samples`` later re-uses the
  first ones. The journal is kept after success (it is the raw record of the run).
* ``samples.parquet`` - ``problem_id, sample_index, text, extracted, correct, status, length,
  finish_reason`` (written atomically once all samples exist and are scored).
* ``metrics.json`` / ``metrics.csv`` - see :mod:`redi.eval.metrics`; written last (atomically),
  so their presence means the evaluation is complete.

Timing: ``generation_seconds`` sums the batch wall times recorded in the journal (over every
session that contributed); ``wall_seconds`` is this call's wall time plus the generation time
of re-used samples; ``tokens_per_second = generated_tokens / generation_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from redi.progress import Progress

from redi import tracking
from redi.eval.benchmarks import Problem, load_benchmark
from redi.eval.generate import (
    Generation,
    GenerationJob,
    SamplingConfig,
    contiguous_runs,
    generation_budget,
    make_backend,
    model_context_length,
)

log = logging.getLogger(__name__)

JOURNAL = "generations.jsonl"
JOURNAL_META = "generations.meta.json"
SAMPLES = "samples.parquet"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def checkpoint_step(checkpoint: str) -> int | None:
    """``"step-200"`` (or ``"checkpoint-200"``) -> 200; anything else (``"final"``) -> None."""
    m = re.fullmatch(r"(?:step|checkpoint)-(\d+)", str(checkpoint))
    return int(m.group(1)) if m else None


def model_fingerprint(model_path: str | os.PathLike) -> dict:
    """Identity of a model for the resume journal: a local directory's weight/config files
    (name, size, mtime), or the name of a hub model."""
    path = Path(model_path)
    if not path.is_dir():
        return {"model": str(model_path)}
    files = []
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in WEIGHT_SUFFIXES or f.name == "config.json"):
            st = f.stat()
            files.append([f.name, st.st_size, st.st_mtime_ns])
    return {"model": str(path.resolve()), "files": files}


def prompt_hash(ids: Iterable[int]) -> str:
    return hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Journal:
    """Append-only JSONL of finished generations for one output folder (see module doc)."""

    def __init__(self, out_dir: Path, fingerprint: dict, *, resume: bool = True):
        self.path = out_dir / JOURNAL
        self.meta_path = out_dir / JOURNAL_META
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = None
        if self.meta_path.is_file():
            try:
                meta = json.loads(self.meta_path.read_text())
            except ValueError:
                meta = None
        if self.path.exists() and (not resume or meta != fingerprint):
            if resume:
                log.warning("%s belongs to another model/sampling setup; starting over", self.path)
            os.replace(self.path, self.path.with_name(JOURNAL + ".stale"))
        if meta != fingerprint or not self.path.exists():
            _atomic_write_text(self.meta_path, json.dumps(fingerprint, indent=1, sort_keys=True))
        self._repair_tail()

    def _repair_tail(self) -> None:
        """Drop a torn last line (the process was killed mid-write)."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                fh.truncate(cut)
                log.warning("dropped a torn line at the end of %s", self.path)

    def load(self) -> dict[tuple[str, int], dict]:
        """Finished records by (problem_id, sample_index); first occurrence wins."""
        records: dict[tuple[str, int], dict] = {}
        if not self.path.exists():
            return records
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    key = (rec["problem_id"], int(rec["sample_index"]))
                except (ValueError, KeyError, TypeError):
                    continue
                records.setdefault(key, rec)
        return records

    def append(self, records: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def plan_jobs(
    problems: list[Problem],
    prompts: dict[str, list[int]],
    done: dict[tuple[str, int], dict],
    n_samples: int,
) -> list[GenerationJob]:
    jobs = []
    for p in problems:
        missing = [i for i in range(n_samples) if (p.problem_id, i) not in done]
        for run in contiguous_runs(missing):
            jobs.append(GenerationJob(p.problem_id, tuple(prompts[p.problem_id]), run))
    return jobs


def evaluate(
    model_path: str | os.PathLike,
    benchmark_name: str,
    benchmark_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    run: str,
    checkpoint: str,
    n_samples: int,
    backend: str = "transformers",
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int = 32768,
    seed: int = 0,
    batch_size: int | None = None,
    verify_timeout_s: float = 5.0,
    threads: int = 1,
    limit: int | None = None,
    step: int | None = None,
    verify_workers: int | None = None,
    verify_memory_mb: int = 2048,
    backend_options: dict | None = None,
    trust_remote_code: bool = False,
    resume: bool = True,
    tokenizer=None,
) -> dict:
    """Generate ``n_samples`` per problem, score them, write samples + metrics; return metrics.

    ``threads`` is the job's CPU budget: torch's thread count is the caller's business
    (``redi.runtime.set_threads``); here it sizes the Math-Verify worker pool unless
    ``verify_workers`` is given. ``batch_size``: sequences per batch for transformers (default
    8), prompts per ``generate`` call for vLLM (default 64). ``resume=False`` discards earlier
    generations in ``out_dir``.
    """
    from transformers import AutoTokenizer

    from redi.eval.metrics import summarise, tidy_row
    from redi.eval.score import score_generations
    from redi.prompts import prompt_token_ids

    t_start = time.perf_counter()
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampling = SamplingConfig(
        temperature=float(temperature),
        top_p=float(top_p),
        max_new_tokens=int(max_new_tokens),
        seed=int(seed),
    )
    problems = load_benchmark(benchmark_path, limit=limit)
    if not problems:
        raise ValueError(f"benchmark {benchmark_name} ({benchmark_path}) has no problems")
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(
        str(model_path), trust_remote_code=trust_remote_code
    )
    prompts = {p.problem_id: prompt_token_ids(tokenizer, p.problem) for p in problems}
    # every sample gets the full recorded budget, or the job stops here (issue 13, item 10)
    backend_options = dict(backend_options or {})
    budget = generation_budget(
        [len(ids) for ids in prompts.values()],
        sampling.max_new_tokens,
        backend_options.get("max_model_len") or model_context_length(model_path),
        where=f"{run}/{checkpoint}/{benchmark_name} ({model_path})",
    )
    if backend == "vllm":
        backend_options["max_model_len"] = budget["max_model_len"]  # explicit, never the model's
    hashes = {pid: prompt_hash(ids) for pid, ids in prompts.items()}

    fingerprint = {"model": model_fingerprint(model_path), "sampling": asdict(sampling)}
    journal = Journal(out, fingerprint, resume=resume)
    done = {
        key: rec
        for key, rec in journal.load().items()
        if key[0] in hashes and rec.get("prompt_sha") == hashes[key[0]]
    }
    reused_keys = {k for k in done if k[1] < n_samples}
    reused_seconds = sum(float(done[k].get("seconds", 0.0)) for k in reused_keys)
    jobs = plan_jobs(problems, prompts, done, n_samples)
    n_todo = sum(len(j.sample_indices) for j in jobs)
    log.info(
        "%s/%s/%s: %d problems x %d samples, %d re-used, %d to generate (%s)",
        run,
        checkpoint,
        benchmark_name,
        len(problems),
        n_samples,
        len(reused_keys),
        n_todo,
        backend,
    )
    if jobs:
        progress = Progress(f"generation {run}/{checkpoint}/{benchmark_name}", len(problems) * n_samples,
                            "samples", logger=log, start_done=len(problems) * n_samples - n_todo)

        def on_batch(gens: list[Generation], seconds: float) -> None:
            share = seconds / max(1, len(gens))
            recs = [
                {**g.to_dict(), "prompt_sha": hashes[g.problem_id], "seconds": share}
                for g in gens
            ]
            journal.append(recs)
            for r in recs:
                done.setdefault((r["problem_id"], r["sample_index"]), r)
            progress.update(len(gens), tokens=sum(g.length for g in gens))

        engine = make_backend(
            backend,
            model_path,
            tokenizer=tokenizer,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
            **(backend_options or {}),
        )
        try:
            engine.generate(jobs, sampling, on_batch)
        finally:
            engine.close()
            del engine
            import gc

            gc.collect()  # free the model before the verifier forks its workers

    records = []
    for p in problems:
        for i in range(n_samples):
            rec = done.get((p.problem_id, i))
            if rec is None:
                raise RuntimeError(f"sample {i} of problem {p.problem_id} was not generated")
            records.append(rec)
    generation_seconds = sum(float(r.get("seconds", 0.0)) for r in records)

    workers = int(verify_workers) if verify_workers else max(1, int(threads))
    samples = score_generations(
        problems, records, timeout_s=verify_timeout_s, workers=workers, memory_mb=verify_memory_mb
    )
    tmp = out / f".{SAMPLES}.tmp"
    samples.to_parquet(tmp, index=False)
    os.replace(tmp, out / SAMPLES)

    summary = summarise(samples, n_samples)
    wall = time.perf_counter() - t_start + reused_seconds
    metrics = {
        "run": run,
        "checkpoint": checkpoint,
        "step": step if step is not None else checkpoint_step(checkpoint),
        "benchmark": benchmark_name,
        "model_path": str(model_path),
        **summary,
        "wall_seconds": wall,
        "generation_seconds": generation_seconds,
        "tokens_per_second": (
            summary["generated_tokens"] / generation_seconds if generation_seconds > 0 else None
        ),
        "backend": backend,
        "sampling": asdict(sampling),
        "generation_budget": budget,
        "verify_timeout_s": float(verify_timeout_s),
        "reused_samples": len(reused_keys),
        "benchmark_path": str(benchmark_path),
        "limit": limit,
    }
    from redi import provenance

    metrics["provenance"] = provenance.record(
        model=model_path,
        data={"benchmark": benchmark_path},
        config={"backend": backend, "sampling": asdict(sampling), "n_samples": n_samples, "limit": limit,
                "verify_timeout_s": float(verify_timeout_s), "backend_options": backend_options or {}},
    )
    import pandas as pd

    csv_tmp = out / f".{METRICS_CSV}.tmp"
    pd.DataFrame([tidy_row(metrics)]).to_csv(csv_tmp, index=False)
    os.replace(csv_tmp, out / METRICS_CSV)
    _atomic_write_text(out / METRICS_JSON, json.dumps(metrics, indent=2) + "\n")
    run_dir = tracking.run_dir_of(model_path)
    if run_dir is not None:  # a checkpoint's accuracy lands on its run's live curves
        tracking.log_evaluation(run_dir, metrics)
    log.info(
        "%s/%s/%s: pass@1 %.4f +- %s over %d samples (%d truncated, %d timeouts)",
        run,
        checkpoint,
        benchmark_name,
        metrics["pass@1"],
        "n/a" if metrics["sem"] is None else f"{metrics['sem']:.4f}",  # SEM undefined for k < 2
        n_samples,
        metrics["truncated"],
        metrics["timeouts"],
    )
    return metrics
