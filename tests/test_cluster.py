"""Issue 13: the paper config on a real SLURM GPU cluster, exercised as far as a CPU can.

* workers find the package without PYTHONPATH (item 1); the Snakefile parses in an env holding
  only snakemake, its SLURM plugin and PyYAML (item 2);
* the sbatch line each GPU rule gets from the real SLURM executor plugin (stub ``sbatch``):
  nodes, GPUs, CPUs, memory, time (items 3, 11, 12);
* fail fast without CUDA (item 7), exclusive local GPU leases (item 6), profiles/local does not
  lower GPU requests (item 8), zero3_init_flag not promised (item 13), Python >= 3.11 (item 5);
* DPO's first loss is log 2 in every precision mode a CPU allows (item 9); generation budget
  refused when it cannot fit (item 10); numerics recorded (item 14);
* 2-process gloo DDP on the CPU == one process with the same global batch (item 15).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from redi import runtime

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ---- item 1: workers import the package with PYTHONPATH stripped ---------------------------


def test_worker_env_lets_a_bare_interpreter_import_the_package(tmp_path):
    """``-S`` drops site-packages (and the editable install): only the PYTHONPATH that
    ``worker_env`` passes can make ``redi`` importable, as in a conda job that strips it."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import redi.runtime, sys; print(redi.__file__)"
    bare = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=base, capture_output=True, text=True)
    assert bare.returncode != 0 and "No module named 'redi'" in bare.stderr
    ok = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=runtime.worker_env(base),
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()).is_relative_to(ROOT / "src")


def test_launch_commands_start_package_modules():
    from redi.train.launch import launch_command

    kw = dict(ref_logps_path=None, threads=8, accelerate_config="zero2")
    gpu = launch_command(Path("r.json"), "m", "d", "o", gpus=8, **kw)
    assert gpu[1:3] == ["-m", "accelerate.commands.launch"] and gpu[gpu.index("--num_processes") + 1] == "8"
    cpu = launch_command(Path("r.json"), "m", "d", "o", gpus=0, cpu_processes=2, **{**kw, "accelerate_config": None})
    assert cpu[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node" in cpu
    assert gpu[gpu.index("-m", 3) + 1] == cpu[cpu.index("-m", 3) + 1] == "redi.train.cli"


# ---- item 2: the Snakefile needs nothing beyond snakemake (+ plugin) and PyYAML --------------


@pytest.mark.slow
def test_snakefile_parses_in_a_snakemake_only_env(tmp_path):
    venv = tmp_path / "sm"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [
            str(venv / "bin/pip"),
            *("install", "-q", "snakemake==9.27.1", "snakemake-executor-plugin-slurm==2.8.0", "pyyaml"),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"PyPI not reachable: {pip.stderr[-300:]}")
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import tokenizers"], capture_output=True)
    assert probe.returncode != 0  # the env really lacks the heavy stack
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args in (["--configfile", "config/paper.yaml"], []):
        r = subprocess.run([str(venv / "bin/snakemake"), "-n", "--nolock", "--cores", "1", "--quiet", "rules", *args],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-4000:]}"
        assert "train_sft" in r.stdout + r.stderr


# ---- items 3, 11, 12: the sbatch line of every GPU rule -------------------------------------

STUB_SBATCH = """#!/bin/bash
printf '%s\\n' "$@" > "$SBATCH_RECORD/sbatch-$$.args"
echo "stub sbatch: recorded, not submitted" >&2
exit 1
"""


def _sbatch_calls(record: Path) -> dict[str, list[str]]:
    calls = {}
    for f in record.glob("sbatch-*.args"):
        args = f.read_text().splitlines()
        rule = args[args.index("--comment") + 1].split("_wildcards")[0].removeprefix("rule_")
        calls.setdefault(rule, args)
    return calls


def _flag(args, name):
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


@pytest.mark.slow
def test_sbatch_line_of_each_gpu_rule(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "sbatch").write_text(STUB_SBATCH)
    (stubs / "sacctmgr").write_text("#!/bin/bash\necho lab\n")
    for tool in ("sinfo", "squeue", "sacct", "scontrol", "sshare"):
        (stubs / tool).write_text("#!/bin/bash\nexit 0\n")
    for f in stubs.iterdir():
        f.chmod(0o755)
    work = tmp_path / "work"
    benchmarks = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["evaluation"]["properties"][
        "benchmarks"
    ]["default"]
    paths = [b["path"] if isinstance(b, dict) else b for b in benchmarks.values()]
    for f in ("results/data/sft.jsonl", "results/data/pref.jsonl", *paths):
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).write_text("")
    later = time.time() + 60  # the inputs exist and are up to date: only the targets' own jobs run
    for d in ("results/model/student", "results/train/sft-3ep/model", "resources/models/reference-qwen2.5-math-1.5b"):
        (work / d).mkdir(parents=True)
        (work / d / "config.json").write_text("{}")
        for x in (work / d / "config.json", work / d):
            os.utime(x, (later, later))
    targets = [
        "results/train/sft-5ep/model",  # train_sft
        "results/train/sft-3ep/ref_logps.parquet",  # reference_logps
        "results/train/redi-a0.8-lr1e-6/model",  # train_stage2
        "results/eval/student/base/math500/metrics.json",  # eval_student
        "results/eval/reference-qwen2.5-math-1.5b/final/math500/metrics.json",  # eval_reference
    ]
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", SBATCH_RECORD=str(tmp_path))
    r = subprocess.run(
        [str(BIN / "snakemake"), *targets, "-s", str(ROOT / "Snakefile"), "--profile", str(ROOT / "profiles/slurm"),
         "--configfile", str(ROOT / "config/paper.yaml"), "--sdm", "env-modules", "--nolock", "--retries", "0",
         "--keep-going", "--default-resources", "slurm_partition=gpu", "slurm_account=lab",
         "--allowed-rules", "train_sft", "reference_logps", "train_stage2", "eval_student", "eval_reference"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    calls = _sbatch_calls(tmp_path)
    assert set(calls) == {"train_sft", "reference_logps", "train_stage2", "eval_student", "eval_reference"}, (
        r.stderr[-3000:]
    )
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["resources"]
    expect = {
        "train_sft": paper["train"], "train_stage2": paper["train"], "reference_logps": paper["reference"],
        "eval_student": paper["eval"], "eval_reference": paper["eval"],
    }  # fmt: skip
    lines = {}
    for rule, args in calls.items():
        spec = expect[rule]
        assert _flag(args, "--nodes") == "1", (rule, args)
        assert _flag(args, "--gpus") == str(spec["gpu"]), (rule, args)
        assert _flag(args, "--cpus-per-gpu") == str(spec["cpus_per_gpu"]), (rule, args)
        assert _flag(args, "--mem") == str(spec["mem_mb"]), (rule, args)
        assert _flag(args, "-t") == str(int(spec["runtime"].rstrip("h")) * 60), (rule, args)
        assert int(_flag(args, "--mem")) < 512000  # what a "512 GB" node can grant
        assert _flag(args, "--ntasks") is None  # one task: the launcher starts the workers
        lines[rule] = " ".join(a for a in args if not a.startswith("--wrap"))
    assert _flag(calls["reference_logps"], "--gpus") == "1"
    print(json.dumps(lines, indent=1))


def test_gpu_rules_get_one_node_and_reference_its_own_resources():
    from redi.plan import stage_resources

    config = {"resources": {
        "train": {"gpu": 4, "cpus_per_gpu": 6, "mem_mb": 200000, "runtime": "10h", "threads": 4, "gpu_model": None},
        "eval": {"gpu": 0, "cpus_per_gpu": 8, "mem_mb": 8000, "runtime": "2h", "threads": 1, "gpu_model": None},
        "reference": None,
    }}  # fmt: skip
    train = stage_resources(config, "train")
    assert train == {"mem_mb": 200000, "runtime": "10h", "gpu": 4, "cpus_per_gpu": 6, "nodes": 1}
    assert stage_resources(config, "reference") == {
        "mem_mb": 50000,
        "runtime": "10h",
        "gpu": 1,
        "cpus_per_gpu": 6,
        "nodes": 1,
    }
    assert "nodes" not in stage_resources(config, "eval")  # CPU jobs may go anywhere


# ---- items 5, 8, 13: configuration that must not lie ----------------------------------------


def test_python_floor_and_no_uninstallable_vllm_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11"
    assert "vllm" not in meta.get("optional-dependencies", {})  # it would need torch 2.14
    for env in (ROOT / "envs").glob("*.yaml"):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        assert any(str(d).startswith("python=3.1") and str(d) >= "python=3.11" for d in deps), env


def test_local_profile_sets_no_global_gpu_cap():
    """A global ``gpu: N`` lowers every job's own request to N (the four-GPU example trained on
    one GPU): the local profile must not set it."""
    profile = yaml.safe_load((ROOT / "profiles/local/config.yaml").read_text())
    assert "gpu" not in (profile.get("resources") or {})
    assert "gpu" not in str(yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text()).get("resources"))


def test_no_accelerate_config_promises_zero3_init():
    for f in (ROOT / "accelerate").glob("*.yaml"):
        ds = yaml.safe_load(f.read_text()).get("deepspeed_config") or {}
        assert not ds.get("zero3_init_flag"), f"{f.name}: the model is loaded before DeepSpeed is set up"


# ---- items 6, 7: GPUs on one machine ----------------------------------------------------------


def test_require_cuda_fails_fast_with_versions():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    runtime.require_cuda(0)
    with pytest.raises(RuntimeError) as err:
        runtime.require_cuda(8, "training run 'sft-3ep'")
    msg = str(err.value)
    assert "requests 8 GPU(s)" in msg and torch.__version__ in msg and "driver" in msg and "cu12" in msg


def test_run_training_refuses_gpus_without_cuda(inputs, tmp_path):
    import torch

    from redi.train.launch import run_training

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="requests 2 GPU"):
        run_training({"objective": "sft", "max_steps": 1}, inputs["model"], inputs["sft"], str(tmp_path / "o"), gpus=2)
    assert not (tmp_path / "o").exists()  # nothing started


LEASE_CHILD = textwrap.dedent("""
    import os, sys, time
    from redi.runtime import gpu_lease
    with gpu_lease(int(sys.argv[1]), poll_s=0.1):
        print(time.time(), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
        time.sleep(float(sys.argv[2]))
    print(time.time(), "released", flush=True)
""")


def test_gpu_lease_gives_each_local_job_its_own_gpus(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env.update(CUDA_VISIBLE_DEVICES="0,1,2", REDI_GPU_LOCK_DIR=str(tmp_path / "locks"))
    first = subprocess.Popen(
        [sys.executable, "-c", LEASE_CHILD, "2", "1.5"], env=env, stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.8)
    second = subprocess.Popen([sys.executable, "-c", LEASE_CHILD, "2", "0"], env=env, stdout=subprocess.PIPE, text=True)
    third = subprocess.run([sys.executable, "-c", LEASE_CHILD, "1", "0"], env=env, capture_output=True, text=True)
    out1, out2 = first.communicate(timeout=60)[0].split("\n"), second.communicate(timeout=60)[0].split("\n")
    t1, gpus1 = out1[0].split()
    released1 = float(out1[1].split()[0])
    t2, gpus2 = out2[0].split()
    assert gpus1 == "0,1" and third.stdout.split()[1] == "2"  # the free GPU, at once
    assert float(t2) >= released1 - 0.05  # the second 2-GPU job waited for the first
    with pytest.raises(RuntimeError, match="requests 4 GPU"):
        with runtime.gpu_lease(4):
            pass


# ---- item 9: DPO starts at log 2 in every precision mode the CPU allows ----------------------


@pytest.mark.slow
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_first_dpo_loss_is_log2(inputs, tmp_path, bf16):
    from redi.train.reference import compute_reference_logps
    from redi.train.run import train

    run = {"objective": "dpo", "beta": 0.1, "global_batch_size": 4, "per_device_batch_size": 2,
           "max_steps": 1, "learning_rate": 1e-6, "bf16": bf16, "seed": 3}  # fmt: skip
    ref = tmp_path / "ref.parquet"
    meta = compute_reference_logps(inputs["model"], inputs["pref"], str(ref), run, threads=1)
    assert meta["precision"] == ("bf16-autocast" if bf16 else "fp32")
    out = tmp_path / "dpo"
    summary = train(run, inputs["model"], inputs["pref"], str(out), ref_logps_path=str(ref), threads=1)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(math.log(2), abs=2e-4)
    assert abs(first["reward_margin"]) < 4e-3  # the model is its reference: loss - log 2 ~ beta x margin / 2
    assert summary["numerics"]["precision"] == meta["precision"]
    assert summary["numerics"]["attention"] and summary["numerics"]["padding"]


def test_reference_of_another_precision_is_refused(inputs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redi.train.config import RunConfig
    from redi.train.environment import check_reference_numerics, resolve_environment

    path = tmp_path / "ref.parquet"
    meta = {"precision": "bf16"}  # as for DeepSpeed ZeRO-2
    pq.write_table(pa.table({"id": ["a"]}).replace_schema_metadata({"redi": json.dumps(meta)}), path)
    env = resolve_environment(RunConfig.from_dict({"objective": "dpo", "bf16": True}), deepspeed=False)
    with pytest.raises(ValueError, match="'bf16'.*'bf16-autocast'"):
        check_reference_numerics(str(path), env)
    assert (
        resolve_environment(RunConfig.from_dict({"objective": "dpo", "bf16": True}), deepspeed=True).precision == "bf16"
    )


def test_deepspeed_is_detected_from_the_accelerate_config():
    from redi.train.launch import trains_under_deepspeed

    assert trains_under_deepspeed("accelerate/zero2.yaml", 8)
    assert not trains_under_deepspeed("accelerate/zero2.yaml", 1)  # one GPU trains in-process
    assert not trains_under_deepspeed("ddp", 8)


# ---- item 10: the generation budget ---------------------------------------------------------


def test_generation_budget_must_fit_the_context():
    from redi.eval.generate import generation_budget

    assert generation_budget([100, 1354], 31232, 32768)["max_model_len"] == 32768
    with pytest.raises(ValueError, match=r"1354 tokens.*32768.*32768"):
        generation_budget([1354], 32768, 32768, where="paper")


def test_paper_budgets_fit_the_longest_benchmark_prompt():
    """The paper config's budgets fit the longest prompt of its benchmarks (1,354 tokens with the
    Qwen2.5 tokenizer, OlympiadBench) in each model's context."""
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["evaluation"]
    longest = 1354
    assert longest + paper["sampling"]["max_new_tokens"] <= paper["vllm"]["max_model_len"]
    for ref in paper["reference_models"]:
        budget = ref.get("max_new_tokens", paper["sampling"]["max_new_tokens"])
        assert longest + budget <= ref.get("max_model_len", paper["vllm"]["max_model_len"]), ref["name"]


# ---- item 15: 2 gloo processes == 1 process ---------------------------------------------------


@pytest.mark.slow
def test_two_process_cpu_ddp_matches_one_process(inputs, tmp_path):
    from safetensors.torch import load_file

    from redi.train.launch import run_training

    run = {"objective": "redi", "alpha": 0.8, "global_batch_size": 4, "per_device_batch_size": 1,
           "max_steps": 2, "learning_rate": 1e-3, "seed": 7, "save_steps": 100}  # fmt: skip
    one = run_training(dict(run), inputs["model"], inputs["pref"], str(tmp_path / "one"), threads=1)
    two = run_training(dict(run), inputs["model"], inputs["pref"], str(tmp_path / "two"), threads=2, cpu_processes=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert (one["gradient_accumulation"], two["gradient_accumulation"]) == (4, 2)
    m1 = [json.loads(x) for x in (tmp_path / "one/metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (tmp_path / "two/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in m2] == [1, 2]  # one writer: no duplicated lines
    for a, b in zip(m1, m2):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
    w1, w2 = (
        load_file(str(tmp_path / "one/model/model.safetensors")),
        load_file(str(tmp_path / "two/model/model.safetensors")),
    )
    worst = max(float((w1[k].float() - w2[k].float()).abs().max()) for k in w1)
    assert worst < 1e-5, worst
