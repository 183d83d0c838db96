"""The Snakemake adapters of the evaluation stage, run with a stand-in ``snakemake`` object."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers import save_tiny_student

iocontainers = pytest.importorskip("snakemake.iocontainers")
Namedlist = iocontainers.Namedlist

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def _snakemake(tmp_path, input, output, params, wildcards, threads=1, resources=None):
    def nl(x):
        return Namedlist(fromdict=x) if isinstance(x, dict) else Namedlist(toclone=list(x))

    return SimpleNamespace(
        input=nl(input),
        output=nl(output),
        params=nl(params),
        wildcards=nl(wildcards),
        threads=threads,
        resources=nl(resources or {}),  # as Snakemake gives it: the rule's resources (no gpu = CPU)
        log=Namedlist(toclone=[str(tmp_path / "job.log")]),
        config={},
    )


def _run(script, smk, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    runpy.run_path(str(SCRIPTS / script), init_globals={"snakemake": smk}, run_name="__main__")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("tiny"))


def test_eval_run_and_select_best(tmp_path, model_dir, monkeypatch):
    bench = tmp_path / "toy.json"
    bench.write_text(json.dumps([{"problem": f"{k}+{k}?", "answer": 2 * k} for k in range(3)]))
    # params.eval as rules/common.smk eval_params builds it: the evaluation section's job keys
    cfg = {"backend": "transformers", "sampling": {"max_new_tokens": 6},
           "batch_size": 4, "verify_timeout_s": 5, "vllm": {}, "n_samples": 2, "limit": None}  # fmt: skip
    metrics = []
    for step in (10, 20):  # eval_checkpoint: params.model_path, input.<bench>
        out = tmp_path / "results" / "eval" / "r" / f"step-{step}" / "toy"
        smk = _snakemake(
            tmp_path,
            input={"toy": str(bench), "summary": "unused"},
            output={"metrics": str(out / "metrics.json"), "samples": str(out / "samples.parquet")},
            params={"model_path": str(model_dir), "run": "r", "checkpoint": f"step-{step}", "eval": cfg},
            wildcards={"run": "r", "step": str(step), "bench": "toy"},
        )
        _run("eval_run.py", smk, monkeypatch)
        m = json.loads((out / "metrics.json").read_text())
        assert (m["checkpoint"], m["step"], m["n_samples"], m["n_problems"]) == (f"step-{step}", step, 2, 3)
        assert len(pd.read_parquet(out / "samples.parquet")) == 6
        metrics.append(out / "metrics.json")

    best_json = tmp_path / "results" / "eval" / "r" / "best.json"
    smk = _snakemake(tmp_path, metrics, [str(best_json)], {}, {"run": "r"})
    _run("eval_select_best.py", smk, monkeypatch)
    best = json.loads(best_json.read_text())
    assert best["run"] == "r" and best["checkpoint"] in ("step-10", "step-20")
    assert best["path"] == str(model_dir)

    # eval_final with ckpt=best: the model comes from best.json, the step too
    out = tmp_path / "results" / "eval" / "r" / "best" / "toy"
    smk = _snakemake(
        tmp_path,
        input={"toy": str(bench), "best": str(best_json), "model": "does/not/exist"},
        output={"metrics": str(out / "metrics.json"), "samples": str(out / "samples.parquet")},
        params={"run": "r", "checkpoint": "best", "eval": cfg},
        wildcards={"run": "r", "ckpt": "best", "bench": "toy"},
    )
    _run("eval_run.py", smk, monkeypatch)
    m = json.loads((out / "metrics.json").read_text())
    assert (m["checkpoint"], m["step"], m["model_path"]) == ("best", best["step"], str(model_dir))
