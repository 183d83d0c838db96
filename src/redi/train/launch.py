"""Run a training job on this machine's GPUs: in-process for one device, ``accelerate launch``
for several (one Snakemake job per run starts all of its GPU workers).

The shipped accelerate configs live in ``accelerate/`` at the repository root: ``ddp.yaml``
(plain DDP; exact update norms), ``zero2.yaml`` (the paper's DeepSpeed ZeRO-2), ``zero3.yaml``
and ``fsdp.yaml``. ``--num_processes`` is always set from ``gpus``.
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


def trains_under_deepspeed(accelerate_config: str | None, gpus: int) -> bool:
    """Whether a training job with these settings runs under DeepSpeed: only multi-GPU jobs go
    through ``accelerate launch`` (one GPU trains in-process, without DeepSpeed)."""
    if int(gpus) <= 1:
        return False
    import yaml

    spec = yaml.safe_load(accelerate_config_path(accelerate_config).read_text()) or {}
    return spec.get("distributed_type") == "DEEPSPEED"


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
) -> list[str]:
    """The command that starts one worker per GPU (``accelerate launch`` with the named config),
    or, with ``gpus == 0`` and ``cpu_processes > 1``, ``cpu_processes`` CPU workers
    (``torch.distributed.run``; gloo; accelerate's own CPU launcher needs MPI).

    Run it with :func:`redi.runtime.worker_env` so that the workers import this package.
    """
    n = int(gpus) if int(gpus) > 0 else int(cpu_processes)
    per_worker = max(1, int(threads) // max(1, n))
    if int(gpus) > 0:
        head = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(accelerate_config_path(accelerate_config)),
            "--num_processes", str(n),
        ]
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
    data_path, out_dir, ref_logps_path, threads) in this process (one GPU, or the CPU) or in one
    worker per GPU under ``accelerate launch`` (``gpus > 1``); ``cpu_processes > 1`` with
    ``gpus == 0`` trains with that many CPU processes (gloo DDP; used by the tests and for CPU
    clusters). ``log_file``: where the workers' output goes. Returns the run summary.

    Raises:
        TypeError: arguments ``train()`` does not take.
        RuntimeError: ``gpus > 0`` and torch cannot use that many GPUs (``require_cuda``).
    """
    from redi.runtime import require_cuda, worker_env

    from .run import train

    job = inspect.signature(train).bind(*args, **kwargs)  # fails here, before any worker starts
    job.apply_defaults()
    a = job.arguments
    if not in_distributed_worker():
        require_cuda(int(gpus), f"training run {a['run'].get('name')!r}")
    workers = int(gpus) if int(gpus) > 0 else int(cpu_processes)
    if workers <= 1 or in_distributed_worker():
        return train(*job.args, **job.kwargs)
    out = Path(a["out_dir"])
    run_json = out / "checkpoints" / "launch_run.json"
    write_json_atomic(run_json, a["run"])
    cmd = launch_command(run_json, a["model_path"], a["data_path"], a["out_dir"],
                         ref_logps_path=a["ref_logps_path"], threads=a["threads"], gpus=int(gpus),
                         accelerate_config=accelerate_config, cpu_processes=int(cpu_processes))  # fmt: skip
    log.info("launching: %s", " ".join(cmd))
    stream = open(log_file, "a") if log_file else None
    try:
        subprocess.run(cmd, check=True, env=worker_env(), stdout=stream,
                       stderr=subprocess.STDOUT if stream else None)  # fmt: skip
    finally:
        if stream:
            stream.close()
    return json.loads((out / "summary.json").read_text())
