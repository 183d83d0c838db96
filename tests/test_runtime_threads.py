"""A job's thread count reaches torch, OpenMP and the tokenizers' Rayon pool (issue 17)."""

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
    # the demo: auto, every core it is given (alone in its stage; issue 17)
    demo = load_config(ROOT / "config/config.yaml")["resources"]["curate"]
    assert demo["threads"] == "auto" and job_threads(demo, 2) == 2 and job_threads(demo, None) == 1
