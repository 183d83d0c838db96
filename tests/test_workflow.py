"""The Snakemake workflow itself: lint, format, the paper DAG, and a smoke run of the default.

The smoke run uses config/test.yaml (smaller than the default) and asserts that the reports
hold numbers; it is the one test that exercises every stage together.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(*args, cwd=ROOT, check=True, timeout=1800):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def test_snakefmt_clean():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "rules/"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_lint_reports_nothing():
    result = snakemake("--lint", "--cores", "1", "--nolock", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output


def test_paper_dag_builds_offline():
    result = snakemake("-n", "--nolock", "--configfile", "config/paper.yaml", "--cores", "1", "--quiet", "rules")
    out = result.stdout + result.stderr
    for rule in (
        "download_corpus",
        "normalize_corpus",
        "verify_shard",
        "gather_verification",
        "curate",
        "prepare_student",
    ):
        assert rule in out, out
    # one training job per run (2 SFT + 16 stage-2 runs) and one shard job per verification shard
    assert any(line.split()[:2] == ["train_stage2", "16"] for line in out.splitlines()), out
    assert any(line.split()[:2] == ["train_sft", "2"] for line in out.splitlines()), out
    assert any(line.split()[:2] == ["verify_shard", "32"] for line in out.splitlines()), out


def test_invalid_config_fails_before_any_job_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  stage2:\n    runs:\n      - {objective: redi, alpha: 1.5, learning_rate: 1.0e-6}\n")
    result = snakemake("-n", "--nolock", "--configfile", str(bad), "--cores", "1", check=False)
    assert result.returncode != 0
    assert "alpha" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole workflow on config/test.yaml in a scratch working directory."""
    workdir = tmp_path_factory.mktemp("smoke")
    shutil.copytree(ROOT / "config", workdir / "config")
    shutil.copytree(ROOT / "data", workdir / "data")
    snakemake("-s", str(ROOT / "Snakefile"), "--cores", "2", "--configfile", "config/test.yaml", cwd=workdir)
    return workdir


@pytest.mark.slow
def test_smoke_run_writes_reports_with_numbers(smoke_run):
    import pandas as pd

    from redi.plan import all_runs, load_config

    runs = all_runs(load_config(smoke_run / "config" / "test.yaml"))
    table = pd.read_csv(smoke_run / "reports" / "tables" / "table1_final.csv")
    assert set(runs) <= set(table["run"]), table
    assert (table["status"] == "ok").all(), table
    assert table["value_pct"].between(0, 100).all() and table["sem_pct"].notna().all()
    for run in runs:
        summary = json.loads((smoke_run / "results" / "train" / run / "summary.json").read_text())
        assert summary["stopped_reason"] == "completed"
        for step in summary["saved_checkpoints"]:
            metrics = json.loads(
                (smoke_run / "results" / "eval" / run / f"step-{step}" / "synthetic" / "metrics.json").read_text()
            )
            assert metrics["n_samples"] == 2 and 0.0 <= metrics["pass@1"] <= 1.0
    for figure in ("fig2_sft_accuracy", "fig_stage2_alpha_sweep", "fig_stage2_objectives", "fig_passk_synthetic"):
        assert (smoke_run / "reports" / "figures" / f"{figure}.png").stat().st_size > 10_000
    summary = (smoke_run / "reports" / "summary.md").read_text()
    assert "%" in summary and "redi-a0.8-lr1e-4" in summary
    funnel = (smoke_run / "reports" / "tables" / "curation.md").read_text()
    assert "select_sft" in funnel
    # the run with the student's own negatives: sampled, paired, its own reference pass, compared
    own = json.loads((smoke_run / "results" / "data" / "student-negatives" / "report.json").read_text())
    assert own["pairs_by_rejected_origin"]["student"] == own["pairs"] > 0
    assert own["student_samples"]["samples"] == 2 * own["problems"]
    assert (smoke_run / "results" / "train" / "sft" / "ref_logps-student.parquet").is_file()
    assert summary.count("Own negatives (`negatives: student`)") == 1
    assert "dpo-b0.1-lr1e-4-neg-student` (DPO β=0.1, LR 1e-4, own negatives)" in summary
    assert "`dpo-b0.1-lr1e-4-neg-student` is" in summary and "`dpo-b0.1-lr1e-4` (" in summary  # its teacher twin


@pytest.mark.slow
def test_smoke_rerun_has_nothing_to_do(smoke_run):
    result = snakemake(
        "-s", str(ROOT / "Snakefile"), "-n", "--cores", "1", "--configfile", "config/test.yaml", cwd=smoke_run
    )
    assert "Nothing to be done" in result.stdout + result.stderr
