"""The report rule in the real workflow: the rule's outputs are the layout's files, Snakemake
rebuilds reports/ from an existing results tree running no other rule, and
`snakemake --report` gives one HTML page (and a zip) with every table and figure."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import handmade_tree  # noqa: E402

from redi.plan import load_config  # noqa: E402
from redi.report.layout import TABLES, all_report_files, figure_names, snakemake_outputs  # noqa: E402

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def fake_report(value, caption=None, category=None, subcategory=None):
    return value


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_rule_outputs_are_the_layout_files(name):
    config = load_config(ROOT / "config" / name)
    outputs = snakemake_outputs(config, fake_report, "../workflow/report")
    flat = []
    for value in outputs.values():
        flat += value if isinstance(value, list) else [value]
    assert sorted(flat) == sorted(all_report_files(config))
    captions = {"workflow.rst", "summary.rst", "fig_sft.rst", "fig_stage2.rst", "fig_passk.rst"} | {
        f"{t}.rst" for t in TABLES
    }
    for caption in captions:
        assert (ROOT / "workflow" / "report" / caption).is_file(), caption


def snakemake(workdir: Path, *args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "1", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_snakemake_rebuilds_reports_and_builds_the_html_report(tmp_path):
    work = handmade_tree.write_tree(tmp_path / "work", ROOT / "config" / "config.yaml")
    config = load_config(work / "config.yaml")
    # the validated config, written out in full, is what the Snakefile reads as config/config.yaml
    for stage in ("data", "verify"):
        config["resources"].setdefault(
            stage, {"gpu": 0, "mem_mb": 8000, "runtime": "2h", "threads": 1, "cpus_per_gpu": 8, "gpu_model": None}
        )
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    out = snakemake(work, "--allowed-rules", "report_build", "--forcerun", "report_build")
    assert "report_build" in out
    for rule in ("train_sft", "train_stage2", "eval_checkpoint", "eval_final", "curate"):
        assert f"rule {rule}:" not in out, rule
    for path in all_report_files(config):
        assert (work / path).stat().st_size > 0, path
    assert (work / "logs" / "report" / "report_build.log").is_file()
    assert (work / "benchmarks" / "report" / "report_build.tsv").is_file()

    snakemake(work, "--report", "report.html")
    html = (work / "report.html").read_text(errors="replace")
    for name in TABLES:
        assert f"{name}.html" in html, name
    for names in figure_names(config).values():
        for name in names:
            assert f"{name}.png" in html, name
    snakemake(work, "--report", "report.zip")
    with zipfile.ZipFile(work / "report.zip") as archive:
        members = archive.namelist()
    assert any(m.endswith("summary.html") for m in members)
    assert any(m.endswith("fig_stage2_alpha_sweep.png") for m in members)
