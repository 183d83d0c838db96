"""The first-GPU check (issue 13): one command, under 8 minutes on one H200, that shows whether the
training and transformers-backend paths work on a GPU and how fast they are.

    python3 bench/gpu_check.py                # on the GPU machine (also: bench/gpu_check)
    python3 bench/gpu_check.py --smoke        # CPU, toy sizes: the same code end to end (CI)

Items, in order; each is its own process (``benchlib.run_worker``: fresh CUDA peak counters, an
out-of-memory in one item does not end the check), each skipped once ``--budget-s`` is spent:

1. ``environment``: torch/transformers/accelerate versions, CUDA build, driver, device, and
   ``redi.runtime.require_cuda(1)`` (the fail-fast check of the training jobs).
2. ``matmul``: bf16 8192^3 matmul TFLOP/s (the measured ceiling).
3. ``model``: a random-weight model of the exact Qwen2.5-Math-1.5B shape, saved in bf16.
4. ``steps/<L>/{sft,redi}`` (4k first; 8k and 19k after items 6 and 7): one timed optimizer step
   (after one warm-up step) of SFT and of REDI
   through the real trainer (``redi.train.run.train``) at L = 4k, 8k and 19k response tokens:
   peak memory, tokens/s, MFU against 790 TFLOP/s dense bf16 (6 N T + causal attention FLOPs;
   ``bench_gpu.model_flops``). bf16 autocast, gradient checkpointing, one pair (SFT: two
   sequences) per micro-batch, two per step.
5. ``pair_19k``: one pair of 2 x 19,000 response tokens (chosen = rejected length), REDI, two
   steps, on one card.
6. ``dpo_log2``: DPO's first loss with cached reference log-probs (``redi.train.reference``) in the
   GPU's precision mode: must equal log 2.
7. ``generate``: transformers-backend generation throughput (bf16, KV cache, EOS ignored).

Writes ``<out>/gpu-check-<date>-<host>.json`` and ``.md`` (default ``bench/results/``;
``--smoke`` defaults to ``bench/results/quick/``, which is not committed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import benchlib  # noqa: E402
from bench_gpu import ARCHS, matmul_flops_params, model_flops  # noqa: E402,F401

PEAK_TFLOPS = 790.0  # H200 dense bf16, as the issue states the target


def environment() -> dict:
    """Versions and the fail-fast CUDA check, in a fresh process."""
    import accelerate
    import torch
    import transformers

    from redi.runtime import driver_version, require_cuda

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "driver": driver_version(),
        "cuda_available": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
    }
    try:
        require_cuda(1, "gpu_check")
        out["require_cuda"] = "ok"
    except RuntimeError as exc:
        out["require_cuda"] = str(exc)
    return out


def dpo_first_loss(model_dir: str, data_dir: str, threads: int = 4) -> dict:
    """Reference log-probs, then one DPO step from the same model: the first loss is log 2."""
    import torch

    from redi.train.reference import compute_reference_logps
    from redi.train.run import train

    work = Path(data_dir)
    settings = json.loads((work / "settings.json").read_text())
    run = {
        "objective": "dpo", "beta": 0.1, "learning_rate": 1e-7, "max_steps": 1, "seed": 0,
        "per_device_batch_size": 1, "global_batch_size": 2,
        "max_prompt_length": 800, "max_response_length": 40000,
        **settings.get("run_overrides", {}),
    }  # fmt: skip
    ref = work / "ref_logps.parquet"
    t0 = time.perf_counter()
    meta = compute_reference_logps(model_dir, str(work / "pref.jsonl"), str(ref), run, threads=threads)
    with tempfile.TemporaryDirectory(dir=settings.get("scratch", work)) as out:
        summary = train(run, model_dir, str(work / "pref.jsonl"), out, ref_logps_path=str(ref), threads=threads)
        first = json.loads((Path(out) / "metrics.jsonl").read_text().splitlines()[0])
    loss = float(first["loss"])
    return {
        "loss": loss,
        "log2": math.log(2),
        "abs_error": abs(loss - math.log(2)),
        "ok": abs(loss - math.log(2)) < 2e-3,
        "precision": meta["precision"],
        "numerics": summary.get("numerics"),
        "seconds": round(time.perf_counter() - t0, 2),
        "cuda_peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)
        if torch.cuda.is_available()
        else None,
    }


class Check:
    def __init__(self, smoke: bool, budget_s: float, workdir: Path, log):
        self.smoke, self.budget_s, self.work, self.log = smoke, budget_s, workdir, log
        self.t0 = time.time()
        self.arch_name = "tiny" if smoke else "qwen2.5-math-1.5b"
        self.arch = ARCHS[self.arch_name]
        self.lengths = [64, 128, 192] if smoke else [4096, 8192, 19000]
        self.pair_length = 192 if smoke else 19000
        self.items: dict = {}
        self.skipped: list[str] = []
        self.model: dict | None = None

    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def item(self, key: str, cost_s: float, fn):
        if self.left() < cost_s:
            self.skipped.append(key)
            self.log(f"  {key}: skipped ({self.left():.0f} s left)")
            return None
        t = time.time()
        result = fn()
        result = dict(result, item_wall_s=round(time.time() - t, 1))
        self.items[key] = result
        self.log(
            f"  {key}: {benchlib.short(result) if 'error' in result else _brief(result)} ({result['item_wall_s']} s)"
        )
        return result

    def settings(self) -> dict:
        on_gpu = not self.smoke
        return {
            "threads": 4 if on_gpu else 1,
            "scratch": str(self.work),
            "per_device_batch_size": 1,
            "sft": {"per_device_batch_size": 1, "global_batch_size": 2, "max_length": 40000, "learning_rate": 1e-5},
            "pairs": {"per_device_batch_size": 1, "global_batch_size": 2, "max_prompt_length": 800,
                      "max_response_length": 40000, "learning_rate": 1e-6, "alpha": 0.8, "beta": 0.1},  # fmt: skip
            # what the training jobs resolve on this machine: bf16 where the GPU has it, SDPA
            # unless flash-attn is installed, padded unless the attention reads packed rows
            "run_overrides": {"bf16": on_gpu, "gradient_checkpointing": True, "logprob_chunk_size": 512,
                              "attn_implementation": "auto", "padding_free": "auto"},
        }

    def data(self, length: int, equal: bool, n_pairs: int, n_sft: int) -> str | None:
        d = self.work / f"data-{length}-{'eq' if equal else 'mix'}"
        r = benchlib.run_worker(
            "bench_gpu:prepare_data",
            {"workdir": str(d), "model_dir": self.model["path"], "length": length, "equal": equal,
             "n_pairs": n_pairs, "n_sft": n_sft, "settings": self.settings()},  # fmt: skip
            timeout=600,
        )
        if "error" in r:
            self.log(f"    data for {length}: {benchlib.short(r)}")
            return None
        return str(d)

    def measure(self, variant: str, data: str, steps: int, warmup: int) -> dict:
        r = benchlib.run_worker(
            "bench_trainers:measure",
            {"impl": "ours", "variant": variant, "workdir": data, "steps": steps, "warmup": warmup},
            threads=self.settings()["threads"], timeout=600,
        )  # fmt: skip
        if "error" in r or not r.get("seconds"):
            return r
        flops = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"])
        tflops = flops / r["seconds"] / 1e12
        return dict(
            r, model_tflops_per_s=round(tflops, 2), mfu=round(tflops / PEAK_TFLOPS, 4), mfu_peak_tflops=PEAK_TFLOPS
        )

    def run(self) -> dict:
        self.item("environment", 5, lambda: benchlib.run_worker("gpu_check:environment", {}, timeout=120))
        n, iters = (256, 3) if self.smoke else (8192, 20)
        self.item("matmul", 10, lambda: benchlib.run_worker("bench_gpu:matmul", {"n": n, "iters": iters}, timeout=300))
        self.model = self.item(
            "model", 30,
            lambda: benchlib.run_worker(
                "bench_gpu:prepare_model", {"workdir": str(self.work), "arch": self.arch_name}, timeout=600
            ),
        )  # fmt: skip
        if not self.model or "error" in self.model:
            return self.result()
        # priority order (each later item is skipped, and listed, once the budget is spent):
        # the shortest steps, DPO's log 2 and generation first, then 8k, 19k and the 2 x 19k pair
        first = self.lengths[0]
        data = {first: self.data(first, equal=False, n_pairs=4, n_sft=4)}
        self._steps(first, data[first])
        if data[first]:
            self.item(
                "dpo_log2", 45,
                lambda: benchlib.run_worker(
                    "gpu_check:dpo_first_loss", {"model_dir": self.model["path"], "data_dir": data[first]},
                    threads=self.settings()["threads"], timeout=600,
                ),
            )  # fmt: skip
        gen = {"prompts": 2, "samples": 2, "max_new_tokens": 16, "max_model_len": 1024} if self.smoke else \
            {"prompts": 4, "samples": 4, "max_new_tokens": 512, "max_model_len": 32768}  # fmt: skip
        self.item(
            "generate", 40,
            lambda: benchlib.run_worker(
                "bench_gpu:generate", {"model_dir": self.model["path"], "backend": "transformers", **gen},
                threads=self.settings()["threads"], timeout=max(60, min(600, self.left())),
            ),
        )  # fmt: skip
        for length in self.lengths[1:]:
            self._steps(length, self.data(length, equal=False, n_pairs=4, n_sft=4) if self.left() > 60 else None)
        pair = self.data(self.pair_length, equal=True, n_pairs=2, n_sft=0) if self.left() > 60 else None
        if pair:
            self.item("pair_19k", 45, lambda: self._pair(pair))
        elif "pair_19k" not in self.skipped:
            self.skipped.append("pair_19k")
        return self.result()

    def _steps(self, length: int, data: str | None) -> None:
        for variant in ("sft", "redi"):
            if data:
                self.item(f"steps/{length}/{variant}", 45, lambda v=variant: self.measure(v, data, 2, 1))
            else:
                self.skipped.append(f"steps/{length}/{variant}")

    def _pair(self, data: str) -> dict:
        # one pair per step: global batch 1 pair (settings' 2 pairs -> two steps of one pair)
        d = Path(data)
        s = json.loads((d / "settings.json").read_text())
        s["pairs"]["global_batch_size"] = 1
        (d / "settings.json").write_text(json.dumps(s, indent=1))
        r = self.measure("redi", data, 2, 1)
        return dict(r, response_tokens_each=self.pair_length, fits="error" not in r)

    def result(self) -> dict:
        return {
            "smoke": self.smoke,
            "arch": self.arch_name,
            "arch_config": self.arch,
            "lengths": self.lengths,
            "mfu_peak_tflops": PEAK_TFLOPS,
            "flops_formula": "6*N*T + 6*layers*d_attn*sum(S^2) (causal half); N = matmul parameters incl. the LM head",
            "budget_s": self.budget_s,
            "wall_s": round(time.time() - self.t0, 1),
            "skipped_for_budget": self.skipped,
            "items": self.items,
            "ok": self.ok(),
        }

    def ok(self) -> dict:
        it = self.items
        steps = [k for k in it if k.startswith("steps/")]
        return {
            "cuda": (it.get("environment") or {}).get("require_cuda") == "ok",
            "all_steps_ran": bool(steps) and all("error" not in it[k] for k in steps)
            and len(steps) == 2 * len(self.lengths),
            "pair_19k_fits": bool((it.get("pair_19k") or {}).get("fits")),
            "dpo_first_loss_is_log2": bool((it.get("dpo_log2") or {}).get("ok")),
            "generation_ran": "error" not in (it.get("generate") or {"error": 1}),
        }


def _brief(r: dict) -> str:
    keys = ("tokens_per_s", "mfu", "cuda_peak_allocated_gib", "loss", "abs_error", "tflops_best", "device",
            "require_cuda", "parameters")  # fmt: skip
    return ", ".join(f"{k}={r[k]}" for k in keys if k in r and r[k] is not None)[:300]


def render_md(doc: dict) -> str:
    env = doc["items"].get("environment", {})
    lines = [
        f"# GPU check{' (smoke, CPU, toy sizes)' if doc['smoke'] else ''}: {doc['date']} on {doc['host']}",
        "",
        f"Device: {env.get('device')}; torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), driver "
        f"{env.get('driver')}, transformers {env.get('transformers')}, accelerate {env.get('accelerate')}. "
        f"Model: {doc['arch']} shape, random weights. Wall {doc['wall_s']} s of {doc['budget_s']} s budget.",
        "",
        "| check | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'pass' if v else 'FAIL'} |" for k, v in doc["ok"].items()]
    lines += [
        "",
        "| step | response tokens | tokens/s | MFU (vs 790 TFLOP/s) | peak GiB | error |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in doc["items"].items():
        if key.startswith("steps/") or key == "pair_19k":
            length = key.split("/")[1] if key.startswith("steps/") else f"2 x {r.get('response_tokens_each')}"
            name = key.split("/")[2] if key.startswith("steps/") else "redi (one pair)"
            lines.append(
                f"| {name} | {length} | {r.get('tokens_per_s', '—')} | {r.get('mfu', '—')} | "
                f"{r.get('cuda_peak_allocated_gib', '—')} | {str(r.get('error', ''))[:80]} |"
            )
    d, g, m = doc["items"].get("dpo_log2", {}), doc["items"].get("generate", {}), doc["items"].get("matmul", {})
    lines += [
        "",
        f"DPO first loss: {d.get('loss')} (log 2 = {math.log(2):.6f}, |error| {d.get('abs_error')}, precision "
        f"{d.get('precision')}).",
        f"Generation (transformers, bf16, KV cache): {g.get('tokens_per_s')} tokens/s "
        f"({g.get('sequences')} sequences x {g.get('max_new_tokens')} new tokens).",
        f"Matmul ceiling: {m.get('tflops_best')} TFLOP/s.",
    ]
    if doc["skipped_for_budget"]:
        lines.append(f"Skipped for the time budget: {', '.join(doc['skipped_for_budget'])}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: exercise every item end to end")
    ap.add_argument("--out", help="folder for the JSON + markdown (default bench/results, --smoke bench/results/quick)")
    ap.add_argument("--budget-s", type=float, default=420, help="start no item after this many seconds (default 420)")
    ap.add_argument("--workdir", help="scratch folder (default: a temporary folder, removed at the end)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else BENCH / "results" / ("quick" if args.smoke else "")
    out.mkdir(parents=True, exist_ok=True)
    host = platform.node().split(".")[0] or "host"
    date = datetime.date.today().isoformat()
    stem = out / f"gpu-check-{date}-{host}"

    def log(msg):
        print(msg, flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu-check-", dir=args.workdir) as work:
        check = Check(args.smoke, args.budget_s, Path(work), log)
        log(f"gpu_check ({'smoke' if args.smoke else 'full'}): {check.arch_name}, lengths {check.lengths}")
        doc = {"date": date, "host": host, **check.run()}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    stem.with_suffix(".md").write_text(render_md(doc))
    log(f"wrote {stem}.json and {stem}.md")
    log(json.dumps(doc["ok"]))
    required = {k: v for k, v in doc["ok"].items() if not (args.smoke and k == "cuda")}  # no GPU in a smoke run
    return 0 if all(required.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
