"""GPU benchmarks (run only where ``torch.cuda.is_available()``): a random-weight model with the
exact Qwen2.5-Math-1.5B architecture, bf16 autocast over fp32 master weights (as our trainer and
TRL both train), on one card.

Items (run in this priority order until ``budget_s`` is spent; each is its own process):

1. ``matmul``: the card's measured bf16 ceiling, ``torch.matmul`` of two 8192 x 8192 bf16
   matrices (TFLOP/s = 2 n^3 / t, CUDA-event timed, best and median of ``iters``).
2. ``steps/<L>/<variant>``: optimizer-step throughput through the real ``Trainer.train()`` loops
   (``bench_trainers.measure``) at response length ``L`` (4k, 8k, 16k): our REDI and SFT steps in
   the default layout (padding-free when flash-attn is installed, else padded; chunked log-prob
   head), the other layout, the naive full-logits head, Liger's RMSNorm/RoPE/SwiGLU kernels (if
   importable), and TRL's ``DPOTrainer`` (precomputed reference log-probs = the closest to a
   reference-free step; and with a live reference model) and ``SFTTrainer`` on the same data.
   Data: one pair per micro-batch, 4 per optimizer step (the paper's 32 pairs on 8 GPUs); chosen
   ``L`` tokens, rejected uniform in ``[L/2, L]``; SFT two sequences per micro-batch (``L`` and
   uniform ``[L/2, L]``), 4 per step; prompts of ~128 tokens. Gradient checkpointing on.
3. ``longest/<variant>``: the longest pair (chosen = rejected = ``L`` response tokens) that trains
   (2 optimizer steps) on one card, by bisection over ``L`` (first probe: the paper's 19,000).
4. ``generate``: vLLM generation throughput for long samples if vLLM imports (here or in
   ``--vllm-python``), else ``transformers`` ``generate`` (bf16, KV cache).

Model FLOPs (MFU numerator), per optimizer step::

    6 * N * T  +  6 * n_layers * d_attn * sum_i S_i^2

``N`` = parameters used in matmuls (all linear layers + the LM head; the input embedding lookup is
not a matmul; with tied embeddings N equals the parameter count), ``T`` = non-padding tokens,
``S_i`` = length of sequence ``i``, ``d_attn`` = heads x head_dim. The attention term counts the
causal half of QK^T and AV (2 * S^2 * d_attn forward per layer, x3 for forward+backward); PaLM's
convention counts the full square (12 * ...), reported as ``model_tflops_per_s_full_attn``.
Activation recomputation, padding and the DPO reference forward are not counted (they are
overhead, not model FLOPs). MFU is reported against the measured matmul ceiling and against the
datasheet dense bf16 peak.
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from pathlib import Path

from benchlib import interleaved, median, ratio, rnd, run_worker

ARCHS = {
    # Qwen/Qwen2.5-Math-1.5B config.json, with the paper's edit (max_position_embeddings 32768,
    # rope_theta 300000)
    "qwen2.5-math-1.5b": {
        "vocab_size": 151936,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
        "rope_theta": 300000.0,
        "rms_norm_eps": 1e-6,
    },
    # for exercising this module on a CPU (--gpu-simulate)
    "tiny": {
        "vocab_size": 4096,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "max_position_embeddings": 1024,
        "rope_theta": 300000.0,
        "rms_norm_eps": 1e-6,
    },
}

# dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendor datasheets; first match wins
DATASHEET_BF16_TFLOPS = [
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("B100", 1750.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
]

PROMPT_DIGITS = 120  # the prompt: "Compute " + digits (Qwen2's pre-tokenizer splits digits: 1 token each)
SEED = 0


def datasheet_tflops(name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def matmul_flops_params(arch: dict) -> int:
    """Parameters that take part in matmuls (linear layers incl. biases + LM head)."""
    h, i, layers = arch["hidden_size"], arch["intermediate_size"], arch["num_hidden_layers"]
    hd = h // arch["num_attention_heads"]
    kv = arch["num_key_value_heads"] * hd
    per_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i  # q(+b), k/v(+b), o, gate/up/down
    return layers * per_layer + arch["vocab_size"] * h


def model_flops(arch: dict, tokens: int, sum_sq: int, full_attention: bool = False) -> float:
    d_attn = arch["hidden_size"]  # heads x head_dim
    attn = (12 if full_attention else 6) * arch["num_hidden_layers"] * d_attn * sum_sq
    return 6.0 * matmul_flops_params(arch) * tokens + attn


# ---------------------------------------------------------------------------------------------
# workers


def matmul(n: int = 8192, iters: int = 50, dtype: str = "bfloat16") -> dict:
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=dev, dtype=dt)
    b = torch.randn(n, n, device=dev, dtype=dt)
    times = []
    for k in range(iters + 10):
        if dev == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(a, b)
            end.record()
            torch.cuda.synchronize()
            t = start.elapsed_time(end) / 1000
        else:
            t0 = time.perf_counter()
            torch.matmul(a, b)
            t = time.perf_counter() - t0
        if k >= 10:
            times.append(t)
    flop = 2.0 * n**3
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    return {
        "device": name,
        "n": n,
        "dtype": dtype,
        "iters": iters,
        "tflops_best": rnd(flop / min(times) / 1e12, 1),
        "tflops_median": rnd(flop / median(times) / 1e12, 1),
        "datasheet_bf16_tflops": datasheet_tflops(name) if dev == "cuda" else None,
    }


def prepare_model(workdir: str, arch: str) -> dict:
    """Random-weight model with ``ARCHS[arch]`` + a small Qwen2-style tokenizer, saved in bf16."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from redi.model.student import save_student, train_tokenizer

    a = ARCHS[arch]
    texts = ["Compute 0123456789 <think> </think> Therefore, the final answer is: $\\boxed{42}$."] * 4
    tok = train_tokenizer(texts, 300)
    config = Qwen2Config(
        **a,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        use_cache=False,
    )
    torch.manual_seed(SEED)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        model = Qwen2ForCausalLM(config)
    model = model.to(torch.bfloat16).cpu()
    out = save_student(model, tok, str(Path(workdir) / "model"))
    n = sum(p.numel() for p in model.parameters())
    return {
        "path": str(out),
        "arch": arch,
        "parameters": n,
        "matmul_parameters": matmul_flops_params(a),
        "tokenizer_size": len(tok),
    }


def prepare_data(
    workdir: str, model_dir: str, length: int, n_pairs: int, n_sft: int, equal: bool, settings: dict
) -> dict:
    """``sft.jsonl`` / ``pref.jsonl`` with exact response lengths (digits: one token each)."""
    from transformers import AutoTokenizer

    from redi.prompts import user_content  # noqa: F401  (the prompt is a bare problem here)
    from redi.train.batching import tokenize_records
    from redi.train.config import RunConfig

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    user = {"role": "user", "content": "Compute " + "3" * PROMPT_DIGITS}

    def reply(n_digits):
        return {"role": "assistant", "content": "<think>\n" + "7" * n_digits}

    probe = tokenize_records(
        [{"id": "p", "prompt": [user], "chosen": [reply(100)], "rejected": [reply(50)]}],
        tok,
        RunConfig.from_dict({"objective": "redi"}),
    )
    overhead = len(probe.chosen[0]) - 100
    rng = random.Random(SEED + length)

    def other():
        return length if equal else rng.randint(length // 2, length)

    pairs = [
        {"id": f"p{k}", "prompt": [user], "chosen": [reply(length - overhead)], "rejected": [reply(other() - overhead)]}
        for k in range(n_pairs)
    ]
    sft = [
        {"id": f"s{k}", "messages": [user, reply((length if k % 2 == 0 else other()) - overhead)]} for k in range(n_sft)
    ]
    for name, rows in (("pref.jsonl", pairs), ("sft.jsonl", sft)):
        with open(work / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    check = tokenize_records(pairs[:1], tok, RunConfig.from_dict({"objective": "redi", "max_response_length": 10**6}))
    assert len(check.chosen[0]) == length, (len(check.chosen[0]), length)
    settings = dict(settings, model_dir=model_dir)
    (work / "settings.json").write_text(json.dumps(settings, indent=1))
    return {"prompt_tokens": len(check.prompts[0]), "response_tokens": length, "pairs": n_pairs, "sft": n_sft}


def generate(model_dir: str, backend: str, prompts: int, samples: int, max_new_tokens: int, max_model_len: int) -> dict:
    """Generated tokens/s for long samples (every sample runs to ``max_new_tokens``: EOS ignored)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = (
        tok.apply_chat_template(
            [{"role": "user", "content": "Compute " + "3" * PROMPT_DIGITS}], add_generation_prompt=True, tokenize=False
        )
        + "<think>\n"
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if backend == "vllm":
        from vllm import LLM, SamplingParams

        llm = LLM(
            model=model_dir,
            dtype="bfloat16",
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            gpu_memory_utilization=0.9,
            generation_config="vllm",
            seed=SEED,
        )
        from redi.eval.config import SamplingConfig

        paper = SamplingConfig()  # the evaluation's sampling (one home of its defaults)
        # random weights: ids beyond the small tokenizer are sampled, so no detokenisation; EOS ignored
        params = SamplingParams(
            n=samples,
            temperature=paper.temperature,
            top_p=paper.top_p,
            max_tokens=max_new_tokens,
            ignore_eos=True,
            detokenize=False,
            seed=SEED,
        )
        reqs = [{"prompt_token_ids": list(ids)} for _ in range(prompts)]
        llm.generate(reqs[:1], SamplingParams(max_tokens=16, detokenize=False))  # warm-up
        t0 = time.perf_counter()
        outs = llm.generate(reqs, params, use_tqdm=False)
        secs = time.perf_counter() - t0
        n = sum(len(c.token_ids) for o in outs for c in o.outputs)
        import vllm

        version = vllm.__version__
    else:
        import torch
        from transformers import AutoModelForCausalLM

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") and dev == "cuda" else "sdpa"
        model = (
            AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=torch.bfloat16 if dev == "cuda" else torch.float32, attn_implementation=attn
            )
            .to(dev)
            .eval()
        )
        x = torch.tensor([ids] * (prompts * samples), device=dev)
        from redi.eval.config import SamplingConfig

        paper = SamplingConfig()  # the evaluation's sampling (one home of its defaults)
        kw = dict(do_sample=True, temperature=paper.temperature, top_p=paper.top_p, top_k=0, use_cache=True,
                  pad_token_id=tok.pad_token_id)  # fmt: skip
        with torch.no_grad():
            model.generate(x[:1], max_new_tokens=8, min_new_tokens=8, **kw)
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(x, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, **kw)
            if dev == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
        n = int((out.shape[1] - x.shape[1]) * out.shape[0])
        version = None
    return {
        "backend": backend,
        "backend_version": version,
        "prompts": prompts,
        "samples": samples,
        "sequences": prompts * samples,
        "max_new_tokens": max_new_tokens,
        "generated_tokens": n,
        "seconds": rnd(secs, 3),
        "tokens_per_s": rnd(n / secs, 1),
    }


# ---------------------------------------------------------------------------------------------
# orchestration (parent process)


class GpuSuite:
    def __init__(
        self,
        workdir,
        quick,
        repeats,
        budget_s,
        log,
        simulate=False,
        vllm_python=None,
        lengths=None,
        done=None,
        save=None,
    ):
        self.work = Path(workdir)
        self.quick, self.repeats, self.log = quick, repeats, log
        self.budget_s = budget_s
        self.t0 = time.time()
        self.simulate = simulate
        self.vllm_python = vllm_python
        self.arch_name = "tiny" if simulate else "qwen2.5-math-1.5b"
        self.arch = ARCHS[self.arch_name]
        if lengths:
            self.lengths = list(lengths)
        elif simulate:
            self.lengths = [128] if quick else [64, 128, 256]
        else:
            self.lengths = [4096] if quick else [8192, 4096, 16384]
        self.main_length = 8192 if 8192 in self.lengths else self.lengths[0]
        self.steps, self.warmup = (2, 1) if quick else (3, 1)
        self.flash = bool(importlib.util.find_spec("flash_attn")) and not simulate
        self.liger = bool(importlib.util.find_spec("liger_kernel")) and not simulate
        self.items: dict = dict(done or {})
        self.save = save or (lambda: None)
        self.skipped: list[str] = []
        self.model: dict | None = None
        self.data: dict = {}

    # -- helpers --------------------------------------------------------------------------------
    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def _record(self, key, value):
        self.items[key] = value
        self.save()

    def _want(self, key, cost_s=60) -> bool:
        prev = self.items.get(key)
        if prev is not None and ("error" not in prev or prev.get("oom")):
            return False  # done in an earlier (resumed) run (an out-of-memory result is a result)
        if self.left() < cost_s:
            if key not in self.skipped:
                self.skipped.append(key)
            return False
        return True

    def settings(self) -> dict:
        attn = "flash_attention_2" if self.flash else "sdpa"
        on_gpu = not self.simulate
        return {
            "threads": 4 if on_gpu else 1,
            "scratch": str(self.work),
            "per_device_batch_size": 1,
            "sft": {"per_device_batch_size": 2, "global_batch_size": 4, "max_length": 40000, "learning_rate": 1e-5},
            "pairs": {
                "per_device_batch_size": 1,
                "global_batch_size": 4,
                "max_prompt_length": 800,
                "max_response_length": 40000,
                "learning_rate": 1e-6,
                "alpha": 0.8,
                "beta": 0.1,
            },
            "run_overrides": {
                "bf16": on_gpu,
                "gradient_checkpointing": True,
                "attn_implementation": attn,
                "padding_free": self.flash,
                "logprob_chunk_size": 512,
            },
            "trl_args": {
                "bf16": on_gpu,
                "gradient_checkpointing": True,
                "attn_implementation": attn,
                "padding_free": self.flash,
            },
        }

    def ensure_model(self) -> bool:
        if self.model is None:
            self.log(f"  building the random-weight {self.arch_name} model ...")
            self.model = run_worker(
                "bench_gpu:prepare_model", {"workdir": str(self.work), "arch": self.arch_name}, timeout=1800
            )
            self.items["model"] = self.model
        return "error" not in self.model

    def data_dir(self, length: int, equal: bool, global_batch: int | None = None, n: int | None = None) -> str | None:
        key = (length, equal, global_batch, n)
        if key not in self.data:
            d = self.work / f"data-{length}-{'eq' if equal else 'mix'}-{global_batch or 4}"
            s = self.settings()
            if global_batch:
                s["pairs"]["global_batch_size"] = s["sft"]["global_batch_size"] = global_batch
                s["sft"]["per_device_batch_size"] = min(s["sft"]["per_device_batch_size"], global_batch)
            steps = n or self.steps
            res = run_worker(
                "bench_gpu:prepare_data",
                {
                    "workdir": str(d),
                    "model_dir": self.model["path"],
                    "length": length,
                    "equal": equal,
                    "n_pairs": steps * s["pairs"]["global_batch_size"],
                    "n_sft": steps * s["sft"]["global_batch_size"],
                    "settings": s,
                },
                timeout=900,
            )
            self.data[key] = None if "error" in res else str(d)
            if "error" in res:
                self.log(f"    data for {length} failed: {res['error']} {res.get('log_tail', '')[-500:]}")
        return self.data[key]

    def _mfu(self, r: dict) -> dict:
        if not r or "error" in r or not r.get("seconds"):
            return r
        flops = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"])
        full = model_flops(self.arch, r["tokens"], r["sum_seq_len_sq"], full_attention=True)
        tf = flops / r["seconds"] / 1e12
        r = dict(r, model_tflops_per_s=rnd(tf, 3), model_tflops_per_s_full_attn=rnd(full / r["seconds"] / 1e12, 3))
        ceiling = (self.items.get("matmul") or {}).get("tflops_best")
        sheet = (self.items.get("matmul") or {}).get("datasheet_bf16_tflops")
        r["mfu_vs_matmul_ceiling"] = rnd(tf / ceiling, 4) if ceiling else None
        r["mfu_vs_datasheet"] = rnd(tf / sheet, 4) if sheet else None
        return r

    def variants(self) -> dict:
        """name -> (impl, variant, overrides, liger)."""
        other_layout = "padded" if self.flash else "padding_free"
        v = {
            "ours_redi": ("ours", "redi", {}, False),
            "trl_dpo_precomputed": ("trl", "dpo_precomputed", {}, False),
            "ours_sft": ("ours", "sft", {}, False),
            "trl_sft": ("trl", "sft", {}, False),
            "trl_dpo_ref_model": ("trl", "dpo_ref_model", {}, False),
            f"ours_redi_{other_layout}": ("ours", "redi", {"padding_free": not self.flash}, False),
            "ours_redi_naive": ("ours", "redi", {"logprob_chunk_size": 0}, False),
            f"ours_sft_{other_layout}": ("ours", "sft", {"padding_free": not self.flash}, False),
        }
        if self.liger:
            v["ours_redi_liger"] = ("ours", "redi", {}, True)
        return v

    def _measure(self, length: int, name: str, steps=None, data=None) -> dict:
        impl, variant, overrides, liger = self.variants()[name]
        data = data or self.data_dir(length, equal=False)
        if data is None:
            return {"error": "no data"}
        r = run_worker(
            "bench_trainers:measure",
            {
                "impl": impl,
                "variant": variant,
                "workdir": data,
                "steps": steps or self.steps,
                "warmup": self.warmup,
                "overrides": overrides,
                "liger": liger,
            },
            threads=4,
            timeout=900,
        )
        return self._mfu(r)

    # -- items ----------------------------------------------------------------------------------
    def steps_pair(self, length: int, a: str, b: str | None):
        """A (and B) at ``length``, interleaved; records each under steps/<L>/<name>."""
        names = [a] + ([b] if b else [])
        keys = [f"steps/{length}/{n}" for n in names]
        todo = [n for n, k in zip(names, keys) if self._want(k, cost_s=90 * self.repeats)]
        if not todo:
            return
        self.log(f"  steps at {length}: {', '.join(todo)}")
        runs = interleaved({n: (lambda n=n: self._measure(length, n)) for n in todo}, self.repeats, self.log)
        for n in todo:
            rs = runs[n]
            ok = [r for r in rs if "error" not in r]
            best = {
                "tokens_per_s_median": rnd(median([r["tokens_per_s"] for r in ok]), 1) if ok else None,
                "mfu_vs_matmul_ceiling_median": (
                    rnd(median([r.get("mfu_vs_matmul_ceiling") for r in ok]), 4) if ok else None
                ),
                "mfu_vs_datasheet_median": rnd(median([r.get("mfu_vs_datasheet") for r in ok]), 4) if ok else None,
                "cuda_peak_allocated_gib": max((r.get("cuda_peak_allocated_gib") or 0) for r in rs) or None,
                "runs": rs,
            }
            if not ok:
                best["error"] = rs[-1].get("error", "failed")
                best["oom"] = all(r.get("oom") for r in rs)
            self._record(f"steps/{length}/{n}", best)

    def longest(self, name: str, max_probes: int = 6):
        key = f"longest/{name}"
        if not self._want(key, cost_s=240):
            return
        limit = self.arch["max_position_embeddings"] - PROMPT_DIGITS - 16
        first = min(19000, limit) if not self.simulate else min(512, limit)
        gran = 1024 if not self.simulate else 64
        lo, hi, probes = None, None, []
        length = first
        while len(probes) < max_probes and self.left() > 90:
            data = self.data_dir(length, equal=True, global_batch=1, n=2)
            r = self._measure(length, name, steps=2, data=data) if data else {"error": "no data"}
            fits = "error" not in r
            oom = r.get("oom") or r.get("returncode") in (-9, 137) or "out of memory" in str(r.get("error", "")).lower()
            probes.append(
                {
                    "response_tokens": length,
                    "fits": fits,
                    "oom": bool(oom) if not fits else False,
                    "cuda_peak_allocated_gib": r.get("cuda_peak_allocated_gib"),
                    "error": None if fits else str(r.get("error"))[:300],
                }
            )
            self.log(
                f"    {name} at 2 x {length}: {'fits' if fits else 'does not fit'}"
                f" (peak {r.get('cuda_peak_allocated_gib')} GiB)"
            )
            if not fits and not oom:
                break  # a real failure, not memory: stop searching
            if fits:
                lo = length
            else:
                hi = length
            if lo is not None and lo >= limit:
                break
            if hi is not None and lo is not None and hi - lo <= gran:
                break
            if hi is None:
                length = limit if lo < limit else lo
                if length == lo:
                    break
            elif lo is None:
                length = max(gran, (hi // 2) // gran * gran)
                if length >= hi:
                    break
            else:
                length = ((lo + hi) // 2) // gran * gran
                if length <= lo:
                    break
        self._record(
            key,
            {
                "longest_fitting_response_tokens": lo,
                "smallest_failing_response_tokens": hi,
                "search_limit": limit,
                "probes": probes,
                "note": "pair = chosen and rejected both of this length, ~128-token prompt, 2 "
                "optimizer steps, gradient checkpointing, bf16 autocast, fp32 AdamW",
            },
        )

    def generation(self):
        key = "generate"
        if not self._want(key, cost_s=240):
            return
        python = None
        backend = "transformers"
        if self.vllm_python:
            backend, python = "vllm", self.vllm_python
        elif importlib.util.find_spec("vllm") and not self.simulate:
            backend = "vllm"
        if self.simulate:
            args = {"prompts": 2, "samples": 2, "max_new_tokens": 32, "max_model_len": 1024}
        elif backend == "vllm":
            args = {
                "prompts": 8 if self.quick else 32,
                "samples": 4,
                "max_new_tokens": 2048 if self.quick else 8192,
                "max_model_len": 32768,
            }
        else:
            args = {
                "prompts": 4 if self.quick else 8,
                "samples": 4,
                "max_new_tokens": 512 if self.quick else 2048,
                "max_model_len": 32768,
            }
        self.log(f"  generation ({backend}): {args}")
        r = run_worker(
            "bench_gpu:generate",
            {"model_dir": self.model["path"], "backend": backend, **args},
            python=python,
            timeout=min(1200, max(120, self.left())),
        )
        self._record(key, r)

    def run(self) -> dict:
        if self._want("matmul", cost_s=30):
            self.log("  matmul ceiling ...")
            n, iters = (256, 3) if self.simulate else (8192, 50)
            self._record("matmul", run_worker("bench_gpu:matmul", {"n": n, "iters": iters}, timeout=600))
        if not self.ensure_model():
            return self.result()
        L = self.main_length
        self.steps_pair(L, "ours_redi", "trl_dpo_precomputed")
        self.longest("ours_redi")
        self.steps_pair(L, "ours_sft", "trl_sft")
        self.steps_pair(L, "trl_dpo_ref_model", None)
        for name in self.variants():
            if name not in ("ours_redi", "trl_dpo_precomputed", "ours_sft", "trl_sft", "trl_dpo_ref_model"):
                self.steps_pair(L, name, None)
        for length in self.lengths:
            if length != L:
                self.steps_pair(length, "ours_redi", "trl_dpo_precomputed")
                self.steps_pair(length, "ours_sft", "trl_sft")
        for length in self.lengths:
            if length != L:
                for name in self.variants():
                    if name.startswith("ours_") and name not in ("ours_redi", "ours_sft"):
                        self.steps_pair(length, name, None)
        self.generation()
        for name in ("trl_dpo_precomputed", "ours_redi_naive", "trl_dpo_ref_model"):
            if name in self.variants():
                self.longest(name)
        return self.result()

    def result(self) -> dict:
        return {
            "arch": self.arch_name,
            "arch_config": self.arch,
            "simulate": self.simulate,
            "flash_attn": self.flash,
            "liger": self.liger,
            "lengths": self.lengths,
            "main_length": self.main_length,
            "steps": self.steps,
            "warmup_steps": self.warmup,
            "repeats": self.repeats,
            "budget_s": self.budget_s,
            "skipped_for_budget": self.skipped,
            "flops_formula": "6*N*T + 6*layers*d_attn*sum(S^2) (causal)",
            "items": self.items,
            "comparisons": comparisons(self.items, self.main_length),
        }


def comparisons(items: dict, main_length: int) -> dict:
    out = {}
    lengths = sorted({int(k.split("/")[1]) for k in items if k.startswith("steps/")})
    for L in lengths:

        def tps(name, L=L):
            return (items.get(f"steps/{L}/{name}") or {}).get("tokens_per_s_median")

        for label, a, b in (
            ("redi_vs_trl_dpo_precomputed", "ours_redi", "trl_dpo_precomputed"),
            ("redi_vs_trl_dpo_ref_model", "ours_redi", "trl_dpo_ref_model"),
            ("sft_vs_trl_sft", "ours_sft", "trl_sft"),
            ("redi_chunked_vs_naive", "ours_redi", "ours_redi_naive"),
            ("redi_default_vs_padded", "ours_redi", "ours_redi_padded"),
            ("redi_padding_free_vs_default", "ours_redi_padding_free", "ours_redi"),
            ("redi_liger_vs_default", "ours_redi_liger", "ours_redi"),
        ):
            r = ratio(tps(a), tps(b))
            if r is not None:
                out[f"{L}/{label}"] = r
    return out
