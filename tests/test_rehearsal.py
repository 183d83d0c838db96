"""What the cluster rehearsal (.ci/rehearsal.py, run by CI on a real one-node SLURM) relies on,
checked without a cluster: a retried job gets more time, the shipped profile polls job states
in a way that sees a cancelled job end, and a job's error reaches its own log file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_runtime_grows_with_attempt():
    from redi.plan import runtime_for_attempt

    assert runtime_for_attempt("2h", 1) == "2h"
    assert runtime_for_attempt("2h", 2) == "4h"
    assert runtime_for_attempt("45m", 3) == "135m"
    assert runtime_for_attempt("1d", 2) == "2d"
    for bad in (("2 h", 1), ("90", 1), ("2h", 0)):
        with pytest.raises(ValueError, match="runtime"):
            runtime_for_attempt(*bad)


@pytest.mark.parametrize("configfile", ["config/paper.yaml", "config/teacher.yaml"])
def test_every_job_time_limit_grows_with_attempt(configfile):
    """Each rule's runtime, as Snakemake evaluates it for attempts 1 and 2: the retry of a job
    killed at its time limit (the SLURM profile retries once) gets twice the time, in minutes as
    Snakemake hands them to the SLURM plugin (``sbatch -t``)."""
    from snakemake.resources import Resource

    from helpers import parsed_workflow

    with parsed_workflow(configfile) as workflow:
        config = workflow.config
        checked = 0
        for rule in workflow.rules:
            runtime = rule.resources.get("runtime")
            if runtime is None or (not runtime.is_evaluable() and runtime.value is None):
                continue  # no runtime of its own (all, model_card): the profile's default applies
            assert runtime is not None and runtime.is_evaluable(), f"rule {rule.name}: fixed runtime {runtime!r}"
            first, second = (runtime.evaluate(wildcards=None, attempt=k).value for k in (1, 2))
            assert second == 2 * first > 0, (rule.name, first, second)
            checked += 1
        assert checked >= 10
        train = workflow._rules["train_stage2"].resources["runtime"].evaluate(wildcards=None, attempt=1).value
        assert train == Resource("runtime", config["resources"]["train"]["runtime"]).value


def test_profile_polls_job_states_with_squeue():
    """sacct reports a cancelled job as ``CANCELLED by <uid>``, which the SLURM plugin (2.8.0)
    does not take as finished (Snakemake polled forever after a scancel or a preemption in cancel
    mode); squeue reports ``CANCELLED``. The key must be one the installed plugin accepts."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile.get("slurm-status-command") == "squeue"
    assert profile.get("retries", 0) >= 1
    help_text = subprocess.run([str(BIN / "snakemake"), "--help"], capture_output=True, text=True, timeout=300).stdout
    assert "--slurm-status-command" in help_text


def test_failed_job_error_reaches_its_log(tmp_path):
    """A real Snakemake job of a real adapter that fails (a bad setting): its traceback is in the
    rule's own log file, not only on Snakemake's console."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(f"""
        rule corpus:
            output:
                train="train.parquet",
                test="test.json",
            log:
                "logs/corpus.log",
            params:
                cfg={{"seed": 1, "bogus_key": 2}},
            script:
                "{ROOT}/workflow/scripts/data_corpus.py"
        """)
    )
    r = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--nolock", "-d", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    log = (tmp_path / "logs/corpus.log").read_text()
    assert "Traceback" in log and "bogus_key" in log, (log, r.stderr[-2000:])
