"""The default CPU demo's wall time: ``snakemake --cores N`` on ``config/config.yaml`` in a scratch
copy (``config/`` and ``data/`` copied into a temporary directory, run with ``-s <repo>/Snakefile
-d <tmp>``), plus the sums of the rules' ``benchmark:`` files per stage (``benchmarks/<stage>/``).

Slow (minutes) and it occupies every core it is given: run it alone (``--only pipeline``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from benchlib import REPO, rnd

# rule -> stage of the demo's timeline (the critical path is data -> sft -> stage2/eval -> report)
STAGE_OF_RULE = {
    "synthesize_corpus": "data", "normalize_corpus": "data", "verify_shard": "data",
    "gather_verification": "data", "curate": "data", "build_student": "model",
    "train_sft": "sft", "reference_logps": "stage2", "train_stage2": "stage2",
    "eval_student": "eval", "eval_checkpoint": "eval", "select_best": "eval", "eval_final": "eval",
    "eval_group": "eval", "report_build": "report", "model_card": "report", "all": "report",
}  # fmt: skip


def _bench_sums(root: Path) -> dict:
    stages: dict = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
    for f in sorted((root / "benchmarks").rglob("*.tsv")):
        stage = f.relative_to(root / "benchmarks").parts[0]
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        for row in rows[-1:]:  # one line per benchmark repeat; the workflow runs one
            st = stages[stage]
            st["jobs"] += 1
            st["wall_s"] += float(row.get("s") or 0)
            try:
                st["cpu_s"] += float(row.get("cpu_time") or 0)
                st["max_rss_mb"] = max(st["max_rss_mb"], float(row.get("max_rss") or 0))
            except ValueError:  # "NA" where psutil could not read a value
                pass
    return {k: {kk: rnd(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()} for k, v in stages.items()}


def stage_spans(root: Path) -> dict:
    """Per stage of the timeline: seconds from the run's first job to the stage's first job start
    and last job end, and the jobs per rule, from the newest ``.snakemake/log/*.snakemake.log``
    (its lines are stamped to the second)."""
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return {}
    spans: dict = {}
    rules: dict = defaultdict(int)
    stamp = t0 = None
    for line in logs[-1].read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            stamp = datetime.strptime(line[1:-1], "%a %b %d %H:%M:%S %Y")
            t0 = t0 or stamp
            continue
        start = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line)
        end = re.match(r"Finished jobid: \d+ \(Rule: (\w+)\)", line)
        if stamp is None or not (start or end):
            continue
        rule = (start or end).group(1)
        span = spans.setdefault(STAGE_OF_RULE.get(rule, rule), {"start_s": None, "end_s": None})
        t = (stamp - t0).total_seconds()
        if start:
            rules[rule] += 1
            span["start_s"] = t if span["start_s"] is None else min(span["start_s"], t)
        else:
            span["end_s"] = t if span["end_s"] is None else max(span["end_s"], t)
    return {"stages": spans, "jobs_per_rule": dict(rules)}


def summarize(root: Path) -> dict:
    """A finished run's scratch folder: per-stage sums of the benchmark files and the timeline."""
    stages = _bench_sums(root)
    return {
        "stages": stages,
        "timeline": stage_spans(root),
        "sum_of_job_wall_s": rnd(sum(s["wall_s"] for s in stages.values()), 1),
        "sum_of_job_cpu_s": rnd(sum(s["cpu_s"] for s in stages.values()), 1),
        "jobs": sum(s["jobs"] for s in stages.values()),
    }


def run(cores: int = 2, log=print, keep: bool = False, timeout_s: int = 3600) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        for d in ("config", "data"):
            shutil.copytree(REPO / d, tmp / d)
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "-s", str(REPO / "Snakefile"), "-d", str(tmp)]
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        log(f"  {' '.join(cmd)}")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=str(tmp), env=env, capture_output=True, text=True, timeout=timeout_s)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            rc, tail = None, f"timed out after {timeout_s} s"
        wall = time.perf_counter() - t0
        out = {
            "command": f"snakemake --cores {cores} -s <repo>/Snakefile -d <scratch copy of config/ and data/>",
            "cores": cores,
            "returncode": rc,
            "wall_s": rnd(wall, 1),
            **summarize(tmp),
        }
        if rc != 0:
            out["error"] = "snakemake failed" if rc is not None else "timed out"
            out["log_tail"] = tail
        if keep:
            out["scratch"] = str(tmp)
        return out
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # summarise a run made by hand: python bench/bench_pipeline.py <folder>
    print(json.dumps(summarize(Path(sys.argv[1])), indent=1))
