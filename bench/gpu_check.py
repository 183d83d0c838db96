"""The GPU check: one command, under 8 minutes on one H200, that shows whether the training,
DeepSpeed and generation paths work on a GPU, how fast they are, and whether the paper's longest
pair fits. It is the project's one GPU suite (``bench/run.py --only gpu`` runs it with
``extended=True``: the TRL comparisons and the longest-pair search on top).

    python3 bench/gpu_check.py                # on the GPU machine (also: bench/gpu_check)
    python3 bench/gpu_check.py --smoke        # CPU, toy sizes: the same code end to end (CI)
    python3 bench/gpu_check.py --estimate bench/results/gpu-check-smoke-....json   # dry estimate

Items, in this order; each is its own process (``benchlib.run_worker``: fresh CUDA peak
counters; an out-of-memory in one item does not end the check):

1. ``environment``: versions, CUDA build, driver, device, ``redi.runtime.require_cuda(1)``.
2. ``matmul``: bf16 8192^3 matmul TFLOP/s: the *measured* ceiling of this card.
3. ``model``: a random-weight model of the exact Qwen2.5-Math-1.5B shape, saved in bf16.
4. ``steps/4096/{sft,redi}``: one timed optimizer step (after one warm-up step) through the real
   trainer (``redi.train.run.train``, run key ``save: false``: nothing is written but metrics);
   peak memory, tokens/s, MFU against both ceilings (below).
5. ``pair_19k``: one pair of 2 x 19,000 response tokens (chosen = rejected length), REDI, two
   steps of one pair each, on one card: the memory question of the paper's longest responses.
6. ``dpo_log2``: DPO's first loss with cached reference log-probs, single process, bf16 autocast:
   must equal log 2.
7. ``dpo_log2_zero2``: the paper's training mode: ``accelerate launch --config_file
   accelerate/zero2.yaml --num_processes 1`` (DeepSpeed ZeRO-2, bf16 weights, no autocast) over a
   reference file made by ``redi train ref-logps --accelerate-config`` in the same mode; first
   loss = log 2, and the ZeRO-2 rank's peak memory. Not run (with the reason) where deepspeed is
   not installed or that command lacks the option.
8. ``generate``: generation throughput through the project's transformers backend
   (``redi.eval.backends``, as the evaluation stage calls it; bf16, KV cache, paper sampling).
   ``generate_vllm`` (where vLLM imports): the vLLM backend with and without per-request seeds.
9. ``steps/8192/*``, ``steps/19000/*``.

An item runs only if its cost, estimated from the items already measured in this call (process
start-up, then compute scaled by model FLOPs), fits the time left of ``--budget-s``; otherwise it
is recorded "not run (budget)" with the estimate. The exit code says whether what ran was right:
1 if any item failed, 0 otherwise (items not run do not fail the check).

MFU = model FLOPs per second (``bench_gpu.model_flops``: ``6 N T`` + causal attention) divided by
(a) the matmul rate this check measured in item 2 (``mfu_vs_measured_matmul``) and (b) the
detected device's datasheet dense-bf16 peak (``mfu_vs_datasheet``: H100 SXM / H200 989.4, A100
312 TFLOP/s; ``bench_gpu.DATASHEET_BF16_TFLOPS``).

Every worker writes only inside a folder this process made for it and deletes after the worker
ends, also when the worker was killed at its timeout (its whole process group is killed).

Writes ``<out>/gpu-check-<date>-<host>.json`` and ``.md`` (default ``bench/results/``;
``--smoke`` defaults to ``bench/results/quick/``, which is not committed).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import benchlib  # noqa: E402
from bench_gpu import ARCHS, PROMPT_DIGITS, datasheet_tflops, model_flops  # noqa: E402

LOG2 = math.log(2)
ZERO2 = REPO / "accelerate" / "zero2.yaml"
PAIR_LENGTH = 19000
# first-guess costs (seconds on one H100/H200) of items nothing in this call has measured yet;
# every later estimate comes from the items this call measured
PRIOR_S = {
    "environment": 20,
    "matmul": 20,
    "model": 60,
    "data": 20,
    "steps": 60,
    "pair": 90,
    "dpo_log2": 60,
    "dpo_log2_zero2": 150,
    "generate": 60,
    "generate_vllm": 240,
}
SMOKE_PRIOR_S = {k: 15 for k in PRIOR_S}


# ---------------------------------------------------------------------------------------------
# workers (each runs in its own process)


def environment() -> dict:
    """Versions and the fail-fast CUDA check."""
    import accelerate
    import torch
    import transformers

    from redi.runtime import driver_version, require_cuda
    from redi.train.logprobs import fp32_output_mode

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "deepspeed": _version("deepspeed"),
        "vllm": _version("vllm"),
        "flash_attn": _version("flash-attn"),
        "driver": driver_version(),
        "cuda_available": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        # how the log-prob head gets fp32 logits from bf16 inputs here (redi.train.logprobs)
        "logprob_head_fp32_output": fp32_output_mode(dev, torch.bfloat16),
        "flex_attention": importlib.util.find_spec("torch.nn.attention.flex_attention") is not None,
    }
    try:
        require_cuda(1, "gpu_check")
        out["require_cuda"] = "ok"
    except RuntimeError as exc:
        out["require_cuda"] = str(exc)
    return out


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_peaks() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"cuda_peak_allocated_gib": None, "cuda_peak_reserved_gib": None}
    return {
        "cuda_peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
        "cuda_peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3),
    }


def _pair_run(settings: dict) -> dict:
    return {
        "beta": 0.1,
        "learning_rate": 1e-7,
        "max_steps": 1,
        "seed": 0,
        "save": False,
        "per_device_batch_size": 1,
        "global_batch_size": 2,
        "max_prompt_length": 800,
        "max_response_length": 40000,
        **settings.get("run_overrides", {}),
    }


def dpo_first_loss(model_dir: str, data_dir: str, out_dir: str, threads: int = 4) -> dict:
    """Reference log-probs, then one DPO step from the same model (single process, this machine's
    default numerics): the first loss is log 2."""
    from redi.train.reference import compute_reference_logps
    from redi.train.run import train

    work, out = Path(data_dir), Path(out_dir)
    settings = json.loads((work / "settings.json").read_text())
    run = dict(_pair_run(settings), objective="dpo")
    ref = out / "ref_logps.parquet"
    t0 = time.perf_counter()
    meta = compute_reference_logps(model_dir, str(work / "pref.jsonl"), str(ref), run, threads=threads)
    summary = train(
        run, model_dir, str(work / "pref.jsonl"), str(out / "run"), ref_logps_path=str(ref), threads=threads
    )
    first = json.loads((out / "run" / "metrics.jsonl").read_text().splitlines()[0])
    loss = float(first["loss"])
    return {
        "loss": loss,
        "log2": LOG2,
        "abs_error": abs(loss - LOG2),
        "precision": meta["precision"],
        "numerics": summary.get("numerics"),
        "seconds": round(time.perf_counter() - t0, 2),
        **_cuda_peaks(),
    }


def zero2_dpo_step(model_dir: str, data_dir: str, ref_path: str, out_dir: str, bf16: bool, threads: int = 4) -> dict:
    """One DPO step inside ``accelerate launch`` with the ZeRO-2 config (this process is the one
    DeepSpeed rank): first loss (log 2 expected) and the rank's peak memory."""
    import resource

    from redi.train.run import train

    work = Path(data_dir)
    settings = json.loads((work / "settings.json").read_text())
    run = dict(_pair_run(settings), objective="dpo", bf16=bf16)
    summary = train(run, model_dir, str(work / "pref.jsonl"), out_dir, ref_logps_path=ref_path, threads=threads)
    first = json.loads((Path(out_dir) / "metrics.jsonl").read_text().splitlines()[0])
    loss = float(first["loss"])
    return {
        "loss": loss,
        "log2": LOG2,
        "abs_error": abs(loss - LOG2),
        "numerics": summary.get("numerics"),
        "world_size": summary.get("world_size"),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        **_cuda_peaks(),
    }


def prepare_data_sets(model_dir: str, specs: list[dict]) -> dict:
    """Every data set of the check in one process (``bench_gpu.prepare_data`` per spec): one
    Python start and one tokenizer load instead of one per length."""
    from bench_gpu import prepare_data

    out = []
    for spec in specs:
        t = time.perf_counter()
        r = prepare_data(model_dir=model_dir, **spec)
        out.append(dict(r, workdir=spec["workdir"], seconds=round(time.perf_counter() - t, 3)))
    return {"sets": out}


def generate_backend(
    model_dir: str,
    backend: str,
    prompts: int,
    samples: int,
    max_new_tokens: int,
    options: dict | None = None,
    variants: list | None = None,
) -> dict:
    """Generated tokens/s through ``redi.eval.backends`` (the evaluation stage's own path): one
    warm-up call, then ``prompts`` x ``samples`` samples of up to ``max_new_tokens`` with the
    paper's sampling. ``variants``: option sets timed one after another on fresh engines (vLLM:
    per-request seeds on and off); the first is the default."""
    import gc

    from transformers import AutoTokenizer

    from redi.eval.backends import make_backend
    from redi.eval.config import SamplingConfig
    from redi.eval.generate import GenerationJob

    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Compute " + "3" * PROMPT_DIGITS}], add_generation_prompt=True, tokenize=False
    )
    ids = tuple(tok(text + "<think>\n", add_special_tokens=False)["input_ids"])
    jobs = [GenerationJob(f"p{k}", ids, tuple(range(samples))) for k in range(prompts)]
    out = {
        "backend": backend,
        "prompts": prompts,
        "samples": samples,
        "sequences": prompts * samples,
        "max_new_tokens": max_new_tokens,
        "prompt_tokens": len(ids),
        "runs": {},
    }
    for name, extra in variants or [["default", {}]]:
        engine = make_backend(backend, model_dir, tokenizer=tok, batch_size=prompts, **{**(options or {}), **extra})
        try:
            engine.generate(
                [GenerationJob("warm", ids, (0,))], SamplingConfig(max_new_tokens=8, seed=1), lambda g, s: None
            )
            gens: list = []
            t0 = time.perf_counter()
            engine.generate(
                jobs, SamplingConfig(max_new_tokens=max_new_tokens, seed=0), lambda g, s, out=gens: out.extend(g)
            )
            secs = time.perf_counter() - t0
        finally:
            engine.close()
            del engine
            gc.collect()
        n = sum(g.length + (g.finish_reason == "stop") for g in gens)  # the stop token was generated too
        out["runs"][name] = {
            "options": extra,
            "seconds": round(secs, 3),
            "generated_tokens": n,
            "samples_returned": len(gens),
            "stopped_early": sum(g.finish_reason == "stop" for g in gens),
            "tokens_per_s": round(n / secs, 1),
        }
    first = next(iter(out["runs"].values()))
    out.update(generated_tokens=first["generated_tokens"], tokens_per_s=first["tokens_per_s"], seconds=first["seconds"])
    return out


# ---------------------------------------------------------------------------------------------
# the check (parent process)


class Check:
    """The items above, in order, each run only when its estimated cost fits the time left."""

    def __init__(
        self,
        smoke: bool,
        budget_s: float,
        workdir: Path,
        log,
        *,
        extended: bool = False,
        repeats: int = 1,
        lengths: list[int] | None = None,
        vllm_python: str | None = None,
        save=None,
    ):
        self.smoke, self.budget_s, self.work, self.log = smoke, budget_s, Path(workdir), log
        self.extended, self.repeats, self.vllm_python = extended, max(1, int(repeats)), vllm_python
        self.save = save or (lambda: None)
        self.t0 = time.time()
        self.arch_name = "tiny" if smoke else "qwen2.5-math-1.5b"
        self.arch = ARCHS[self.arch_name]
        self.first_length = 64 if smoke else 4096
        self.pair_length = 192 if smoke else PAIR_LENGTH
        self.lengths = list(lengths) if lengths else ([64, 128, 192] if smoke else [4096, 8192, PAIR_LENGTH])
        self.items: dict = {}
        self.model: dict | None = None
        self.data_dirs: dict = {}
        self.data_s: dict = {}  # length -> seconds its data took
        (self.work / "items").mkdir(parents=True, exist_ok=True)

    # -- time ------------------------------------------------------------------------------------
    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def prior(self, kind: str) -> float:
        return (SMOKE_PRIOR_S if self.smoke else PRIOR_S)[kind]

    def _step_basis(self) -> dict | None:
        """The first measured training item: its fixed cost (process, model load) and compute rate."""
        for key in (f"steps/{self.first_length}/redi", f"steps/{self.first_length}/sft"):
            r = self.items.get(key) or {}
            if r.get("status") == "ran" and r.get("seconds"):
                per_step = r["seconds"] / max(1, r.get("steps_timed", 1))
                train_s = per_step * (r.get("steps_timed", 1) + r.get("warmup", 1))
                flops_per_step = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"]) / max(
                    1, r.get("steps_timed", 1)
                )
                return {"fixed_s": max(0.0, r["item_wall_s"] - train_s), "s_per_flop": per_step / flops_per_step}
        return None

    def estimate_steps(self, length: int, sequences_per_step: int, steps: int, equal: bool) -> float:
        """Seconds for ``steps`` optimizer steps at ``length`` (+ one warm-up), from the first
        measured training item of this call (else the prior)."""
        basis = self._step_basis()
        if basis is None:
            return self.prior("pair" if length >= PAIR_LENGTH else "steps")
        mean_len = length if equal else 0.75 * length
        tokens = sequences_per_step * mean_len
        flops = model_flops(self.arch, int(tokens), int(sequences_per_step * mean_len**2))
        return basis["fixed_s"] + (steps + 1) * flops * basis["s_per_flop"]

    def estimate_data(self, length: int) -> float:
        if any(k[0] == length and v for k, v in self.data_dirs.items()):
            return 0.0  # made already (item data)
        if not self.data_s:
            return self.prior("data")
        (l0, s0), *_ = self.data_s.items()
        return s0 * max(1.0, length / l0)

    # -- running items ---------------------------------------------------------------------------
    def scratch(self, key: str) -> Path:
        """A folder for one worker: made and deleted by this process (a killed worker cannot
        leave its ~25 GB of checkpoints behind)."""
        d = self.work / "items" / key.replace("/", "_")
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def not_run(self, key: str, reason: str) -> None:
        self.items[key] = {"status": "not run", "reason": reason}
        self.log(f"  {key}: not run ({reason})")
        self.save()

    def item(self, key: str, estimate_s: float, fn, judge=None) -> dict | None:
        """Run ``fn(scratch_dir)`` if ``estimate_s`` fits; record ran / failed (``judge(result)``
        returns a failure reason or None) / not run (budget)."""
        if self.left() < estimate_s:
            self.not_run(key, f"budget: estimated {estimate_s:.0f} s, {max(0.0, self.left()):.0f} s left")
            return None
        scratch = self.scratch(key)
        t = time.time()
        try:
            result = fn(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result = dict(result, item_wall_s=round(time.time() - t, 1), estimate_s=round(estimate_s, 1))
        why = result.get("error") or (judge(result) if judge else None)
        result["status"] = "failed" if why else "ran"
        if why:
            result["reason"] = str(why)[:500]
        self.items[key] = result
        self.log(
            f"  {key}: {result['status']}"
            f"{' (' + result['reason'][:200] + ')' if why else ''} {_brief(result)} ({result['item_wall_s']} s)"
        )
        self.save()
        return result

    def settings(self, pairs_per_step: int = 2) -> dict:
        on_gpu = not self.smoke
        return {
            "threads": 4 if on_gpu else 1,
            "per_device_batch_size": 1,
            "sft": {"per_device_batch_size": 1, "global_batch_size": 2, "max_length": 40000, "learning_rate": 1e-5},
            "pairs": {
                "per_device_batch_size": 1,
                "global_batch_size": pairs_per_step,
                "max_prompt_length": 800,
                "max_response_length": 40000,
                "learning_rate": 1e-6,
                "alpha": 0.8,
                "beta": 0.1,
            },
            # what the training jobs resolve on this machine (bf16 where the GPU has it, SDPA unless
            # flash-attn is installed); measurement runs write no checkpoint and no model
            "run_overrides": {
                "bf16": on_gpu,
                "gradient_checkpointing": True,
                "logprob_chunk_size": 512,
                "attn_implementation": "auto",
                "padding_free": "auto",
                "save": False,
            },
            "trl_args": {"bf16": on_gpu, "gradient_checkpointing": True},
        }

    def _data_dir(self, length, equal, n_pairs, n_sft, pairs_per_step) -> Path:
        return self.work / f"data-{length}-{'eq' if equal else 'mix'}-{n_pairs}-{n_sft}-{pairs_per_step}"

    def prepare_all(self) -> None:
        """Item ``data``: every planned data set in one worker (one process start, not one per
        length); their paths then serve :meth:`data`."""
        keys = [(self.first_length, False, 4, 4, 2), (self.pair_length, True, 2, 0, 1)]
        keys += [(n, False, 4, 4, 2) for n in self.lengths if n != self.first_length]
        specs = [
            {"workdir": str(self._data_dir(*k)), "length": k[0], "equal": k[1], "n_pairs": k[2], "n_sft": k[3],
             "settings": self.settings(k[4])}
            for k in keys
        ]  # fmt: skip
        r = self.item(
            "data",
            self.prior("data"),
            lambda _: benchlib.run_worker(
                "gpu_check:prepare_data_sets", {"model_dir": self.model["path"], "specs": specs}, timeout=900
            ),
            judge=lambda r: None if len(r.get("sets", [])) == len(specs) else "not every data set was made",
        )
        if r and r["status"] == "ran":
            for key, made in zip(keys, r["sets"]):
                self.data_dirs[key] = made["workdir"]
                self.data_s.setdefault(key[0], made["seconds"])

    def data(self, length: int, equal: bool, n_pairs: int, n_sft: int, pairs_per_step: int = 2) -> str | None:
        key = (length, equal, n_pairs, n_sft, pairs_per_step)
        if key in self.data_dirs:
            return self.data_dirs[key]
        d = self._data_dir(*key)
        t = time.time()
        r = benchlib.run_worker(
            "bench_gpu:prepare_data",
            {
                "workdir": str(d),
                "model_dir": self.model["path"],
                "length": length,
                "equal": equal,
                "n_pairs": n_pairs,
                "n_sft": n_sft,
                "settings": self.settings(pairs_per_step),
            },
            timeout=600,
        )
        if "error" in r:
            self.log(f"    data for {length}: {benchlib.short(r)}")
            self.data_dirs[key] = None
            return None
        self.data_s.setdefault(length, time.time() - t)
        self.data_dirs[key] = str(d)
        return str(d)

    def measure(self, impl: str, variant: str, data: str, scratch: Path, steps: int = 1, overrides=None) -> dict:
        r = benchlib.run_worker(
            "bench_trainers:measure",
            {
                "impl": impl,
                "variant": variant,
                "workdir": data,
                "steps": steps + 1,
                "warmup": 1,
                "overrides": overrides or {},
                "out_dir": str(scratch),
            },
            threads=self.settings()["threads"],
            timeout=600,
        )
        return self.mfu(r)

    def mfu(self, r: dict) -> dict:
        if "error" in r or not r.get("seconds"):
            return r
        flops = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"])
        full = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"], full_attention=True)
        tf = flops / r["seconds"] / 1e12
        ceilings = self.ceilings()
        return dict(
            r,
            model_tflops_per_s=round(tf, 3),
            model_tflops_per_s_full_attn=round(full / r["seconds"] / 1e12, 3),
            mfu_vs_measured_matmul=round(tf / ceilings["measured_matmul_tflops"], 4)
            if ceilings["measured_matmul_tflops"]
            else None,
            mfu_vs_datasheet=round(tf / ceilings["datasheet_tflops"], 4) if ceilings["datasheet_tflops"] else None,
        )

    def ceilings(self) -> dict:
        """The two MFU denominators: this call's measured bf16 matmul rate and the detected
        device's datasheet dense-bf16 peak (None on a CPU or an unlisted card)."""
        mm = self.items.get("matmul") or {}
        device = (self.items.get("environment") or {}).get("device") or mm.get("device") or "cpu"
        return {
            "device": device,
            "measured_matmul_tflops": mm.get("tflops_best") if mm.get("status") == "ran" else None,
            "datasheet_tflops": datasheet_tflops(device) if device != "cpu" else None,
            "datasheet_name": f"{device} datasheet dense bf16"
            if datasheet_tflops(device) and device != "cpu"
            else None,
        }

    # -- the items ----------------------------------------------------------------------------------
    def run(self) -> dict:
        self.item(
            "environment",
            self.prior("environment"),
            lambda _: benchlib.run_worker("gpu_check:environment", {}, timeout=120),
            judge=lambda r: None if self.smoke or r.get("require_cuda") == "ok" else r.get("require_cuda"),
        )
        n, iters = (256, 3) if self.smoke else (8192, 20)
        self.item(
            "matmul",
            self.prior("matmul"),
            lambda _: benchlib.run_worker("bench_gpu:matmul", {"n": n, "iters": iters}, timeout=300),
            judge=lambda r: None if (r.get("tflops_best") or 0) > 0 else "no matmul rate",
        )
        self.model = self.item(
            "model",
            self.prior("model"),
            lambda _: benchlib.run_worker(
                "bench_gpu:prepare_model", {"workdir": str(self.work), "arch": self.arch_name}, timeout=600
            ),
        )
        if not self.model or self.model["status"] != "ran":
            for key in self.planned_keys()[3:]:
                self.not_run(key, "no model (the model item did not run)")
            return self.result()
        first = self.first_length
        self.prepare_all()
        self.steps(first)
        self.pair()
        self.dpo_log2()
        self.dpo_log2_zero2()
        self.generate()
        for length in self.lengths:
            if length != first:
                self.steps(length)
        if self.extended:
            self.extended_items()
        return self.result()

    def planned_keys(self) -> list[str]:
        keys = [
            "environment",
            "matmul",
            "model",
            "data",
            f"steps/{self.first_length}/sft",
            f"steps/{self.first_length}/redi",
            "pair_19k",
            "dpo_log2",
            "dpo_log2_zero2",
            "generate",
            "generate_vllm",
        ]
        keys += [f"steps/{n}/{v}" for n in self.lengths if n != self.first_length for v in ("sft", "redi")]
        return keys

    def steps(self, length: int) -> None:
        est_data = self.estimate_data(length)
        keys = [f"steps/{length}/{v}" for v in ("sft", "redi")]
        est = self.estimate_steps(length, 2, 1, equal=False)
        if self.left() < est_data + est:
            for k in keys:
                self.not_run(
                    k, f"budget: estimated {est_data + est:.0f} s with its data, {max(0.0, self.left()):.0f} s left"
                )
            return
        data = self.data(length, equal=False, n_pairs=4, n_sft=4)
        for key, variant in zip(keys, ("sft", "redi")):
            if data is None:
                self.items[key] = {"status": "failed", "reason": "its data could not be made"}
                continue
            self.item(
                key,
                self.estimate_steps(length, 2, 1, equal=False),
                lambda s, v=variant: self.measure("ours", v, data, s),
                judge=_judge_steps,
            )

    def pair(self) -> None:
        """One pair of 2 x L (chosen = rejected) per optimizer step, two steps."""
        L = self.pair_length
        est = self.estimate_data(L) + self.estimate_steps(L, 2, 1, equal=True)
        if self.left() < est:
            return self.not_run("pair_19k", f"budget: estimated {est:.0f} s, {max(0.0, self.left()):.0f} s left")
        data = self.data(L, equal=True, n_pairs=2, n_sft=0, pairs_per_step=1)
        if data is None:
            self.items["pair_19k"] = {"status": "failed", "reason": "its data could not be made"}
            return
        r = self.item(
            "pair_19k",
            self.estimate_steps(L, 2, 1, equal=True),
            lambda s: dict(self.measure("ours", "redi", data, s), response_tokens_each=L),
            judge=_judge_steps,
        )
        if r is not None:
            r["fits"] = r["status"] == "ran"

    def dpo_log2(self) -> None:
        data = self.data(self.first_length, equal=False, n_pairs=4, n_sft=4)
        if data is None:
            self.items["dpo_log2"] = {"status": "failed", "reason": "its data could not be made"}
            return
        self.item(
            "dpo_log2",
            self.measured_or_prior("dpo_log2"),
            lambda s: benchlib.run_worker(
                "gpu_check:dpo_first_loss",
                {
                    "model_dir": self.model["path"],
                    "data_dir": data,
                    "out_dir": str(s),
                    "threads": self.settings()["threads"],
                },
                threads=self.settings()["threads"],
                timeout=600,
            ),
            judge=_judge_log2,
        )

    def measured_or_prior(self, kind: str) -> float:
        """A DPO item = the reference pass + one step: ~ a measured training item of the same data."""
        basis = self._step_basis()
        if basis is None:
            return self.prior(kind)
        one = self.estimate_steps(self.first_length, 2, 1, equal=False)
        return one * (2.5 if kind == "dpo_log2_zero2" else 1.5)

    def zero2_blocker(self) -> str | None:
        """Why the ZeRO-2 item cannot run here (None: it can)."""
        if importlib.util.find_spec("deepspeed") is None:
            return "deepspeed is not installed (carry it as bench/README.md says)"
        if not ZERO2.is_file():
            return f"{ZERO2} is missing"
        help_text = self.ref_logps_help()
        if "--accelerate-config" not in help_text:
            return (
                "`redi train ref-logps` has no --accelerate-config: the DeepSpeed-mode reference file cannot "
                "be made with this checkout"
            )
        return None

    def ref_logps_help(self) -> str:
        p = subprocess.run(
            [sys.executable, "-m", "redi.cli", "train", "ref-logps", "--help"],
            capture_output=True,
            text=True,
            env=benchlib.worker_env(1),
            cwd=str(REPO),
            timeout=120,
        )
        return p.stdout + p.stderr

    def dpo_log2_zero2(self) -> None:
        blocker = self.zero2_blocker()
        if blocker:
            return self.not_run("dpo_log2_zero2", blocker)
        data = self.data(self.first_length, equal=False, n_pairs=4, n_sft=4)
        if data is None:
            self.items["dpo_log2_zero2"] = {"status": "failed", "reason": "its data could not be made"}
            return

        def run(scratch: Path) -> dict:
            settings = json.loads((Path(data) / "settings.json").read_text())
            run_json = scratch / "run.json"
            run_json.write_text(json.dumps(dict(_pair_run(settings), objective="dpo", bf16=not self.smoke)))
            ref = scratch / "ref_logps.parquet"
            cmd = [
                sys.executable,
                "-m",
                "redi.cli",
                "train",
                "ref-logps",
                "--run-json",
                run_json.read_text(),
                "--model",
                self.model["path"],
                "--data",
                str(Path(data) / "pref.jsonl"),
                "--out",
                str(ref),
                "--accelerate-config",
                str(ZERO2),
                "--threads",
                str(settings["threads"]),
            ]
            t = time.time()
            made = benchlib.run_command(cmd, timeout=600, cwd=str(REPO))
            if made["returncode"] != 0 or not ref.exists():
                return {
                    "error": f"redi train ref-logps --accelerate-config failed (code {made['returncode']})",
                    "log_tail": made["log_tail"],
                }
            ref_s = time.time() - t
            launcher = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(ZERO2),
                "--num_processes",
                "1",
            ]
            if self.smoke:  # no bf16 kernels to speak of on a CPU: DeepSpeed in fp32 there
                launcher += ["--mixed_precision", "no"]
            r = benchlib.run_worker(
                "gpu_check:zero2_dpo_step",
                {
                    "model_dir": self.model["path"],
                    "data_dir": data,
                    "ref_path": str(ref),
                    "out_dir": str(scratch / "run"),
                    "bf16": not self.smoke,
                    "threads": settings["threads"],
                },
                threads=settings["threads"],
                timeout=600,
                launcher=launcher,
            )
            return dict(r, reference_seconds=round(ref_s, 1), launcher=" ".join(launcher[1:]))

        self.item(
            "dpo_log2_zero2",
            self.measured_or_prior("dpo_log2_zero2"),
            run,
            judge=lambda r: (
                _judge_log2(r)
                or (None if (r.get("numerics") or {}).get("deepspeed") else "the step did not run under DeepSpeed")
            ),
        )

    def generate(self) -> None:
        gen = (
            {"prompts": 2, "samples": 2, "max_new_tokens": 16}
            if self.smoke
            else {"prompts": 4, "samples": 4, "max_new_tokens": 512}
        )
        self.item(
            "generate",
            self.prior("generate"),
            lambda _: benchlib.run_worker(
                "gpu_check:generate_backend",
                {"model_dir": self.model["path"], "backend": "transformers", **gen},
                threads=self.settings()["threads"],
                timeout=max(60, min(600, self.left())),
            ),
            judge=lambda r: None if (r.get("generated_tokens") or 0) > 0 else "no tokens generated",
        )
        python = self.vllm_python
        if python is None and importlib.util.find_spec("vllm") is None:
            return self.not_run(
                "generate_vllm",
                "vllm is not installed here (it pins its own torch; give its environment's python with --vllm-python)",
            )
        args = (
            {"prompts": 2, "samples": 2, "max_new_tokens": 16}
            if self.smoke
            else {"prompts": 32, "samples": 4, "max_new_tokens": 2048}
        )

        def run(_):
            # each variant in its own process: a vLLM engine's GPU memory goes with its process
            out = None
            for name, extra in (("per_request_seeds", {"per_request_seeds": True}),
                                ("engine_seed", {"per_request_seeds": False})):  # fmt: skip
                r = benchlib.run_worker(
                    "gpu_check:generate_backend",
                    {"model_dir": self.model["path"], "backend": "vllm", **args,
                     "options": {"max_model_len": 1024 if self.smoke else 32768}, "variants": [[name, extra]]},
                    python=python, timeout=max(60, min(600, self.left())),
                )  # fmt: skip
                if "error" in r:
                    return dict(r, variant=name)
                out = r if out is None else dict(out, runs={**out["runs"], **r["runs"]})
            a, b = out["runs"]["per_request_seeds"], out["runs"]["engine_seed"]
            out["per_request_seeds_cost"] = (
                round(b["tokens_per_s"] / a["tokens_per_s"], 3) if a["tokens_per_s"] else None
            )
            return out

        self.item(
            "generate_vllm",
            self.prior("generate_vllm"),
            run,
            judge=lambda r: None if (r.get("generated_tokens") or 0) > 0 else "no tokens generated",
        )

    # -- the extended suite (bench/run.py --only gpu) ------------------------------------------------
    def extended_items(self) -> None:
        """Our steps against TRL's trainers, the other layouts and the naive head at the main length
        (interleaved ``repeats`` times), and the longest pair that trains on this card."""
        L = 8192 if 8192 in self.lengths else self.lengths[0]
        flash = importlib.util.find_spec("flash_attn") is not None and not self.smoke
        other = "padded" if flash else "padding_free"
        variants = {
            "trl_dpo_precomputed": ("trl", "dpo_precomputed", {}),
            "trl_sft": ("trl", "sft", {}),
            "trl_dpo_ref_model": ("trl", "dpo_ref_model", {}),
            "redi_naive": ("ours", "redi", {"logprob_chunk_size": 0}),
            f"redi_{other}": ("ours", "redi", {"padding_free": not flash}),
        }
        if not self.smoke:  # FlexAttention has no backward on a CPU (torch 2.13); on a GPU: packed rows,
            # the document mask built by transformers from the packed position_ids, vs the default
            variants["redi_flex_packed"] = (
                "ours",
                "redi",
                {"attn_implementation": "flex_attention", "padding_free": True},
            )
        data = self.data(L, equal=False, n_pairs=4, n_sft=4)
        if data is None:
            return
        for name, (impl, variant, overrides) in variants.items():
            key = f"steps/{L}/{name}"
            est = self.estimate_steps(L, 2, 1, equal=False) * (2 if "ref_model" in name else 1) * self.repeats

            def run(scratch, impl=impl, variant=variant, overrides=overrides):
                runs = [self.measure(impl, variant, data, scratch, overrides=overrides) for _ in range(self.repeats)]
                ok = [r for r in runs if "error" not in r]
                best = dict(ok[len(ok) // 2] if ok else runs[-1], repeats=len(runs))
                best["tokens_per_s_all"] = [r.get("tokens_per_s") for r in runs]
                return best

            self.item(key, est, run, judge=_judge_steps)
        self.longest()

    def longest(self, max_probes: int = 4) -> None:
        key = "longest/redi"
        limit = self.arch["max_position_embeddings"] - PROMPT_DIGITS - 16
        gran = 64 if self.smoke else 1024
        lo, hi, probes = None, None, []
        length = min(self.pair_length * 2, limit)
        t = time.time()
        pr = self.items.get("pair_19k") or {}
        if pr.get("status") == "ran":
            lo = self.pair_length
        while len(probes) < max_probes:
            est = self.estimate_data(length) + self.estimate_steps(length, 2, 1, equal=True)
            if self.left() < est:
                break
            data = self.data(length, equal=True, n_pairs=2, n_sft=0, pairs_per_step=1)
            scratch = self.scratch(key)
            try:
                r = self.measure("ours", "redi", data, scratch) if data else {"error": "no data"}
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            fits = "error" not in r
            probes.append(
                {
                    "response_tokens": length,
                    "fits": fits,
                    "cuda_peak_allocated_gib": r.get("cuda_peak_allocated_gib"),
                    "error": None if fits else str(r.get("error"))[:300],
                }
            )
            if fits:
                lo = length
            else:
                hi = length
                if not r.get("oom"):
                    break
            if lo is not None and (lo >= limit or (hi is not None and hi - lo <= gran)):
                break
            length = limit if hi is None else ((lo or 0) + hi) // 2 // gran * gran
            if length <= (lo or 0):
                break
        if not probes:
            return self.not_run(key, "budget")
        self.items[key] = {
            "status": "ran",
            "longest_fitting_response_tokens": lo,
            "smallest_failing_response_tokens": hi,
            "search_limit": limit,
            "probes": probes,
            "item_wall_s": round(time.time() - t, 1),
        }
        self.save()

    # -- the record --------------------------------------------------------------------------------
    def result(self, final: bool = True) -> dict:
        items = dict(self.items)
        for key in self.planned_keys():
            if key not in items:  # not reached (yet, in a record saved on the way)
                items[key] = {"status": "not run", "reason": "not reached" if final else "pending"}
        status = {k: v.get("status") for k, v in items.items()}
        return {
            "smoke": self.smoke,
            "extended": self.extended,
            "arch": self.arch_name,
            "arch_config": self.arch,
            "lengths": self.lengths,
            "pair_response_tokens": self.pair_length,
            "ceilings": self.ceilings(),
            "flops_formula": "6*N*T + 6*layers*d_attn*sum(S^2) (causal half); N = matmul parameters incl. the LM head",
            "budget_s": self.budget_s,
            "wall_s": round(time.time() - self.t0, 1),
            "items": items,
            "data_seconds": {str(k): round(v, 2) for k, v in self.data_s.items()},
            "summary": {
                "ran": [k for k, s in status.items() if s == "ran"],
                "failed": [k for k, s in status.items() if s == "failed"],
                "not_run": {k: items[k].get("reason") for k, s in status.items() if s == "not run"},
            },
            "comparisons": comparisons(items),
        }


def _judge_steps(r: dict) -> str | None:
    if r.get("oom"):
        return "out of memory"
    return None if (r.get("tokens_per_s") or 0) > 0 else "no step was timed"


def _judge_log2(r: dict) -> str | None:
    err = r.get("abs_error")
    if err is None:
        return "no first loss"
    return None if err < 2e-3 else f"first loss {r.get('loss')} is not log 2 (|error| {err:.2e})"


def comparisons(items: dict) -> dict:
    """Throughput ratios of the extended suite: ours / theirs at the same length and data."""
    out = {}
    for key, r in items.items():
        if not key.startswith("steps/") or r.get("status") != "ran":
            continue
        _, length, name = key.split("/")
        for label, a, b in (
            ("redi_vs_trl_dpo_precomputed", "redi", "trl_dpo_precomputed"),
            ("redi_vs_trl_dpo_ref_model", "redi", "trl_dpo_ref_model"),
            ("sft_vs_trl_sft", "sft", "trl_sft"),
            ("redi_chunked_vs_naive", "redi", "redi_naive"),
            ("redi_default_vs_padding_free", "redi", "redi_padding_free"),
            ("redi_default_vs_padded", "redi", "redi_padded"),
            ("redi_default_vs_flex_packed", "redi", "redi_flex_packed"),
        ):
            if name == a and (items.get(f"steps/{length}/{b}") or {}).get("status") == "ran":
                out[f"{length}/{label}"] = benchlib.ratio(
                    r["tokens_per_s"], items[f"steps/{length}/{b}"]["tokens_per_s"]
                )
    return out


def _brief(r: dict) -> str:
    keys = (
        "tokens_per_s",
        "mfu_vs_measured_matmul",
        "mfu_vs_datasheet",
        "cuda_peak_allocated_gib",
        "loss",
        "abs_error",
        "tflops_best",
        "device",
        "require_cuda",
        "parameters",
    )
    return ", ".join(f"{k}={r[k]}" for k in keys if k in r and r[k] is not None)[:300]


# ---------------------------------------------------------------------------------------------
# report


def _f(x, digits=3):
    if x is None:
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_md(doc: dict) -> str:
    it = doc["items"]
    env, mm, c = it.get("environment", {}), it.get("matmul", {}), doc["ceilings"]
    failed = doc["summary"]["failed"]
    lines = [
        f"# GPU check{' (smoke, CPU, toy sizes)' if doc['smoke'] else ''}: {doc['date']} on {doc['host']}",
        "",
        f"Device: {env.get('device')}; torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), driver "
        f"{env.get('driver')}, transformers {env.get('transformers')}, accelerate {env.get('accelerate')}, deepspeed "
        f"{env.get('deepspeed')}, vLLM {env.get('vllm')}. Model: {doc['arch']} shape, random weights. Wall "
        f"{doc['wall_s']} s of {doc['budget_s']} s budget. Log-prob head's fp32 logits: "
        f"{env.get('logprob_head_fp32_output')}.",
        "",
        f"MFU ceilings: measured bf16 matmul {_f(c.get('measured_matmul_tflops'), 1)} TFLOP/s (item `matmul`, "
        f"{mm.get('n')}^3); datasheet: {c.get('datasheet_name') or 'none for this device'} "
        f"{_f(c.get('datasheet_tflops'), 1)} TFLOP/s.",
        "",
        "Exit status: "
        + (f"FAILED: {', '.join(failed)}." if failed else "0, everything that ran was right.")
        + (f" Not run: {', '.join(doc['summary']['not_run'])}." if doc["summary"]["not_run"] else ""),
        "",
        "| item | status | detail |",
        "|---|---|---|",
    ]
    for key, r in it.items():
        detail = r.get("reason") or _brief(r)
        lines.append(f"| {key} | {r.get('status')} | {str(detail)[:160]} |")
    lines += [
        "",
        "| step | response tokens | tokens/s | MFU vs measured matmul | MFU vs datasheet | peak GiB |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in it.items():
        if (key.startswith("steps/") or key == "pair_19k") and r.get("status") == "ran":
            length = key.split("/")[1] if key.startswith("steps/") else f"2 x {r.get('response_tokens_each')}"
            name = key.split("/")[2] if key.startswith("steps/") else "redi (one pair per step)"
            lines.append(
                f"| {name} | {length} | {_f(r.get('tokens_per_s'), 1)} | {_f(r.get('mfu_vs_measured_matmul'), 4)} "
                f"| {_f(r.get('mfu_vs_datasheet'), 4)} | {_f(r.get('cuda_peak_allocated_gib'))} |"
            )
    for key in ("dpo_log2", "dpo_log2_zero2"):
        d = it.get(key, {})
        if d.get("status") == "ran" or d.get("loss") is not None:
            lines.append(
                f"\n{key}: first loss {d.get('loss')} (log 2 = {LOG2:.6f}, |error| {d.get('abs_error')}), numerics "
                f"{d.get('numerics') or d.get('precision')}, peak {d.get('cuda_peak_allocated_gib')} GiB allocated."
            )
    for key in ("generate", "generate_vllm"):
        g = it.get(key, {})
        for name, run in (g.get("runs") or {}).items():
            lines.append(
                f"\n{key} ({g.get('backend')}, {name}): {run['tokens_per_s']} tokens/s, {g.get('sequences')} "
                f"sequences x up to {g.get('max_new_tokens')} new tokens ({run['stopped_early']} stopped early)."
            )
    if doc.get("comparisons"):
        lines += ["", "| ratio | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in doc["comparisons"].items()]
    if doc.get("estimate"):
        lines += ["", render_estimate(doc["estimate"])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# dry estimate of the full check on one H200, from a smoke run's measured times and known sizes

H200 = {"name": "NVIDIA H200", "datasheet_tflops": 989.4}
# stated assumptions: a training step's model-FLOPs rate (MFU vs the datasheet; SDPA, gradient
# checkpointing), the GPU-side fixed costs per process (CUDA context, loading the 1.5B model in
# fp32 onto the card, DeepSpeed's engine), building the 1.5B model, transformers' time per
# generated token (a 28-layer forward of 16 rows, launch-bound) and tokenising the full-size data
ASSUME = {"train_mfu": 0.25, "gc_recompute": 4 / 3, "cuda_init_s": 5.0, "model_load_s": 10.0,
          "deepspeed_init_s": 30.0, "model_build_s": 30.0, "decode_step_s": 0.035, "data_full_s": 10.0}  # fmt: skip


def estimate_full(smoke: dict) -> dict:
    """Seconds per item of the full check on one H200, in the check's order: each item's process
    overhead as the smoke run measured it (Python, imports, Trainer set-up: what does not grow
    with the model), divided by the smoke machine's CPU contention (mean load average per usable
    core during the run, at least 1; shown undivided too), plus the full size's compute (model
    FLOPs / (assumed MFU x datasheet)) and GPU-side fixed costs (``ASSUME``)."""
    it = smoke["items"]
    arch = ARCHS["qwen2.5-math-1.5b"]
    rate = H200["datasheet_tflops"] * 1e12 * ASSUME["train_mfu"] / ASSUME["gc_recompute"]
    m = smoke.get("machine") or {}
    loads = [x for x in (m.get("load_average_start"), m.get("load_average_end")) if x is not None]
    contention = max(1.0, (sum(loads) / len(loads)) / m["cpu_usable"]) if loads and m.get("cpu_usable") else 1.0

    def overhead(key):
        r = it.get(key) or {}
        if r.get("item_wall_s") is None:
            return 15.0  # not measured in the smoke run: a generous guess, shown as such in the rows
        if "steps_timed" in r:  # a training item: less its warm-up and timed steps
            return max(0.0, r["item_wall_s"] - 2 * (r.get("seconds") or 0))
        if key.startswith("generate"):  # less its timed generation
            return max(0.0, r["item_wall_s"] - (r.get("seconds") or 0))
        return r["item_wall_s"]  # at smoke size all of it is start-up

    def train(length, seqs, steps, equal=False):
        mean = length if equal else 0.75 * length
        return (
            ASSUME["cuda_init_s"]
            + ASSUME["model_load_s"]
            + steps * model_flops(arch, int(seqs * mean), int(seqs * mean * mean)) / rate
        )

    small = {n: f"steps/{s}" for n, s in ((4096, 64), (8192, 128), (PAIR_LENGTH, 192))}
    rows = [
        ("environment", "environment", ASSUME["cuda_init_s"]),
        ("matmul", "matmul", ASSUME["cuda_init_s"] + 2.0),
        ("model", "model", ASSUME["model_build_s"]),
        ("data", "data", ASSUME["data_full_s"]),
        ("steps/4096/sft", small[4096] + "/sft", train(4096, 2, 2)),
        ("steps/4096/redi", small[4096] + "/redi", train(4096, 4, 2)),
        ("pair_19k", "pair_19k", train(PAIR_LENGTH, 2, 2, equal=True)),
        ("dpo_log2", "dpo_log2", train(4096, 4, 1) + ASSUME["model_load_s"] + train(4096, 4, 1) / 3),
        ("dpo_log2_zero2", "dpo_log2", 2 * (train(4096, 4, 1) + ASSUME["model_load_s"]) + ASSUME["deepspeed_init_s"]),
        ("generate", "generate", ASSUME["cuda_init_s"] + ASSUME["model_load_s"] + 2 * 520 * ASSUME["decode_step_s"]),
        ("steps/8192/sft", small[8192] + "/sft", train(8192, 2, 2)),
        ("steps/8192/redi", small[8192] + "/redi", train(8192, 4, 2)),
        ("steps/19000/sft", small[PAIR_LENGTH] + "/sft", train(PAIR_LENGTH, 2, 2)),
        ("steps/19000/redi", small[PAIR_LENGTH] + "/redi", train(PAIR_LENGTH, 4, 2)),
    ]
    out, total, raw, through_pair = [], 0.0, 0.0, None
    for name, measured_as, gpu_s in rows:
        oh = overhead(measured_as) * (2 if name == "dpo_log2_zero2" else 1)  # reference pass + launched step
        total += oh / contention + gpu_s
        raw += oh + gpu_s
        out.append({"item": name, "overhead_measured_s": round(oh, 1), "overhead_s": round(oh / contention, 1),
                    "gpu_s": round(gpu_s, 1), "cumulative_s": round(total, 1)})  # fmt: skip
        if name == "pair_19k":
            through_pair = total
    return {"device": H200["name"], "assumptions": ASSUME, "contention": round(contention, 2), "rows": out,
            "total_s": round(total, 1), "total_uncorrected_s": round(raw, 1),
            "through_pair_19k_s": round(through_pair, 1), "fits_8_min": total <= 480,
            "from_smoke": {"date": smoke.get("date"), "host": smoke.get("host"), "machine": m}}  # fmt: skip


def render_estimate(e: dict) -> str:
    lines = [f"## Dry estimate: the full check on one {e['device']}", "",
             f"Per item: the process overhead this smoke run measured (its item wall less its timed steps), divided by "
             f"the smoke machine's CPU contention ({e['contention']}: mean load average per usable core), plus the "
             f"full size's GPU time: model FLOPs at an assumed {e['assumptions']['train_mfu']:.0%} MFU "
             f"(x{e['assumptions']['gc_recompute']:.2f} for recomputation) of the 989.4 TFLOP/s datasheet, and fixed "
             f"costs {json.dumps({k: round(v, 3) for k, v in e['assumptions'].items()})}.", "",
             "| item | overhead measured s | overhead s | GPU s | cumulative s |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['item']} | {r['overhead_measured_s']} | {r['overhead_s']} | {r['gpu_s']} | {r['cumulative_s']} |"
              for r in e["rows"]]  # fmt: skip
    lines += ["", f"Total {e['total_s']} s ({'within' if e['fits_8_min'] else 'OVER'} 8 minutes; "
                  f"{e['total_uncorrected_s']} s with the overheads as measured on the loaded smoke machine); the "
                  f"2 x 19k pair is done after {e['through_pair_19k_s']} s. Items whose estimate does not fit the "
                  "budget are recorded `not run (budget)`, not failed."]  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: exercise every item end to end")
    ap.add_argument("--out", help="folder for the JSON + markdown (default bench/results, --smoke bench/results/quick)")
    ap.add_argument(
        "--budget-s", type=float, default=420, help="start no item whose estimate passes this (default 420)"
    )
    ap.add_argument("--workdir", help="parent of the scratch folder (default: the system's temporary folder)")
    ap.add_argument("--vllm-python", help="python of a vLLM environment for the generate_vllm item")
    ap.add_argument("--stem", help="file name stem (default gpu-check[-smoke]-<date>-<host>)")
    ap.add_argument(
        "--estimate",
        metavar="SMOKE_JSON",
        help="print (and add to that file's markdown) the dry estimate "
        "of the full check on one H200 from a smoke run's JSON; runs nothing",
    )
    args = ap.parse_args(argv)
    if args.estimate:
        path = Path(args.estimate)
        doc = json.loads(path.read_text())
        doc["estimate"] = estimate_full(doc)
        path.write_text(json.dumps(doc, indent=1))
        path.with_suffix(".md").write_text(render_md(doc))
        print(render_estimate(doc["estimate"]))
        return 0
    out = Path(args.out) if args.out else BENCH / "results" / ("quick" if args.smoke else "")
    out.mkdir(parents=True, exist_ok=True)
    host = platform.node().split(".")[0] or "host"
    date = datetime.date.today().isoformat()
    stem = out / (args.stem or f"gpu-check{'-smoke' if args.smoke else ''}-{date}-{host}")

    def log(msg):
        print(msg, flush=True)

    work = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=args.workdir))

    # a SIGTERM (a scheduler's time limit) still removes the scratch folder: finally runs
    def on_term(*_):  # a scheduler's time limit: end the running worker too, then clean up (finally)
        benchlib.kill_live_workers()
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    doc: dict = {"date": date, "host": host, "command": "bench/gpu_check " + " ".join(argv or sys.argv[1:])}
    doc["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                       text=True).stdout.strip() or None  # fmt: skip
    doc["machine"] = {"cpu_usable": len(os.sched_getaffinity(0)), "load_average_start": os.getloadavg()[0]}

    def write():
        doc["exit_code"] = 1 if doc.get("summary", {}).get("failed") else 0
        stem.with_suffix(".json").write_text(json.dumps(doc, indent=1))
        stem.with_suffix(".md").write_text(render_md(doc))

    try:
        check = Check(
            args.smoke,
            args.budget_s,
            work,
            log,
            vllm_python=args.vllm_python,
            save=lambda: (doc.update(check.result(final=False)), write()),
        )
        log(
            f"gpu_check ({'smoke' if args.smoke else 'full'}): {check.arch_name}, lengths {check.lengths}, "
            f"pair 2 x {check.pair_length}, budget {args.budget_s} s"
        )
        doc.update(check.run())
        doc["machine"]["load_average_end"] = os.getloadavg()[0]
        write()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {stem}.json and {stem}.md")
    s = doc["summary"]
    log(f"ran: {', '.join(s['ran'])}")
    log(f"failed: {', '.join(s['failed']) or 'none'}")
    for k, why in s["not_run"].items():
        log(f"not run: {k} ({why})")
    return doc["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
