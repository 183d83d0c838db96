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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from redi import tracking
from redi.eval.backends import make_backend
from redi.eval.benchmarks import Problem, load_benchmark, split_half
from redi.eval.config import EvalConfig
from redi.eval.generate import (
    Generation,
    GenerationJob,
    contiguous_runs,
    generation_budget,
    model_context_length,
)
from redi.files import atomic_path, write_json_atomic, write_text_atomic
from redi.progress import Progress

log = logging.getLogger(__name__)

JOURNAL = "generations.jsonl"
JOURNAL_META = "generations.meta.json"
SAMPLES = "samples.parquet"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def require_gpus(config: EvalConfig | dict, gpus: int, what: str) -> None:
    """Fail fast, with training's message (:func:`redi.runtime.require_cuda`), when a job that
    requests ``gpus`` cannot use them: checked in the interpreter that will generate (vLLM's own
    virtualenv when ``evaluation.vllm.python`` names one, else this one) before any engine starts.

    Raises:
        RuntimeError: naming the torch build, the driver and ``CUDA_VISIBLE_DEVICES``.
    """
    from redi.runtime import require_cuda

    cfg = EvalConfig.from_dict(config)
    python = (cfg.vllm or {}).get("python") if cfg.backend == "vllm" else None
    require_cuda(int(gpus), what, python=python)


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
            write_text_atomic(self.meta_path, json.dumps(fingerprint, indent=1, sort_keys=True))
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
    config: EvalConfig | dict | None = None,
    *,
    run: str,
    checkpoint: str,
    step: int | None = None,
    threads: int = 1,
    resume: bool = True,
    tokenizer=None,
    engine=None,
    over_budget: str = "refuse",
) -> dict:
    """Generate ``config.n_samples`` per problem, score them, write samples + metrics; return
    the metrics (the dict written to ``metrics.json``).

    ``config``: an :class:`~redi.eval.config.EvalConfig` (or its dict). The rest names the job:
    ``run``/``checkpoint``/``step`` label the record (``step`` default: parsed from
    ``checkpoint``); ``threads`` is the job's CPU budget (torch's thread count is the caller's
    business, ``redi.runtime.set_threads``; here it sizes the Math-Verify pool unless
    ``config.verify_workers`` is set); ``resume=False`` discards earlier generations in
    ``out_dir``; ``tokenizer`` replaces the model's own (tests); ``engine``: a backend already
    built on ``model_path`` with ``config``'s backend settings (:func:`redi.eval.group.evaluate_run`
    loads a checkpoint once for all its benchmarks), used and left open; default: one is built
    here and closed after generation. ``over_budget``: what a prompt whose length plus
    ``max_new_tokens`` exceeds the context does: ``"refuse"`` (evaluation: the job stops before
    generating, since a benchmark's score must cover every problem) or ``"skip"`` (teacher
    sampling: the problem is left out, logged and listed in the metrics under
    ``skipped_over_budget`` as ``{problem_id, prompt_tokens}``; every other sample gets the full
    budget).

    Raises:
        ValueError: an empty benchmark, an unknown config key, a budget that does not fit the
            context (:func:`~redi.eval.generate.generation_budget`; with ``"skip"``, only when no
            problem fits).
    """
    t_start = time.perf_counter()
    cfg = EvalConfig.from_dict(config)
    job = _Job(str(model_path), benchmark_name, str(benchmark_path), Path(out_dir), run, checkpoint, step)
    job.out.mkdir(parents=True, exist_ok=True)

    problems = _load_problems(job, cfg)
    tokenizer = tokenizer or _load_tokenizer(job, cfg)
    prompts = _prompts(problems, tokenizer, cfg.force_think)
    skipped = []
    if over_budget == "skip":
        problems, prompts, skipped = _drop_over_budget(job, cfg, problems, prompts)
    elif over_budget != "refuse":
        raise ValueError(f"over_budget must be 'refuse' or 'skip', got {over_budget!r}")
    budget, options = _check_budget(job, cfg, prompts)

    hashes = {pid: prompt_hash(ids) for pid, ids in prompts.items()}
    journal = Journal(job.out, _fingerprint(job, cfg), resume=resume)
    done = _reusable(journal, hashes)
    reused = {k for k in done if k[1] < cfg.n_samples}
    jobs = plan_jobs(problems, prompts, done, cfg.n_samples)
    _generate(job, cfg, jobs, options, tokenizer, journal, done, hashes, n_total=len(problems) * cfg.n_samples,
              engine=engine)  # fmt: skip
    records = _collect(problems, done, cfg.n_samples)

    samples = _score(problems, records, cfg, threads)
    wall = time.perf_counter() - t_start + sum(float(done[k].get("seconds", 0.0)) for k in reused)
    metrics = _metrics(job, cfg, samples, records, budget, options, reused=len(reused), wall=wall)
    if over_budget == "skip":
        metrics["skipped_over_budget"] = skipped
    _write(job.out, samples, metrics)
    _report(job, cfg, metrics)
    return metrics


# ----------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class _Job:
    """What one evaluation is of, and where it writes (labels of the record)."""

    model_path: str
    benchmark: str
    benchmark_path: str
    out: Path
    run: str
    checkpoint: str
    step: int | None

    @property
    def where(self) -> str:
        return f"{self.run}/{self.checkpoint}/{self.benchmark}"


def _load_problems(job: _Job, cfg: EvalConfig) -> list[Problem]:
    problems = load_benchmark(job.benchmark_path, limit=cfg.limit)
    if job.benchmark in cfg.split:
        problems = split_half(problems, cfg.split[job.benchmark])
    if not problems:
        raise ValueError(f"benchmark {job.benchmark} ({job.benchmark_path}) has no problems")
    return problems


def _trust(model_path, cfg: EvalConfig) -> bool:
    """evaluation's trust_remote_code, or the one the student was prepared with."""
    from redi.model.base import trusts_remote_code

    return trusts_remote_code(model_path, cfg.trust_remote_code)


def _load_tokenizer(job: _Job, cfg: EvalConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(job.model_path, trust_remote_code=_trust(job.model_path, cfg))


def _prompts(problems: list[Problem], tokenizer, think: bool = True) -> dict[str, list[int]]:
    """Prompt ids by problem id, through the student's chat template (:mod:`redi.prompts`);
    ``think``: the answer is opened with ``<think>`` (``EvalConfig.force_think``)."""
    from redi.prompts import prompt_token_ids

    return {p.problem_id: prompt_token_ids(tokenizer, p.problem, think=think) for p in problems}


def _drop_over_budget(job: _Job, cfg: EvalConfig, problems: list[Problem], prompts: dict[str, list[int]]):
    """The problems whose prompt + ``max_new_tokens`` fits the context, their prompts, and the
    left-out ones as ``{problem_id, prompt_tokens}`` (logged).

    Raises:
        ValueError: no problem fits (naming the shortest prompt, the budget and the context).
    """
    context = cfg.max_model_len or model_context_length(job.model_path)
    if context is None:
        return problems, prompts, []
    budget = cfg.sampling.max_new_tokens
    over = [p for p in problems if len(prompts[p.problem_id]) + budget > context]
    if not over:
        return problems, prompts, []
    skipped = [{"problem_id": p.problem_id, "prompt_tokens": len(prompts[p.problem_id])} for p in over]
    log.warning("%s: skipping %d of %d problem(s) whose prompt + max_new_tokens (%d) exceeds the context (%d), "
                "e.g. %s (%d prompt tokens)", job.where, len(over), len(problems), budget, context,
                skipped[0]["problem_id"], skipped[0]["prompt_tokens"])  # fmt: skip
    if len(over) == len(problems):
        shortest = min(s["prompt_tokens"] for s in skipped)
        raise ValueError(f"{job.where} ({job.model_path}): no problem fits: the shortest prompt ({shortest} tokens) "
                         f"+ max_new_tokens ({budget}) exceeds the context ({context})")  # fmt: skip
    names = {p.problem_id for p in over}
    kept = [p for p in problems if p.problem_id not in names]
    return kept, {pid: ids for pid, ids in prompts.items() if pid not in names}, skipped


def _check_budget(job: _Job, cfg: EvalConfig, prompts: dict[str, list[int]]) -> tuple[dict, dict]:
    """Every sample gets the full recorded budget, or the job stops here.

    Returns the budget (for the metrics) and the backend's options; vLLM is given the context
    explicitly, never the model's own default."""
    budget = generation_budget(
        [len(ids) for ids in prompts.values()],
        cfg.sampling.max_new_tokens,
        cfg.max_model_len or model_context_length(job.model_path),
        where=f"{job.where} ({job.model_path})",
    )
    return budget, engine_options(cfg, job.model_path)


def engine_options(cfg: EvalConfig, model_path: str | os.PathLike) -> dict:
    """The backend's options for ``model_path`` (a copy): vLLM gets the context explicitly
    (``vllm.max_model_len``, else the model's ``max_position_embeddings``), never its default."""
    options = cfg.backend_options
    if cfg.backend == "vllm":
        options["max_model_len"] = cfg.max_model_len or model_context_length(model_path)
    return options


def _fingerprint(job: _Job, cfg: EvalConfig) -> dict:
    """The journal's identity: the model's files and the sampling settings."""
    return {"model": model_fingerprint(job.model_path), "sampling": asdict(cfg.sampling)}


def _reusable(journal: Journal, hashes: dict[str, str]) -> dict[tuple[str, int], dict]:
    """Journal records of this benchmark's problems whose prompt ids are unchanged."""
    return {
        key: rec
        for key, rec in journal.load().items()
        if key[0] in hashes and rec.get("prompt_sha") == hashes[key[0]]
    }


def _generate(job: _Job, cfg: EvalConfig, jobs: list[GenerationJob], options: dict, tokenizer,
              journal: Journal, done: dict, hashes: dict[str, str], n_total: int, engine=None) -> None:  # fmt: skip
    """Generate the missing samples, journalling each batch into ``done`` as it finishes (with
    ``engine`` if given: the caller's, left open)."""
    n_todo = sum(len(j.sample_indices) for j in jobs)
    log.info("%s: %d problems x %d samples, %d re-used, %d to generate (%s)", job.where, len(hashes),
             cfg.n_samples, n_total - n_todo, n_todo, cfg.backend)  # fmt: skip
    if not jobs:
        return
    progress = Progress(f"generation {job.where}", n_total, "samples", logger=log, start_done=n_total - n_todo)

    def on_batch(gens: list[Generation], seconds: float) -> None:
        share = seconds / max(1, len(gens))
        recs = [{**g.to_dict(), "prompt_sha": hashes[g.problem_id], "seconds": share} for g in gens]
        journal.append(recs)
        for r in recs:
            done.setdefault((r["problem_id"], r["sample_index"]), r)
        progress.update(len(gens), tokens=sum(g.length for g in gens))

    if engine is not None:
        engine.generate(jobs, cfg.sampling, on_batch)
        return
    engine = make_backend(cfg.backend, job.model_path, tokenizer=tokenizer, batch_size=cfg.batch_size,
                          trust_remote_code=_trust(job.model_path, cfg), **options)  # fmt: skip
    try:
        engine.generate(jobs, cfg.sampling, on_batch)
    finally:
        engine.close()
        del engine
        import gc

        gc.collect()  # free the model before the verifier forks its workers


def _collect(problems: list[Problem], done: dict, n_samples: int) -> list[dict]:
    """Every (problem, sample) record, in benchmark order."""
    records = []
    for p in problems:
        for i in range(n_samples):
            rec = done.get((p.problem_id, i))
            if rec is None:
                raise RuntimeError(f"sample {i} of problem {p.problem_id} was not generated")
            records.append(rec)
    return records


def _score(problems: list[Problem], records: list[dict], cfg: EvalConfig, threads: int):
    from redi.eval.score import score_generations

    workers = int(cfg.verify_workers) if cfg.verify_workers else max(1, int(threads))
    return score_generations(
        problems, records, timeout_s=cfg.verify_timeout_s, workers=workers, memory_mb=cfg.verify_memory_mb,
        require_think_close=cfg.force_think,
    )


def _metrics(job: _Job, cfg: EvalConfig, samples, records: list[dict], budget: dict, options: dict, *,
             reused: int, wall: float) -> dict:  # fmt: skip
    """``metrics.json``: labels, :func:`redi.eval.metrics.summarise`, timing, settings, provenance."""
    from redi import provenance
    from redi.eval.metrics import summarise

    summary = summarise(samples, cfg.n_samples)
    generation_seconds = sum(float(r.get("seconds", 0.0)) for r in records)
    sampling = asdict(cfg.sampling)
    metrics = {
        "run": job.run,
        "checkpoint": job.checkpoint,
        "step": job.step if job.step is not None else checkpoint_step(job.checkpoint),
        "benchmark": job.benchmark,
        "model_path": job.model_path,
        **summary,
        "wall_seconds": wall,
        "generation_seconds": generation_seconds,
        "tokens_per_second": (
            summary["generated_tokens"] / generation_seconds if generation_seconds > 0 else None
        ),
        "backend": cfg.backend,
        "sampling": sampling,
        "generation_budget": budget,
        "verify_timeout_s": cfg.verify_timeout_s,
        "reused_samples": reused,
        "benchmark_path": job.benchmark_path,
        "limit": cfg.limit,
        # which half of the benchmark (evaluation.held_out_selection), None = every problem
        "split": cfg.split.get(job.benchmark),
        "force_think": cfg.force_think,
    }
    if cfg.force_think and records and not any("</think>" in str(r.get("text", "")) for r in records):
        # a student that never learned R1's format (any untrained non-R1 student) cannot close
        # the forced <think>: its answers are never extracted, whatever it knows
        metrics["note"] = ("no sample closed the forced <think>: pass@1 measures the reasoning format, not the "
                           "answers; evaluate this model with force_think false (the untrained student's row: "
                           "evaluation.base_model_force_think false)")  # fmt: skip
        log.warning("%s: %s", job.where, metrics["note"])
    metrics["provenance"] = provenance.record(
        model=job.model_path,
        data={"benchmark": job.benchmark_path},
        config={"backend": cfg.backend, "sampling": sampling, "n_samples": cfg.n_samples, "limit": cfg.limit,
                "split": cfg.split.get(job.benchmark), "verify_timeout_s": cfg.verify_timeout_s,
                "backend_options": options, "force_think": cfg.force_think},
    )  # fmt: skip
    return metrics


def _write(out: Path, samples, metrics: dict) -> None:
    """``samples.parquet``, ``metrics.csv``, then ``metrics.json`` last (its presence means done)."""
    import pandas as pd

    from redi.eval.metrics import tidy_row

    with atomic_path(out / SAMPLES) as tmp:
        samples.to_parquet(tmp, index=False)
    with atomic_path(out / METRICS_CSV) as tmp:
        pd.DataFrame([tidy_row(metrics)]).to_csv(tmp, index=False)
    write_json_atomic(out / METRICS_JSON, metrics, indent=2, ensure_ascii=True)


def _report(job: _Job, cfg: EvalConfig, metrics: dict) -> None:
    """Log the result and put it on the run's live curves. Runs after the results are written:
    a tracker that fails (its package missing from the job's env, a full disk, a W&B outage) is
    logged as a warning and never fails the job, which would make Snakemake delete the
    evaluation's finished outputs."""
    run_dir = tracking.run_dir_of(job.model_path)
    if run_dir is not None:  # a checkpoint's accuracy lands on its run's live curves
        try:
            tracking.log_evaluation(run_dir, metrics)
        except Exception as error:  # noqa: BLE001 - any tracker failure; the results stand
            log.warning("%s: results written, but tracking failed (%s: %s); the live curves lack this point",
                        job.where, type(error).__name__, error, exc_info=True)  # fmt: skip
    log.info(
        "%s: pass@1 %.4f +- %s over %d samples (%d truncated, %d timeouts)",
        job.where,
        metrics["pass@1"],
        "n/a" if metrics["sem"] is None else f"{metrics['sem']:.4f}",  # SEM undefined for k < 2
        cfg.n_samples,
        metrics["truncated"],
        metrics["timeouts"],
    )
