"""Process settings of a job (``redi.runtime.set_threads``): its thread count reaches
torch, OpenMP and the tokenizers' Rayon pool, and freed memory is reused, not faulted back in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redi.runtime import src_path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys
from redi.runtime import set_threads
set_threads(int(sys.argv[1]))
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
ids = [e.ids for e in tok.encode_batch(["a b"] * 64)]
print(json.dumps({k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
      "TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")} | {"torch": torch.get_num_threads(), "ids": ids[0]}))
"""


@pytest.mark.parametrize("n", [1, 2])
def test_set_threads_sizes_every_pool(n):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")}
    env["PYTHONPATH"] = src_path()
    out = subprocess.run([sys.executable, "-c", PROBE, str(n)], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["OMP_NUM_THREADS"] == str(n) and got["torch"] == n
    assert got["OMP_WAIT_POLICY"] == "PASSIVE"
    assert got["RAYON_NUM_THREADS"] == str(n)
    assert got["TOKENIZERS_PARALLELISM"] == ("true" if n > 1 else "false")
    assert got["ids"] == [0, 1]


def test_curation_job_takes_its_own_threads():
    """The curate rule reads resources.curate (the paper gives its tokenizer a node's cores)."""
    from redi.plan import job_threads, load_config, stage_resources

    cfg = load_config(ROOT / "config/paper.yaml")
    assert job_threads(cfg["resources"]["curate"], None) == 32
    assert stage_resources(cfg, "curate")["mem_mb"] == 32000
    # the demo: auto, every core it is given (alone in its stage)
    demo = load_config(ROOT / "config/config.yaml")["resources"]["curate"]
    assert demo["threads"] == "auto" and job_threads(demo, 2) == 2 and job_threads(demo, None) == 1


MALLOC_PROBE = """
import json, resource, sys
tuned = None
if sys.argv[1] == "tuned":
    from redi.runtime import keep_freed_memory
    tuned = keep_freed_memory()
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=1024, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
model = Qwen2ForCausalLM(cfg).eval()
ids = torch.randint(0, 1024, (64, 120))
kw = dict(do_sample=True, top_k=0, pad_token_id=0)
with torch.inference_mode():
    for _ in range(2):  # reach the peak
        model.generate(input_ids=ids, max_new_tokens=64, min_new_tokens=64, **kw)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.manual_seed(1)
    for _ in range(4):
        out = model.generate(input_ids=ids, max_new_tokens=64, min_new_tokens=64, **kw)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
print(json.dumps({"tuned": tuned, "faults": faults, "tokens": out[:, 120:].tolist()}))
"""


def _malloc_probe(mode: str, probe: str = MALLOC_PROBE, **env_extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")}
    env.update(PYTHONPATH=src_path(), **env_extra)
    out = subprocess.run([sys.executable, "-c", probe, mode], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tuned_with(**env_extra: str) -> bool:
    probe = "import json; from redi.runtime import keep_freed_memory; print(json.dumps({'tuned': keep_freed_memory()}))"
    return _malloc_probe("tuned", probe, **env_extra)["tuned"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_generation_reuses_freed_memory_and_samples_the_same_tokens():
    """Four generations of 64 tokens for 64 rows with a real Qwen2 model, after two that reach
    the peak: a default process faults 68-127 k pages back in (freed memory went back to the
    kernel), a tuned one 1-4 k (six runs each); the sampled tokens are the same."""
    base, tuned = _malloc_probe("base"), _malloc_probe("tuned")
    assert tuned["tuned"] is True
    assert tuned["tokens"] == base["tokens"]
    # measured ratio >= 18 here (six runs), >= 10 with transparent huge pages on torch's buffers
    assert tuned["faults"] * 3 < base["faults"], (tuned["faults"], base["faults"])
    # the user's own malloc settings stand; an unrelated glibc tunable does not count
    assert _tuned_with() is True
    assert _tuned_with(MALLOC_TRIM_THRESHOLD_="131072") is False
    assert _tuned_with(GLIBC_TUNABLES="glibc.malloc.arena_max=2") is False
    assert _tuned_with(GLIBC_TUNABLES="glibc.rtld.optional_static_tls=2048") is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_every_job_keeps_freed_memory():
    """Jobs that never set torch's threads (data jobs, their forked Math-Verify workers) get it
    from the adapters' bootstrap; every ``redi`` command from its entry point."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "workflow/scripts"), src_path()])
    probe = "import _bootstrap, redi.runtime as r; print(r._allocator_tuned)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    probe = ("import redi.runtime as r, redi.cli as c\n"
             "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\nprint(r._allocator_tuned)")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
