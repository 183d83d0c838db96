"""Snakemake adapter: evaluate one model on one benchmark (``redi.eval.run.evaluate``).

input:  ``model`` (model dir, optional), ``best`` (best.json, optional: checkpoint ``best``
        evaluates the path it names), the benchmark file named after the benchmark
        (``{bench: path}``) or ``benchmark``.
params: ``run``, ``checkpoint``, ``model_path`` (optional; wins over inputs), ``sampling``
        (``temperature, top_p, max_new_tokens, seed, n_samples, limit``), ``eval`` (the
        ``evaluation`` config: ``backend, batch_size, verify_timeout_s, vllm``), optional
        ``benchmark`` / ``benchmark_path`` / ``n_samples`` / ``backend`` / ``step``.
output: ``metrics`` (metrics.json; samples.parquet and metrics.csv are written beside it).
"""

import json
from pathlib import Path

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)

import logging  # noqa: E402

from redi.eval.run import evaluate  # noqa: E402
from redi.runtime import gpu_lease, require_cuda  # noqa: E402


def _get(namedlist, key, default=None):
    """A named entry of a Snakemake Namedlist, or ``default``."""
    return namedlist.get(key, default) if key else default


params, inputs = snakemake.params, snakemake.input
cfg = dict(_get(params, "eval") or {})
sampling = dict(_get(params, "sampling") or {})
run = _get(params, "run") or snakemake.wildcards.get("run")
checkpoint = _get(params, "checkpoint") or snakemake.wildcards.get("ckpt")

bench = _get(params, "benchmark") or snakemake.wildcards.get("bench")
bench_path = _get(params, "benchmark_path") or _get(inputs, bench) or _get(inputs, "benchmark")
if not bench or not bench_path:
    raise ValueError("eval_run: no benchmark name/path (params.benchmark[_path] or input.<bench>)")

step = _get(params, "step")
model_path = _get(params, "model_path")
best = _get(inputs, "best")
if model_path is None and checkpoint == "best" and best:
    choice = json.loads(Path(best).read_text())
    model_path, step = choice["path"], choice.get("step") if step is None else step
if model_path is None:
    model_path = _get(inputs, "model")
if model_path is None:
    raise ValueError("eval_run: no model (params.model_path, input.best or input.model)")

backend = _get(params, "backend") or cfg.get("backend", "transformers")
metrics_path = Path(snakemake.output.metrics)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
with gpu_lease(gpus, log=logging.getLogger("eval_run").info):  # local runs: exclusive GPUs
    if backend != "vllm":  # vLLM may run in its own interpreter (evaluation.vllm.python)
        require_cuda(gpus, f"evaluation of {run}/{checkpoint} on {bench}")
    evaluate(
        str(model_path),
        bench,
        str(bench_path),
        metrics_path.parent,
        run=run,
        checkpoint=checkpoint,
        step=step,
        n_samples=int(_get(params, "n_samples") or sampling["n_samples"]),
        backend=backend,
        temperature=float(sampling.get("temperature", 0.6)),
        top_p=float(sampling.get("top_p", 0.95)),
        max_new_tokens=int(sampling.get("max_new_tokens", 32768)),
        seed=int(sampling.get("seed", 0)),
        limit=sampling.get("limit"),
        batch_size=cfg.get("batch_size"),
        verify_timeout_s=float(cfg.get("verify_timeout_s", 5.0)),
        threads=snakemake.threads,
        backend_options=dict(cfg.get("vllm") or {}) if backend == "vllm" else None,
    )
if metrics_path.name != "metrics.json" or not metrics_path.exists():
    raise RuntimeError(f"eval_run: expected {metrics_path} to be the written metrics.json")
