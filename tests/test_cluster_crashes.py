"""The cluster path's crash list, each fault run as a user would meet it (CPU only):

* DPO under DeepSpeed starts at log 2: the Trainer's bf16 cast of every float tensor of a batch
  no longer reaches the float64 reference sums; ``redi train ref-logps --accelerate-config``
  makes a DeepSpeed-mode reference file;
* ``--cpu-processes N --accelerate-config X`` launches X (DDP, ZeRO-2, ZeRO-3 with gloo);
* ``bf16: false`` with the shipped accelerate configs (all say ``mixed_precision: bf16``) is
  honoured: the launch overrides the config's mixed precision;
* GPU leases inside SLURM allocations, keyed by physical GPU;
* vLLM on a stage without GPUs is refused at plan time, and vLLM jobs fail fast without CUDA;
* a teacher shard skips (and counts) problems whose prompt + budget exceeds the context;
* memory hints from the student's size; a tracking failure keeps an evaluation's results;
  uncaught errors reach the job's log.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ---- DPO's reference sums keep float64 -------------------------------------------------------


def test_collator_keeps_reference_sums_in_float64(inputs):
    """A float32 sum of a long response's log-probs is off by ~1e-3 nats (float32 has 24 bits);
    the reference pass writes float64 and the loss must see those values."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from redi.train.batching import Collator, load_tokenized
    from redi.train.config import RunConfig

    tok = AutoTokenizer.from_pretrained(inputs["model"])
    data = load_tokenized(inputs["pref"], tok, inputs["model"], RunConfig.from_dict({"objective": "dpo"}))
    data.ref_chosen = np.full(len(data), -12345.678901234567, dtype=np.float64)
    data.ref_rejected = np.full(len(data), -23456.789012345678, dtype=np.float64)
    batch = Collator(data, tok.pad_token_id, False, sft_units=False)([{"index": 0, "weight": 1.0}])
    assert batch["ref_chosen"].dtype == torch.float64
    assert float(batch["ref_chosen"][0]) == -12345.678901234567
    assert float(batch["ref_rejected"][0]) == -23456.789012345678


def test_trainer_moves_batches_without_deepspeeds_cast():
    """The base Trainer casts every float tensor of a batch to the engine's dtype under
    DeepSpeed: reference sums (float64), response lengths (exact integers in float32; bf16 holds
    integers exactly only up to 256, so SimPO's and REDI's length normalisation moved too) and
    weights. The trainer keeps every dtype (a Trainer set up as under DeepSpeed bf16)."""
    from types import SimpleNamespace

    import torch

    from redi.train.trainer import RediTrainer

    trainer = object.__new__(RediTrainer)
    trainer.args = SimpleNamespace(device=torch.device("cpu"))
    trainer.is_deepspeed_enabled = True
    plugin = SimpleNamespace(hf_ds_config=SimpleNamespace(dtype=lambda: torch.bfloat16))
    trainer.accelerator = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin))
    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "lengths": torch.tensor([1000.0, 19000.0]),
             "ref_chosen": torch.tensor([-12345.678901234567], dtype=torch.float64),
             "weights": torch.tensor([0.3])}  # fmt: skip
    out = trainer._prepare_input(batch)
    for key, value in batch.items():
        assert out[key].dtype == value.dtype and torch.equal(out[key], value), key


# ---- the launch: CPU processes under an accelerate config; mixed precision from the run ------


def test_cpu_processes_launch_the_named_accelerate_config():
    from redi.train.launch import launch_command, trains_under_deepspeed

    kw = dict(ref_logps_path=None, threads=4)
    cpu = launch_command(Path("r.json"), "m", "d", "o", gpus=0, cpu_processes=2, accelerate_config="zero3",
                         bf16=False, **kw)  # fmt: skip
    assert cpu[1:3] == ["-m", "accelerate.commands.launch"], cpu
    assert Path(cpu[cpu.index("--config_file") + 1]).name == "zero3.yaml"
    assert cpu[cpu.index("--num_processes") + 1] == "2"
    assert cpu[cpu.index("--mixed_precision") + 1] == "no"  # bf16: false wins over the config's bf16
    assert "--cpu" not in cpu  # accelerate's --cpu launcher needs MPI; gloo comes from the CPU device
    # no config named: plain gloo DDP, as before; the GPU path is unchanged (zero2 by default)
    plain = launch_command(Path("r.json"), "m", "d", "o", gpus=0, cpu_processes=2, accelerate_config=None, **kw)
    assert plain[1:3] == ["-m", "torch.distributed.run"]
    gpu = launch_command(Path("r.json"), "m", "d", "o", gpus=8, accelerate_config=None, bf16=True, **kw)
    assert Path(gpu[gpu.index("--config_file") + 1]).name == "zero2.yaml"
    assert gpu[gpu.index("--mixed_precision") + 1] == "bf16"
    assert trains_under_deepspeed("zero2", 0, cpu_processes=2)
    assert not trains_under_deepspeed(None, 0, cpu_processes=2)
    assert not trains_under_deepspeed("zero2", 0, cpu_processes=1)


def test_ref_logps_help_documents_the_deepspeed_mode():
    r = subprocess.run([str(BIN / "redi"), "train", "ref-logps", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "--accelerate-config" in text and "DeepSpeed" in text and "log 2" in text


def _redi(*args, timeout=900):
    r = subprocess.run([str(BIN / "redi"), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return r


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "bf16"),
    [("zero2", True), ("zero3", True), ("zero2", False), ("ddp", False)],
    ids=["zero2-bf16", "zero3-bf16", "zero2-fp32", "ddp-fp32"],
)
def test_dpo_first_loss_is_log2_under_accelerate_configs_on_cpu(inputs, tmp_path, config, bf16):
    """Two gloo processes through the project's own commands: ``redi train ref-logps
    --accelerate-config X`` then ``redi train run --cpu-processes 2 --accelerate-config X``.

    Tolerance 1e-6 on the first loss (measured: exactly log 2 in every case, with one pair per
    micro-batch so that both passes see the same batch shapes). Before: ``--accelerate-config``
    was ignored on the CPU; under DeepSpeed the Trainer cast the reference sums to bf16 (first
    loss 0.69207 here); ``bf16: false`` crashed ZeRO (``ds bf16.enabled=True vs hf bf16=False``)
    and DDP trained under bf16 autocast while recording fp32.
    """
    if config.startswith("zero"):
        pytest.importorskip("deepspeed")
    run = {"objective": "dpo", "beta": 0.1, "global_batch_size": 4, "per_device_batch_size": 1, "max_steps": 1,
           "learning_rate": 1e-6, "bf16": bf16, "seed": 3, "save_steps": 1}  # fmt: skip
    ref, out = tmp_path / "ref.parquet", tmp_path / "dpo"
    common = ["--run-json", json.dumps(run), "--model", inputs["model"], "--data", inputs["pref"]]
    _redi("train", "ref-logps", *common, "--out", ref, "--accelerate-config", config)
    _redi("train", "run", *common, "--out", out, "--ref-logps", ref, "--cpu-processes", 2,
          "--accelerate-config", config, "--threads", 2)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    deepspeed = config.startswith("zero")
    assert summary["world_size"] == 2 and summary["numerics"]["deepspeed"] is deepspeed
    assert summary["numerics"]["precision"] == ("bf16" if bf16 and deepspeed else "fp32")
    assert summary["bf16"] is bf16
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize(
    ("gpu", "cpu_processes", "accelerate_config", "deepspeed"),
    [(0, 1, None, False), (0, 2, None, False), (0, 2, "zero2", True), (0, 2, "ddp", False), (1, 1, "zero2", False),
     (8, 1, None, True), (8, 1, "zero3", True), (8, 1, "fsdp", False)],
)
def test_the_reference_pass_follows_how_training_is_launched(gpu, cpu_processes, accelerate_config, deepspeed):
    """The workflow's reference pass is in DeepSpeed mode exactly when its training jobs run
    under DeepSpeed. Before: CPU workers were passed as GPUs, so 2 CPU processes with no
    accelerate config (plain DDP) got a DeepSpeed-mode reference file, which training refuses."""
    from redi.train.launch import reference_in_deepspeed_mode

    resources = {"train": {"gpu": gpu, "cpu_processes": cpu_processes}, "accelerate_config": accelerate_config}
    assert reference_in_deepspeed_mode(resources) is deepspeed


# ---- GPU leases inside SLURM allocations ------------------------------------------------------

LEASE_CHILD = textwrap.dedent("""
    import os, sys, time
    from redi.runtime import gpu_lease
    with gpu_lease(int(sys.argv[1]), poll_s=0.1):
        print(time.time(), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
        time.sleep(float(sys.argv[2]))
    print(time.time(), "released", flush=True)
""")


def _lease(env, n, hold):
    return subprocess.Popen([sys.executable, "-c", LEASE_CHILD, str(n), str(hold)], env=env, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_gpu_leases_hold_inside_a_slurm_allocation_and_never_across_two(tmp_path):
    """``snakemake --cores all`` inside ``salloc``: two jobs of one allocation share its GPUs
    out (the second waits), while a second allocation on the node, whose GPUs are renumbered
    from 0 as well, does not wait for the first's (locks are keyed by physical GPU). Before, any
    ``SLURM_JOB_ID`` switched leases off and both jobs of the allocation got GPUs 0,1 at once."""
    locks = tmp_path / "locks"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_VISIBLE"))}
    alloc_a = dict(base, REDI_GPU_LOCK_DIR=str(locks), SLURM_JOB_ID="41", CUDA_VISIBLE_DEVICES="0,1",
                   SLURM_JOB_GPUS="4,5")  # fmt: skip
    alloc_b = dict(alloc_a, SLURM_JOB_ID="42", SLURM_JOB_GPUS="6,7")
    first = _lease(alloc_a, 2, 2.0)
    assert first.stdout.readline().split()[1] == "0,1"  # holds the allocation's two GPUs now
    second, other = _lease(alloc_a, 2, 0), _lease(alloc_b, 2, 0)
    out_first = first.communicate(timeout=60)[0].split()
    released = float(out_first[0])
    t_second, gpus_second = second.communicate(timeout=60)[0].split()[:2]
    t_other, gpus_other = other.communicate(timeout=60)[0].split()[:2]
    assert gpus_second == gpus_other == "0,1"
    assert float(t_second) >= released - 0.05  # waited for the first job of its allocation
    assert float(t_other) < released  # another allocation's GPUs 0,1 are other GPUs
    assert {p.name for p in locks.iterdir()} == {"gpu-4.lock", "gpu-5.lock", "gpu-6.lock", "gpu-7.lock"}


def test_gpu_lock_keys_follow_the_physical_gpus(monkeypatch):
    from redi.runtime import gpu_lock_keys

    for var in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        monkeypatch.delenv(var, raising=False)
    assert gpu_lock_keys(["0", "2"]) == ["gpu-0", "gpu-2"]  # outside SLURM: the machine's own indices
    assert gpu_lock_keys(["GPU-ab12"]) == ["GPU-ab12"]
    monkeypatch.setenv("SLURM_JOB_GPUS", "3,7")
    assert gpu_lock_keys(["0", "1"]) == ["gpu-3", "gpu-7"]
    monkeypatch.setenv("SLURM_STEP_GPUS", "7")  # a job step's own subset wins
    assert gpu_lock_keys(["0"]) == ["gpu-7"]


# ---- vLLM needs GPUs: refused at plan time, and its jobs fail fast like training's -----------


@pytest.mark.parametrize("stage", ["eval", "teacher"])
def test_vllm_on_a_stage_without_gpus_is_refused(stage):
    import yaml

    from redi.plan import ConfigError, validate_config

    config = yaml.safe_load((ROOT / f"config/{'config' if stage == 'eval' else 'teacher'}.yaml").read_text())
    config.setdefault("resources", {}).setdefault(stage, {})["gpu"] = 0
    if stage == "eval":
        config["evaluation"]["backend"] = "vllm"
    else:
        config["teacher"]["generation"]["backend"] = "vllm"
    with pytest.raises(ConfigError, match=rf"resources\.{stage}\.gpu.*vllm"):
        validate_config(config)
    config["resources"][stage]["gpu"] = 1
    validate_config(config)


def _snakemake(tmp_path, input, output, params, wildcards, resources):
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    def nl(x):
        return Namedlist(fromdict=x)

    log = Namedlist(toclone=[str(tmp_path / "job.log")])
    return SimpleNamespace(input=nl(input), output=nl(output), params=nl(params), wildcards=nl(wildcards),
                           threads=1, resources=nl(resources), log=log, config={})  # fmt: skip


def test_vllm_jobs_fail_fast_without_cuda(tmp_path):
    """An evaluation job with the vLLM backend that requests a GPU stops before any engine
    starts, with the training job's message, also when vLLM lives in another interpreter."""
    import runpy

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    other = tmp_path / "python-of-the-vllm-env"
    other.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    other.chmod(0o755)
    bench = tmp_path / "toy.json"
    bench.write_text(json.dumps([{"problem": "1+1?", "answer": 2}]))
    eval_cfg = {"backend": "vllm", "sampling": {"max_new_tokens": 4}, "n_samples": 1, "vllm": {"python": str(other)}}
    smk = _snakemake(tmp_path, {"toy": str(bench), "model": str(tmp_path / "no-model")},
                     {"metrics": str(tmp_path / "out/metrics.json")}, {"run": "r", "checkpoint": "final",
                     "eval": eval_cfg}, {"bench": "toy"}, {"gpu": 1})  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    os.environ.update(REDI_GPU_LOCK_DIR=str(tmp_path / "locks"), CUDA_VISIBLE_DEVICES="0")
    try:
        with pytest.raises(RuntimeError, match=r"requests 1 GPU\(s\) but torch can use 0.*checked with"):
            runpy.run_path(str(ROOT / "workflow/scripts/eval_run.py"), init_globals={"snakemake": smk},
                           run_name="__main__")  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert not (tmp_path / "out").exists()


# ---- teacher sampling: a problem too long for the context is skipped and counted --------------


def test_teacher_shard_skips_and_counts_a_problem_too_long_for_the_context(tmp_path, one_torch_thread):
    """The tiny teacher's context is 4,096 positions; one problem's prompt alone is longer. The
    shard samples the others and records the skipped one; the corpus and report count it.
    Before: the shard died on that problem, losing every other problem's samples."""
    from helpers import save_tiny_student
    from redi.teacher.corpus import build_corpus
    from redi.teacher.problems import select_problems
    from redi.teacher.sample import sample_shard

    model = save_tiny_student(tmp_path / "teacher")
    long_problem = "Add these: " + " + ".join(str(i) for i in range(3000)) + "."
    bench = tmp_path / "set.json"
    bench.write_text(json.dumps([{"problem": "What is 3+4?", "answer": 7}, {"problem": long_problem, "answer": 1},
                                 {"problem": "What is 2+2?", "answer": 4}]))  # fmt: skip
    select_problems(tmp_path / "p.json", {"problems": str(bench), "keep_corpus_traces": False}, problems_path=bench)
    cfg = {"backend": "transformers", "sampling": {"max_new_tokens": 8}, "n_samples": 2, "batch_size": 4}
    shard = tmp_path / "shard-0-of-1"
    cost = sample_shard(tmp_path / "p.json", model, shard, cfg, index=0, n_shards=1)
    assert cost["skipped_over_budget"] == 1 and cost["problems"] == 3 and cost["samples"] == 4
    (skipped,) = cost["skipped_problems"]
    assert skipped["prompt_tokens"] + 8 > 4096
    report = build_corpus(tmp_path / "p.json", [shard], tmp_path / "c.parquet", tmp_path / "o.json",
                          tmp_path / "r.json", unknown_validity="yes")  # fmt: skip
    assert report["skipped_over_budget"] == 1 and report["rows"] == 2 and report["samples"] == 4


# ---- a tracking failure keeps the evaluation's results ---------------------------------------


def test_tracking_failure_keeps_the_evaluation_results(tmp_path, one_torch_thread, monkeypatch, caplog):
    """A checkpoint's evaluation whose TensorBoard write fails: the job succeeds with its
    metrics written and a warning logged (a failed job would have Snakemake delete them)."""
    from helpers import save_tiny_student
    from redi import tracking
    from redi.eval.run import evaluate

    run_dir = tmp_path / "results/train/r"
    ckpt = run_dir / "checkpoints/checkpoint-2"
    save_tiny_student(ckpt)
    bench = tmp_path / "toy.json"
    bench.write_text(json.dumps([{"problem": "1+1?", "answer": 2}]))

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(tracking, "log_evaluation", broken)
    cfg = {"backend": "transformers", "sampling": {"max_new_tokens": 4}, "n_samples": 1}
    out = tmp_path / "eval"
    metrics = evaluate(ckpt, "toy", bench, out, cfg, run="r", checkpoint="step-2")
    assert (out / "metrics.json").is_file() and metrics["step"] == 2
    assert any("tracking failed" in r.getMessage() and "No space left" in r.getMessage() for r in caplog.records)


# ---- errors reach the job's log ----------------------------------------------------------------


def test_an_uncaught_error_reaches_the_job_log(tmp_path):
    """A ``script:`` job runs as its own Python process: its traceback went only to Snakemake's
    console. Every adapter's ``setup_logging`` now writes it to the rule's log file too."""
    log = tmp_path / "job.log"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "workflow/scripts")!r})
        import _bootstrap
        _bootstrap.setup_logging({str(log)!r})
        def train():
            raise ValueError("config key 'tracking.report_to': needs the package 'tensorboard'")
        train()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "ValueError" in r.stderr  # still on stderr, still a failure
    text = log.read_text()
    assert "needs the package 'tensorboard'" in text and "Traceback" in text and "in train" in text


# ---- memory hints from the student's size ---------------------------------------------------

SMOLLM2_135M = {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "tie_word_embeddings": True, "max_position_embeddings": 8192}  # fmt: skip


QWEN2_TINY = {"model_type": "qwen2", "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 384,
              "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
              "tie_word_embeddings": False}  # fmt: skip


@pytest.mark.parametrize("shape", [SMOLLM2_135M, QWEN2_TINY], ids=["llama-135m", "qwen2-tiny"])
def test_parameter_count_matches_transformers(shape):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from redi.plan import count_parameters

    cfg = AutoConfig.for_model(**shape)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert count_parameters(shape) == sum(p.numel() for p in model.parameters())


MEASURE = textwrap.dedent("""
    import json, resource, sys, torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from redi.train.logprobs import response_logprobs
    torch.set_num_threads(1)
    shape, rows, length = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape), attn_implementation="sdpa").float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, shape["vocab_size"], (rows, length))
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[1:, length // 2:] = 0
    lp = response_logprobs(model, ids, torch.arange(rows * length - 1), ids.reshape(-1)[1:], attention_mask=mask)
    lp.sum().backward()
    opt.step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
""")


def test_memory_estimate_bounds_a_measured_training_step():
    """One optimizer step of a micro-batch at the caps (16 rows of 512 tokens: 8 pairs), peak
    RSS measured in a fresh process: the estimate is above it and within 1.6x."""
    from redi.plan import estimate_train_mem_mb

    shape = {"model_type": "qwen2", "vocab_size": 4096, "hidden_size": 128, "intermediate_size": 384,
             "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
             "tie_word_embeddings": True, "max_position_embeddings": 2048}  # fmt: skip
    run = {"objective": "dpo", "beta": 0.1, "per_device_batch_size": 8, "global_batch_size": 8,
           "max_prompt_length": 256, "max_response_length": 256}  # fmt: skip
    r = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(shape), "16", "512"], capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    measured = float(r.stdout.split()[-1])
    estimate = estimate_train_mem_mb(shape, run)
    assert measured <= estimate <= 1.6 * measured, (measured, estimate)  # measured here: 891 <= 1,109 MB


def test_memory_hints_follow_the_student(tmp_path, caplog):
    """A 135M student's stage 2 on the CPU: ``mem_mb: auto`` becomes the estimate, and a
    configured 4,000 MB (the value that SLURM would have killed at 8.6 GB) draws a warning."""
    import yaml

    from redi.plan import all_runs, estimate_train_mem_mb, stage_resources, validate_config

    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text(json.dumps(SMOLLM2_135M))
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["student"] = {"kind": "pretrained", "local_path": str(student)}
    config["resources"]["train"].pop("mem_mb", None)
    validate_config(config)
    expected = max(estimate_train_mem_mb(SMOLLM2_135M, r) for r in all_runs(config).values())
    assert stage_resources(config, "train")["mem_mb"] == expected > 8600
    assert stage_resources(config, "eval")["mem_mb"] == 4000  # configured: kept
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["student"] = {"kind": "pretrained", "local_path": str(student)}
    config["resources"]["train"]["mem_mb"] = 4000
    with caplog.at_level("WARNING", logger="redi.plan"):
        validate_config(config)
    assert stage_resources(config, "train")["mem_mb"] == 4000
    assert any("resources.train.mem_mb" in r.getMessage() and "4000 MB is below" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_hand_launched_worker_with_another_mixed_precision_is_refused(inputs, tmp_path, monkeypatch):
    """``accelerate launch --config_file accelerate/zero2.yaml`` (mixed_precision bf16) of a run
    with ``bf16: false`` stops before any work, naming both settings, instead of DeepSpeed's
    ``ds bf16.enabled=True vs hf bf16=False`` or a silent bf16 autocast under DDP/FSDP."""
    from redi.train.run import train

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what accelerate launch gives its workers
    with pytest.raises(ValueError, match=r"bf16 is False.*mixed_precision 'bf16'.*--mixed_precision no"):
        train({"objective": "sft", "max_steps": 1, "bf16": False}, inputs["model"], inputs["sft"], str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_zero2_on_cpu_resumes_exactly_after_a_kill(inputs, tmp_path):
    """ZeRO-2 on 2 gloo processes, killed (the whole process group, as SLURM does) once its
    first checkpoint exists, then rerun: every step's loss and the final weights equal an
    uninterrupted run's (measured: equal to the last bit; about 2 minutes here)."""
    pytest.importorskip("deepspeed")
    import signal

    from safetensors.torch import load_file

    run = {"objective": "redi", "alpha": 0.8, "global_batch_size": 4, "per_device_batch_size": 1, "max_steps": 4,
           "learning_rate": 1e-3, "bf16": True, "seed": 5, "save_steps": 1}  # fmt: skip
    args = ["--run-json", json.dumps(run), "--model", inputs["model"], "--data", inputs["pref"], "--cpu-processes", "2",
            "--accelerate-config", "zero2", "--threads", "2"]  # fmt: skip
    _redi("train", "run", *args, "--out", tmp_path / "whole")
    cut = tmp_path / "cut"
    proc = subprocess.Popen([str(BIN / "redi"), "train", "run", *args, "--out", str(cut)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 600
    while not (cut / "checkpoints/checkpoint-1").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "summary.json").exists()  # it really was cut short
    _redi("train", "run", *args, "--out", cut)
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["resumed_from_step"] >= 1 and summary["numerics"]["deepspeed"] and summary["world_size"] == 2
    whole = [json.loads(x) for x in (tmp_path / "whole/metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole] and len(whole) == 4
    w1, w2 = load_file(str(tmp_path / "whole/model/model.safetensors")), load_file(str(cut / "model/model.safetensors"))
    assert all(bool((w1[k] == w2[k]).all()) for k in w1)
