"""Run a training job on this machine's GPUs: in-process for one device, ``accelerate launch``
for several (one Snakemake job per run starts all of its GPU workers).

The shipped accelerate configs live in ``accelerate/`` at the repository root: ``ddp.yaml``
(plain DDP; exact update norms), ``zero2.yaml`` (the paper's DeepSpeed ZeRO-2), ``zero3.yaml``
and ``fsdp.yaml``. ``--num_processes`` is always set from ``gpus`` (or ``cpu_processes``), and
``--mixed_precision`` from the run's ``bf16``: the configs say ``bf16``, and a run with
``bf16: false`` (or ``auto`` on a device without bf16) would otherwise crash under DeepSpeed
(``ds bf16.enabled=True vs hf bf16=False``) or train under bf16 autocast under DDP/FSDP while
its summary records fp32.

On CPU machines ``cpu_processes > 1`` starts that many gloo workers: through ``accelerate
launch`` with the named config when one is given (DeepSpeed picks its CPU accelerator by itself;
its first run compiles a small op with g++, about a minute), else ``torch.distributed.run``
(plain DDP).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from redi.files import write_json_atomic

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
ACCELERATE_CONFIGS = REPO_ROOT / "accelerate"


def accelerate_config_path(name_or_path: str | None) -> Path:
    """``"zero2"`` / ``"zero2.yaml"`` / a path -> the config file (default ``zero2``)."""
    name = name_or_path or "zero2"
    p = Path(name)
    if p.is_file():
        return p
    # a relative "accelerate/zero2.yaml" also names the shipped file when the workflow's
    # working directory (snakemake -d) is not the repository
    file_name = p.name if p.name.endswith(".yaml") else f"{p.name}.yaml"
    candidate = ACCELERATE_CONFIGS / file_name
    if not candidate.is_file():
        raise FileNotFoundError(f"accelerate config {name!r} not found (looked in {ACCELERATE_CONFIGS})")
    return candidate


def is_deepspeed_config(accelerate_config: str | None) -> bool:
    """Whether the accelerate config (name or path; default ``zero2``) runs DeepSpeed."""
    import yaml

    spec = yaml.safe_load(accelerate_config_path(accelerate_config).read_text()) or {}
    return spec.get("distributed_type") == "DEEPSPEED"


def workers_of(gpus: int, cpu_processes: int = 0) -> int:
    """Worker processes of a training job: one per GPU, else ``cpu_processes`` on the CPU."""
    return int(gpus) if int(gpus) > 0 else max(1, int(cpu_processes or 1))


def launches_accelerate(gpus: int, cpu_processes: int = 0, accelerate_config: str | None = None) -> bool:
    """Whether the job starts its workers with ``accelerate launch``: several GPUs (the config
    defaults to ``zero2``), or several CPU processes with a config named."""
    if workers_of(gpus, cpu_processes) <= 1:
        return False
    return int(gpus) > 0 or bool(accelerate_config)


def trains_under_deepspeed(accelerate_config: str | None, gpus: int, cpu_processes: int = 0) -> bool:
    """Whether a training job with these settings runs under DeepSpeed: only jobs of several
    workers go through ``accelerate launch`` (one GPU trains in-process, without DeepSpeed; CPU
    workers use ``accelerate launch`` only when a config is named)."""
    return launches_accelerate(gpus, cpu_processes, accelerate_config) and is_deepspeed_config(accelerate_config)


def reference_in_deepspeed_mode(resources: dict) -> bool:
    """Whether the workflow's training jobs (the config's ``resources``: ``train.gpu``,
    ``train.cpu_processes``, ``accelerate_config``) run under DeepSpeed, so that the DPO reference
    pass must compute in DeepSpeed's numerics (bf16 weights, no autocast): the same decision
    :func:`run_training` makes when it launches them."""
    train = resources["train"]
    return trains_under_deepspeed(resources.get("accelerate_config"), int(train.get("gpu") or 0),
                                  int(train.get("cpu_processes") or 1))  # fmt: skip


def workers_bf16(bf16: bool | str) -> bool:
    """The run's ``bf16`` as its workers resolve it (:func:`redi.train.environment.resolve_bf16`),
    decided in the launcher without touching a GPU: asking torch whether bf16 is supported
    creates a CUDA context (hundreds of MB on GPU 0) that the launcher would hold for the whole
    run, so ``auto`` with CUDA present is asked of a short-lived interpreter."""
    if bf16 != "auto":
        return bool(bf16)
    import torch

    if not torch.cuda.is_available():
        return False
    code = "import torch; print(int(torch.cuda.is_bf16_supported()))"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return probe.stdout.strip() == "1"


def in_distributed_worker() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_command(
    run_json: Path,
    model_path: str,
    data_path: str,
    out_dir: str,
    *,
    ref_logps_path: str | None,
    threads: int,
    gpus: int,
    accelerate_config: str | None,
    cpu_processes: int = 0,
    bf16: bool | None = None,
) -> list[str]:
    """The command that starts one worker per GPU (``accelerate launch`` with the named config,
    default ``zero2``), or, with ``gpus == 0`` and ``cpu_processes > 1``, ``cpu_processes`` CPU
    workers (gloo): ``accelerate launch`` with ``accelerate_config`` when one is named,
    else ``torch.distributed.run`` (plain DDP; accelerate's own CPU launcher without a config
    needs MPI).

    ``bf16``: the run's resolved precision; it sets ``--mixed_precision bf16|no`` over the
    config's (None keeps the config's). Run the command with :func:`redi.runtime.worker_env`
    so that the workers import this package.
    """
    n = workers_of(gpus, cpu_processes)
    per_worker = max(1, int(threads) // max(1, n))
    if launches_accelerate(gpus, cpu_processes, accelerate_config):
        head = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(accelerate_config_path(accelerate_config)),
            "--num_processes", str(n),
        ]
        if bf16 is not None:
            head += ["--mixed_precision", "bf16" if bf16 else "no"]
    else:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]
    cmd = head + [
        "-m", "redi.train.cli", "run",
        "--config", str(run_json),
        "--model", str(model_path),
        "--data", str(data_path),
        "--out", str(out_dir),
        "--threads", str(per_worker),
    ]
    if ref_logps_path:
        cmd += ["--ref-logps", str(ref_logps_path)]
    return cmd


def run_training(
    *args,
    gpus: int = 0,
    accelerate_config: str | None = None,
    log_file: str | None = None,
    cpu_processes: int = 1,
    **kwargs,
) -> dict:
    """:func:`redi.train.run.train` with ``*args, **kwargs`` (its own signature: run, model_path,
    data_path, out_dir, ref_logps_path, threads) in this process (one GPU, or one CPU process)
    or in one worker per GPU under ``accelerate launch`` (``gpus > 1``; ``accelerate_config``,
    default ``zero2``); ``cpu_processes > 1`` with ``gpus == 0`` trains with that many gloo CPU
    processes, under ``accelerate launch`` with ``accelerate_config`` when one is named (DDP,
    FSDP, ZeRO-2, ZeRO-3 exercised on a CPU machine), else plain DDP (``torch.distributed.run``).
    The workers' mixed precision is the run's ``bf16`` (resolved on this machine), whatever the
    config file says. ``log_file``: where the workers' output goes. Returns the run summary.

    Raises:
        TypeError: arguments ``train()`` does not take.
        RuntimeError: ``gpus > 0`` and torch cannot use that many GPUs (``require_cuda``).
        subprocess.CalledProcessError: a worker failed (its traceback is in ``log_file``).
    """
    from redi.runtime import require_cuda, worker_env

    from .run import train

    job = inspect.signature(train).bind(*args, **kwargs)  # fails here, before any worker starts
    job.apply_defaults()
    a = job.arguments
    if not in_distributed_worker():
        require_cuda(int(gpus), f"training run {a['run'].get('name')!r}")
    if workers_of(gpus, cpu_processes) <= 1 or in_distributed_worker():
        return train(*job.args, **job.kwargs)
    from .config import RunConfig

    bf16 = workers_bf16(RunConfig.from_dict({"name": "launch", **a["run"]}).bf16)
    out = Path(a["out_dir"])
    run_json = out / "checkpoints" / "launch_run.json"
    write_json_atomic(run_json, a["run"])
    cmd = launch_command(run_json, a["model_path"], a["data_path"], a["out_dir"],
                         ref_logps_path=a["ref_logps_path"], threads=a["threads"], gpus=int(gpus),
                         accelerate_config=accelerate_config, cpu_processes=int(cpu_processes),
                         bf16=bf16)  # fmt: skip
    log.info("launching: %s", " ".join(cmd))
    stream = open(log_file, "a") if log_file else None
    try:
        # the workers watch this process and exit with it (worker_env, exit_with_launcher)
        subprocess.run(cmd, check=True, env=worker_env(), stdout=stream,
                       stderr=subprocess.STDOUT if stream else None)  # fmt: skip
    finally:
        if stream:
            stream.close()
    return json.loads((out / "summary.json").read_text())
