"""The GPU check (``bench/gpu_check``): skipped is not failed, the exit code says whether what ran
was right, the budget comes from this call's measured items, MFU is given against both
ceilings, a worker killed at its timeout leaves no scratch behind, and the smoke run exercises
every item end to end on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import gpu_check  # noqa: E402
from bench_gpu import datasheet_tflops  # noqa: E402


def _check(tmp_path, budget=100.0, smoke=True):
    return gpu_check.Check(smoke, budget, tmp_path / "work", lambda msg: None)


def test_not_run_is_not_failed_and_the_exit_code_says_what_ran(tmp_path):
    c = _check(tmp_path)
    c.item("cheap", 0.0, lambda s: {"value": 1})
    c.item("too_dear", 1e6, lambda s: {"value": 2})
    doc = c.result()
    assert doc["items"]["cheap"]["status"] == "ran"
    assert doc["items"]["too_dear"]["status"] == "not run"
    assert doc["items"]["too_dear"]["reason"].startswith("budget: estimated 1000000 s")
    assert doc["summary"]["failed"] == []
    c.item("wrong", 0.0, lambda s: {"loss": 0.5, "abs_error": 0.19}, judge=gpu_check._judge_log2)
    c.item("broken", 0.0, lambda s: {"error": "worker exited with code 1"})
    doc = c.result()
    assert doc["summary"]["failed"] == ["wrong", "broken"]
    assert "not log 2" in doc["items"]["wrong"]["reason"]


def test_budget_estimates_come_from_this_calls_measurements(tmp_path):
    c = _check(tmp_path, smoke=False)
    assert c.estimate_steps(8192, 2, 1, equal=False) == gpu_check.PRIOR_S["steps"]
    # a measured 4k REDI item: 1 warm-up + 1 timed step of 2 s each, 10 s of process and loading
    c.items["steps/4096/redi"] = {"status": "ran", "seconds": 2.0, "steps_timed": 1, "warmup": 1,
                                  "tokens": 2 * 3072, "sum_seq_len_sq": 2 * 3072**2, "item_wall_s": 14.0}  # fmt: skip
    four = c.estimate_steps(4096, 2, 1, equal=False)
    pair = c.estimate_steps(19000, 2, 1, equal=True)
    assert four == pytest.approx(14.0, rel=1e-6)  # reproduces the measurement it came from
    assert 10 + 2 * 2 * 19000 / 3072 < pair < 10 + 2 * 2 * (19000 / 3072) ** 2  # between linear and quadratic


def test_mfu_against_both_ceilings_named():
    assert datasheet_tflops("NVIDIA H200") == 989.4
    assert datasheet_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert datasheet_tflops("NVIDIA H100 PCIe") == 756.0
    assert datasheet_tflops("NVIDIA A100-SXM4-80GB") == 312.0


def test_mfu_fields(tmp_path):
    c = _check(tmp_path, smoke=False)
    c.items["environment"] = {"status": "ran", "device": "NVIDIA H200"}
    c.items["matmul"] = {"status": "ran", "tflops_best": 700.0, "device": "NVIDIA H200"}
    r = c.mfu({"seconds": 1.0, "tokens": 8192, "sum_seq_len_sq": 8192**2})
    tf = r["model_tflops_per_s"]
    assert r["mfu_vs_measured_matmul"] == pytest.approx(tf / 700.0, abs=1e-4)
    assert r["mfu_vs_datasheet"] == pytest.approx(tf / 989.4, abs=1e-4)
    assert c.ceilings()["datasheet_name"] == "NVIDIA H200 datasheet dense bf16"


def test_a_killed_worker_leaves_no_scratch_and_no_process(tmp_path):
    """The worker writes into its scratch folder and starts a child, then outlives its timeout."""
    c = _check(tmp_path)
    pid_file = tmp_path / "child.pid"
    code = (
        "import pathlib, subprocess, sys, time; d = pathlib.Path(sys.argv[1]);"
        "(d / 'big.bin').write_bytes(b'x' * 1000);"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(p.pid)); time.sleep(600)"
    )
    seen = {}

    def run(scratch):
        seen["dir"] = scratch
        r = benchlib.run_command([sys.executable, "-c", code, str(scratch)], timeout=5)
        return {"error": "timed out"} if r["timed_out"] else {}

    c.item("killed", 0.0, run)
    assert c.items["killed"]["status"] == "failed"
    assert not seen["dir"].exists()
    child = int(pid_file.read_text())
    for _ in range(50):  # the whole process group was killed: the grandchild too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as fh:
            if fh.read().split()[2] == "Z":
                break
        time.sleep(0.1)
    else:
        pytest.fail("the worker's child survived its timeout")


def test_estimate_of_the_full_check_names_every_item():
    smoke = {"items": {"steps/64/redi": {"item_wall_s": 20.0, "seconds": 1.0, "steps_timed": 1}},
             "machine": {"cpu_usable": 2, "load_average_start": 8.0, "load_average_end": 8.0}}  # fmt: skip
    e = gpu_check.estimate_full(smoke)
    names = [r["item"] for r in e["rows"]]
    assert names.index("pair_19k") == names.index("steps/4096/redi") + 1  # the pair right after the 4k steps
    assert e["contention"] == 4.0
    redi = e["rows"][names.index("steps/4096/redi")]
    assert (redi["overhead_measured_s"], redi["overhead_s"]) == (18.0, 4.5)
    assert e["total_s"] == pytest.approx(
        sum(r["overhead_s"] + r["gpu_s"] for r in e["rows"]), abs=1.5
    )  # rounding per row
    assert e["total_uncorrected_s"] > e["total_s"]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_item(tmp_path):
    scratch_parent = tmp_path / "tmp"
    scratch_parent.mkdir()
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = [str(ROOT / "bench/gpu_check"), "--smoke", "--out", str(tmp_path), "--budget-s", "1500",
           "--workdir", str(scratch_parent)]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (doc_path,) = tmp_path.glob("gpu-check-smoke-*.json")
    doc = json.loads(doc_path.read_text())
    assert doc["smoke"] and doc["exit_code"] == 0 and doc["summary"]["failed"] == []
    assert list(scratch_parent.iterdir()) == []  # the scratch folder went with the check
    items = doc["items"]
    keys = list(items)
    assert keys.index("pair_19k") == keys.index("steps/64/redi") + 1
    for key in ("environment", "matmul", "model", "pair_19k", "dpo_log2", "generate"):
        assert items[key]["status"] == "ran", (key, items[key])
    for n in (64, 128, 192):
        for v in ("sft", "redi"):
            s = items[f"steps/{n}/{v}"]
            assert s["status"] == "ran" and s["mfu_vs_measured_matmul"] > 0 and s["mfu_vs_datasheet"] is None
    assert items["dpo_log2"]["abs_error"] < 1e-4
    assert items["generate"]["backend"] == "transformers" and items["generate"]["generated_tokens"] > 0
    for key in ("dpo_log2_zero2", "generate_vllm"):  # ran, or not run with its reason
        assert items[key]["status"] == "ran" or (items[key]["status"] == "not run" and items[key]["reason"])
    assert set(doc["summary"]["not_run"]) <= {"dpo_log2_zero2", "generate_vllm"}
    assert doc_path.with_suffix(".md").read_text().startswith("# GPU check (smoke")
