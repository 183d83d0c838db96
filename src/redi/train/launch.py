"""Run a training job on this machine's GPUs: in-process for one device, ``accelerate launch``
for several (one Snakemake job per run starts all of its GPU workers).

The shipped accelerate configs live in ``accelerate/`` at the repository root: ``ddp.yaml``
(plain DDP; exact update norms), ``zero2.yaml`` (the paper's DeepSpeed ZeRO-2), ``zero3.yaml``
and ``fsdp.yaml``. ``--num_processes`` is always set from ``gpus``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
ACCELERATE_CONFIGS = REPO_ROOT / "accelerate"


def accelerate_config_path(name_or_path: str | None) -> Path:
    """``"zero2"`` / ``"zero2.yaml"`` / a path -> the config file (default ``zero2``)."""
    name = name_or_path or "zero2"
    p = Path(name)
    if p.is_file():
        return p
    candidate = ACCELERATE_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not candidate.is_file():
        raise FileNotFoundError(f"accelerate config {name!r} not found (looked in {ACCELERATE_CONFIGS})")
    return candidate


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
) -> list[str]:
    per_worker = max(1, int(threads) // max(1, gpus))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_config_path(accelerate_config)),
        "--num_processes", str(gpus),
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
    run: dict,
    model_path: str,
    data_path: str,
    out_dir: str,
    *,
    ref_logps_path: str | None = None,
    threads: int = 1,
    gpus: int = 0,
    accelerate_config: str | None = None,
    log_file: str | None = None,
) -> dict:
    """``train()`` in this process (``gpus <= 1``) or under ``accelerate launch`` (``gpus > 1``)."""
    if int(gpus) <= 1 or in_distributed_worker():
        from .run import train

        return train(run, model_path, data_path, out_dir, ref_logps_path=ref_logps_path, threads=threads)
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    run_json = out / "checkpoints" / "launch_run.json"
    run_json.write_text(json.dumps(run, indent=1))
    cmd = launch_command(run_json, model_path, data_path, out_dir, ref_logps_path=ref_logps_path,
                         threads=threads, gpus=int(gpus), accelerate_config=accelerate_config)
    log.info("launching: %s", " ".join(cmd))
    stream = open(log_file, "a") if log_file else None
    try:
        subprocess.run(cmd, check=True, stdout=stream, stderr=subprocess.STDOUT if stream else None)
    finally:
        if stream:
            stream.close()
    return json.loads((out / "summary.json").read_text())
