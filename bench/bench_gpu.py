"""The GPU suite's building blocks (its orchestration is ``gpu_check.py``, the one GPU suite:
``bench/gpu_check`` for the first-GPU check, ``bench/run.py --only gpu`` for its extended form):
the model shapes, the one table of datasheet ceilings, model FLOPs, and the workers that build
the random-weight model, its data and the matmul ceiling.

Model FLOPs (MFU numerator), per optimizer step::

    6 * N * T  +  6 * n_layers * d_attn * sum_i S_i^2

``N`` = parameters used in matmuls (all linear layers + the LM head; the input embedding lookup is
not a matmul; with tied embeddings N equals the parameter count), ``T`` = non-padding tokens,
``S_i`` = length of sequence ``i``, ``d_attn`` = heads x head_dim. The attention term counts the
causal half of QK^T and AV (2 * S^2 * d_attn forward per layer, x3 for forward+backward); PaLM's
convention counts the full square (12 * ...), reported as ``model_tflops_per_s_full_attn``.
Activation recomputation, padding and the DPO reference forward are not counted (they are
overhead, not model FLOPs). MFU is reported against the matmul rate measured by the check and
against the datasheet dense bf16 peak of the detected device (:data:`DATASHEET_BF16_TFLOPS`).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from benchlib import median, rnd

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
    ("H200 NVL", 835.0),
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
