"""Issue 15: the `snakemake --report` page, opened in a real browser (headless Chromium).

Builds the report of a complete handmade results tree through the real workflow, renders it in
Chromium, and checks that the page is not blank and that the report's captions and sections are
on the rendered page; then the summary page (the answer first, the headline figure embedded) and
the samples browser (its script lists problems and their samples). Skips with a reason when
Chromium is not installed, except in CI (``REDI_REQUIRE_BROWSER=1``, set by .ci/run, which
installs the Debian package ``chromium``). The screenshots are kept under the test's tmp folder
(look at them: ``report.png``, ``summary.png``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import handmade_tree  # noqa: E402

from redi.plan import load_config  # noqa: E402

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000", "--virtual-time-budget=15000"]


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        if os.environ.get("REDI_REQUIRE_BROWSER"):
            pytest.fail("REDI_REQUIRE_BROWSER is set but no Chromium is installed (apt-get install -y chromium)")
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium); CI installs it")
    return found


def chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def snakemake(work: Path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1", *args],
                            cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"


def write_samples(results: Path) -> None:
    """samples.parquet beside every final metrics.json of the tree, consistent with its
    per-problem scores (the evaluation's format: redi.eval.run)."""
    import json

    import pandas as pd

    for path in results.glob("eval/*/best/*/metrics.json"):
        metrics = json.loads(path.read_text())
        rec = metrics["per_problem"]
        rows = []
        for pid, correct in zip(rec["problem_id"], rec["correct"]):
            for j in range(rec["samples"]):
                ok = j < correct
                rows.append({"problem_id": pid, "sample_index": j, "extracted": "4" if ok else "5",
                             "text": f"Okay.\n2 + 2 = {4 if ok else 5}.\n</think>\n\n$\\boxed{{{4 if ok else 5}}}$",
                             "correct": ok, "status": "ok", "length": 20, "finish_reason": "stop"})
        pd.DataFrame(rows).to_parquet(path.with_name("samples.parquet"))


@pytest.mark.slow
def test_html_report_renders_in_chromium(tmp_path):
    exe = browser()
    work = handmade_tree.write_tree(tmp_path / "work", ROOT / "config" / "config.yaml")
    config = load_config(work / "config.yaml")
    write_samples(work / "results")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(work, "--allowed-rules", "report_build", "--forcerun", "report_build")
    snakemake(work, "--report", "report.html")
    page = (work / "report.html").resolve().as_uri()

    shot = tmp_path / "report.png"
    result = chromium(exe, tmp_path / "profile-shot", f"--screenshot={shot}", page)
    assert shot.is_file(), result.stderr[-3000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 900 and pixels.shape[1] >= 1300
    ink = (pixels.min(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    assert 0.01 < ink < 0.95, f"screenshot looks blank or flooded: {ink:.3f} of pixels inked"
    assert pixels.std() > 0.05

    dom = chromium(exe, tmp_path / "profile-dom", "--dump-dom", page).stdout
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", dom, flags=re.S)).split())
    # the workflow description (workflow/report/workflow.rst) and the report's sections render
    for caption in ("REDI reproduction (arXiv 2505.24850)", "Start with Summary", "Tables", "Figures", "Samples"):
        assert caption in text, caption
    assert "fig_headline.png" in dom  # the headline figure is in the Snakemake report

    # the summary page: the answer first, bold rendered, the headline figure embedded and drawn
    reports = work / "reports"
    summary = tmp_path / "summary.png"
    chromium(exe, tmp_path / "profile-summary", f"--screenshot={summary}", (reports / "summary.html").as_uri())
    dom = chromium(exe, tmp_path / "profile-summary-dom", "--dump-dom", (reports / "summary.html").as_uri()).stdout
    assert "<strong>Did REDI beat SFT?</strong>" in dom and "**" not in dom
    assert 'src="data:image/png;base64,' in dom
    pixels = matplotlib.image.imread(str(summary))[..., :3]
    assert 0.01 < (pixels.min(axis=2) < 0.9).mean() < 0.95
    figure = matplotlib.image.imread(str(reports / "figures" / "fig_headline.png"))[..., :3]
    assert (figure.min(axis=2) < 0.9).mean() > 0.02  # drawn, not blank

    # the samples browser: its script runs, lists problems with their samples, and compares one
    # problem across runs
    page = (reports / "samples.html").as_uri()
    dom = chromium(exe, tmp_path / "profile-samples", "--dump-dom", page).stdout
    assert dom.count('class="problem"') >= 5, dom[-2000:]
    assert 'class="sample correct"' in dom and ("sample wrong" in dom or "sample no_answer" in dom)
    assert "pass@1" in dom and "samples per problem" in dom
