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


def test_eval_group_matches_the_per_checkpoint_jobs(tmp_path, model_dir, monkeypatch):
    """evaluation.group_per_run: one eval_group job writes what eval_checkpoint,
    select_best and eval_final write, with the same samples (each benchmark one evaluate() call
    with the same settings; the checkpoint's engine shared across benchmarks)."""
    toy, toy2 = tmp_path / "toy.json", tmp_path / "toy2.json"
    toy.write_text(json.dumps([{"problem": f"{k}+{k}?", "answer": 2 * k} for k in range(3)]))
    toy2.write_text(json.dumps([{"problem": f"{k}*{k}?", "answer": k * k} for k in range(2)]))
    cfg = {"backend": "transformers", "sampling": {"max_new_tokens": 6},
           "batch_size": 2, "verify_timeout_s": 5, "vllm": {}, "limit": None}  # fmt: skip
    inter, final = {**cfg, "n_samples": 2}, {**cfg, "n_samples": 3}
    ckpts = tmp_path / "train" / "r" / "checkpoints"
    ckpts.mkdir(parents=True)
    for step in (10, 20):
        (ckpts / f"checkpoint-{step}").symlink_to(model_dir)
    summary = tmp_path / "train" / "r" / "summary.json"
    summary.write_text(json.dumps({"saved_checkpoints": [10, 20]}))

    # one job per checkpoint and benchmark (group_per_run: false)
    single = tmp_path / "single" / "r"
    for step in (10, 20):
        out = single / f"step-{step}" / "toy"
        _run("eval_run.py", _snakemake(
            tmp_path, input={"toy": str(toy), "summary": str(summary)},
            output={"metrics": str(out / "metrics.json"), "samples": str(out / "samples.parquet")},
            params={"model_path": str(ckpts / f"checkpoint-{step}"), "run": "r", "checkpoint": f"step-{step}",
                    "eval": inter},
            wildcards={"run": "r", "step": str(step), "bench": "toy"}), monkeypatch)  # fmt: skip
    _run("eval_select_best.py", _snakemake(
        tmp_path, [str(single / f"step-{s}" / "toy" / "metrics.json") for s in (10, 20)],
        [str(single / "best.json")], {}, {"run": "r"}), monkeypatch)  # fmt: skip
    for bench, path in (("toy", toy), ("toy2", toy2)):
        out = single / "best" / bench
        _run("eval_run.py", _snakemake(
            tmp_path, input={bench: str(path), "best": str(single / "best.json"), "model": "unused"},
            output={"metrics": str(out / "metrics.json"), "samples": str(out / "samples.parquet")},
            params={"run": "r", "checkpoint": "best", "eval": final},
            wildcards={"run": "r", "ckpt": "best", "bench": bench}), monkeypatch)  # fmt: skip

    # one job for the run (group_per_run: true)
    grouped = tmp_path / "grouped" / "r"
    finals = [str(grouped / "best" / b / f) for b in ("toy", "toy2") for f in ("metrics.json", "samples.parquet")]
    _run("eval_group.py", _snakemake(
        tmp_path, input={"toy": str(toy), "toy2": str(toy2), "summary": str(summary), "model": "unused"},
        output={"best": str(grouped / "best.json")},
        params={"run": "r", "checkpoints": str(ckpts), "intermediate": {"benchmarks": ["toy"], "eval": inter},
                "final": {"benchmarks": ["toy", "toy2"], "eval": final}, "final_checkpoints": ["best"]},
        wildcards={"run": "r"}), monkeypatch)  # fmt: skip

    for f in finals:
        assert Path(f).is_file(), f
    one, many = json.loads((single / "best.json").read_text()), json.loads((grouped / "best.json").read_text())
    assert {k: one[k] for k in ("checkpoint", "step", "path", "pass@1")} == {
        k: many[k] for k in ("checkpoint", "step", "path", "pass@1")
    }
    for rel in ("step-10/toy", "step-20/toy", "best/toy", "best/toy2"):
        a, b = (pd.read_parquet(d / rel / "samples.parquet") for d in (single, grouped))
        pd.testing.assert_frame_equal(a, b)
        ma, mb = (json.loads((d / rel / "metrics.json").read_text()) for d in (single, grouped))
        assert (ma["checkpoint"], ma["step"], ma["pass@1"]) == (mb["checkpoint"], mb["step"], mb["pass@1"])


def test_scripts_import_this_checkouts_package_first(tmp_path):
    """Every adapter's ``_bootstrap`` puts this checkout's ``src/`` first on ``sys.path``, even
    when it is already on the path behind another ``redi`` (an editable install of another
    checkout: its .pth entry comes earlier). Before, an arena run in a fresh clone trained with
    the code of the checkout whose venv ran Snakemake, as its provenance showed."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    other = tmp_path / "other-checkout" / "redi"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    code = (f"import sys; sys.path[:0] = [{str(root / 'workflow' / 'scripts')!r}, {str(other.parent)!r}]; "
            f"sys.path.append({str(root / 'src')!r}); import _bootstrap, redi; print(redi.__file__)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == root / "src" / "redi" / "__init__.py"
