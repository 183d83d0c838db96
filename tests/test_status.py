"""`redi status` on a real-shaped results tree (tests/fixtures/results) cut back to mid-sweep:
every planned run and evaluation appears once, in the right state, with its log when it needs one."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from redi.eval.benchmarks import benchmark_paths
from redi.plan import all_runs, load_config
from redi.status import Status, render

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"


def tree(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(FIXTURE / "results", work / "results")
    config = load_config(FIXTURE / "config.yaml")
    return work, config


def test_states_of_a_sweep_in_flight(tmp_path):
    work, config = tree(tmp_path)
    res = work / "results"
    # running: a stage-2 run with live metrics, no summary yet
    run_dir = res / "train" / "redi-a0.8-lr1e-4"
    live = run_dir / "checkpoints" / "metrics.jsonl"
    live.parent.mkdir(parents=True)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()[:3]
    live.write_text("\n".join(lines) + "\n")
    for name in ("summary.json", "metrics.jsonl"):
        (run_dir / name).unlink()
    shutil.rmtree(res / "eval" / "redi-a0.8-lr1e-4")
    # failed: Snakemake reported the DPO run's job as failed
    dpo = res / "train" / "dpo-b0.1-lr1e-4"
    (dpo / "checkpoints").mkdir(parents=True)
    (dpo / "checkpoints" / "metrics.jsonl").write_text((dpo / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    for name in ("summary.json", "metrics.jsonl"):
        (dpo / name).unlink()
    shutil.rmtree(res / "eval" / "dpo-b0.1-lr1e-4")
    (work / ".snakemake" / "log").mkdir(parents=True)
    (work / ".snakemake" / "log" / "2026-11-30T101010.snakemake.log").write_text(
        "Error in rule train_stage2:\n    message: None\n    jobid: 12\n"
        "    input: results/train/sft/model, results/data/pref.jsonl, results/train/sft/ref_logps.parquet\n"
        "    output: results/train/dpo-b0.1-lr1e-4/model, results/train/dpo-b0.1-lr1e-4/metrics.jsonl, "
        "results/train/dpo-b0.1-lr1e-4/summary.json\n    log: logs/train/dpo-b0.1-lr1e-4.log (check log file(s) for "
        "error details)\n\n"
        "Shutting down, this might take some time.\n")
    # running evaluation: a journal being appended
    journal = res / "eval" / "simpo-b2-g1-lr1e-4" / "step-4" / "synthetic"
    (journal / "metrics.json").unlink()
    (journal / "generations.jsonl").write_text('{"problem_id": "a", "sample_index": 0}\n' * 5)
    bench = work / benchmark_paths(config["evaluation"]["benchmarks"])["synthetic"]
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(json.dumps([{"problem": f"{i} + 1", "answer": str(i + 1)} for i in range(24)]))

    rows = Status(config, work).rows()
    by_name = {(r.kind, r.name): r for r in rows}
    # every planned run and (final) evaluation appears exactly once
    assert len(by_name) == len(rows)
    for name in all_runs(config):
        assert ("train", name) in by_name
        for bench in config["evaluation"]["final"]["benchmarks"]:
            assert ("eval", f"{name}/best/{bench}") in by_name
    running = by_name[("train", "redi-a0.8-lr1e-4")]
    assert running.state == "running" and running.progress == "step 3/4" and running.detail.startswith("loss ")
    assert running.log == "logs/train/redi-a0.8-lr1e-4.log"
    # checkpoints of a run not finished yet are planned from the curated data size
    assert by_name[("eval", "redi-a0.8-lr1e-4/step-2/synthetic")].state == "not started"
    failed = by_name[("train", "dpo-b0.1-lr1e-4")]
    assert failed.state == "failed" and failed.log == "logs/train/dpo-b0.1-lr1e-4.log"
    ev = by_name[("eval", "simpo-b2-g1-lr1e-4/step-4/synthetic")]
    assert ev.state == "running" and ev.progress == "5/48 samples"
    done = by_name[("train", "redi-a0-lr1e-4")]
    assert done.state == "done" and "collapse: stable" in done.detail
    assert by_name[("eval", "sft/step-17/synthetic")].detail.startswith("pass@1 ")
    # partial state that stopped moving without a Snakemake error is a failure too
    old = time.time() - 7200
    os.utime(live, (old, old))
    assert {(r.name, r.state) for r in Status(config, work, stale_s=3600).rows()} >= {("redi-a0.8-lr1e-4", "failed")}
    text = render(rows)
    assert "running" in text and "failed" in text and f"(of {len(rows)})" in text


def test_cli_prints_the_table_fast(tmp_path):
    work, _ = tree(tmp_path)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "redi.cli", "status", "--config", str(FIXTURE / "config.yaml"),
                          "--root", str(work), "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    rows = data["rows"]
    assert {r["state"] for r in rows} == {"done"} and data["totals"] == {
        "done": len(rows), "running": 0, "failed": 0, "not started": 0, "rows": len(rows)}
    # numbers, not the table's strings: pass@1 and SEM as fractions, step / total / loss / verdict
    by_name = {(r["kind"], r["name"]): r["values"] for r in rows}
    train = by_name[("train", "redi-a0-lr1e-4")]
    assert isinstance(train["step"], int) and train["step"] == train["total"] and isinstance(train["loss"], float)
    assert train["collapse_verdict"] in ("collapsed", "suspect", "stable") and "best_step" in train
    ev = next(v for (kind, name), v in by_name.items() if kind == "eval")
    assert 0.0 <= ev["pass@1"] <= 1.0 and isinstance(ev["n_samples"], int)
    assert time.perf_counter() - start < 60  # a generous bound: it reads only small files
