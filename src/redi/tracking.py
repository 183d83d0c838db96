"""Live curves through the trackers users already have: the Trainer's own ``report_to`` (issue 15).

Config (``tracking`` in config/config.yaml; config/README.md)::

    tracking:
      report_to: [tensorboard]   # any of tensorboard, wandb, mlflow; [] = none
      project: redi              # W&B project / MLflow experiment: the sweep's name

* TensorBoard (default; local event files, works offline): every run writes to
  ``results/train/{run}/tensorboard/`` (``tensorboard --logdir results/train`` shows the sweep,
  one curve per run). Tags: ``train/<metric>`` for every per-step metric the trainer records
  (loss, chosen/rejected per-token log-prob, margin, gradient norm, update norm, learning rate,
  tokens/s), and ``eval/<benchmark>/pass@1`` (and ``.../sem``) at each checkpoint's step, appended
  by the evaluation job as it lands (:func:`log_evaluation`).
* W&B / MLflow: the Trainer's integrations, with run name = the run, W&B group / MLflow tag =
  the sweep group (``sft`` or ``stage2-from-{start}``), W&B project / MLflow experiment =
  ``project``. Off by default and never required: naming one that is not installed fails the
  job at its start with the package to install.

Snakemake passes the config to every job through the ``REDI_TRACKING`` environment variable
(set by ``rules/tracking.smk`` when the workflow is read, so it also reaches ``accelerate
launch`` workers and SLURM jobs, and changing it never invalidates a finished run).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "REDI_TRACKING"
DEFAULTS = {"report_to": ["tensorboard"], "project": "redi"}
# report_to name -> (module that must be importable, pip package)
BACKENDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}
TB_DIR = "tensorboard"


def resolve(tracking: dict | None = None) -> dict:
    """The tracking settings: ``tracking``, else ``$REDI_TRACKING`` (JSON), over :data:`DEFAULTS`.
    Raises ``ValueError`` naming ``tracking.report_to`` for an unknown or uninstalled backend."""
    if tracking is None and os.environ.get(ENV):
        tracking = json.loads(os.environ[ENV])
    out = {**DEFAULTS, **(tracking or {})}
    report_to = out["report_to"]
    if isinstance(report_to, str):
        report_to = [] if report_to in ("none", "") else [report_to]
    for name in report_to:
        if name not in BACKENDS:
            raise ValueError(f"config key 'tracking.report_to': unknown tracker {name!r} (known: {sorted(BACKENDS)})")
        module, package = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"config key 'tracking.report_to': {name!r} needs the package '{package}' (pip install {package})"
            )
    out["report_to"] = list(report_to)
    return out


def export(tracking: dict) -> None:
    """Put the tracking settings in ``$REDI_TRACKING`` for every job started from here."""
    os.environ[ENV] = json.dumps(tracking or {})


def sweep_group(run: dict) -> str:
    """``sft`` for stage-1 runs, ``stage2-from-{start}`` for stage-2 (pairwise) runs."""
    from redi.train import objectives

    if not objectives.get(run["objective"]).pairwise:
        return "sft"
    return f"stage2-from-{run.get('start') or 'start'}"


def tensorboard_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / TB_DIR


def trainer_arguments(tracking: dict, run: dict, run_dir: str | Path) -> dict:
    """``TrainingArguments`` keywords (``report_to``, ``run_name``) for one run, and the
    environment the Trainer's integrations read (set only where the user has not set it)."""
    if "tensorboard" in tracking["report_to"]:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(run_dir))
    if "wandb" in tracking["report_to"]:
        os.environ.setdefault("WANDB_PROJECT", tracking["project"])
        os.environ.setdefault("WANDB_RUN_GROUP", sweep_group(run))
    if "mlflow" in tracking["report_to"]:
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", tracking["project"])
        os.environ.setdefault("MLFLOW_TAGS", json.dumps({"sweep_group": sweep_group(run)}))
    return {"report_to": tracking["report_to"] or "none", "run_name": run.get("name")}


def scalars(record: dict) -> dict:
    """The finite numeric entries of a metrics record, for ``Trainer.log`` (step/epoch/flags out)."""
    out = {}
    for key, value in record.items():
        if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value == value and abs(value) != float("inf"):
            out[key] = float(value)
    return out


def run_dir_of(model_path: str | Path) -> Path | None:
    """The training run folder a model belongs to (``results/train/{run}/checkpoints/checkpoint-N``
    or ``results/train/{run}/model``), or None (the student, a reference model)."""
    p = Path(model_path)
    if p.parent.name == "checkpoints" and p.name.startswith("checkpoint-"):
        return p.parent.parent
    if p.name == "model" and (p.parent / "summary.json").is_file():
        return p.parent
    return None


def log_evaluation(run_dir: str | Path, metrics: dict, tracking: dict | None = None) -> Path | None:
    """Append one checkpoint's evaluation (``eval/{benchmark}/pass@1`` and ``.../sem`` at its
    step) to the run's TensorBoard folder; returns the event file, or None when TensorBoard is
    off or the evaluation has no step (``final``/``best`` are logged at their step if known)."""
    tracking = resolve(tracking)
    step = metrics.get("step")
    if "tensorboard" not in tracking["report_to"] or step is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    bench = metrics["benchmark"]
    suffix = f".eval-{metrics.get('checkpoint')}-{bench}"
    writer = SummaryWriter(log_dir=str(tensorboard_dir(run_dir)), filename_suffix=suffix)
    try:
        for key in ("pass@1", "sem"):
            if isinstance(metrics.get(key), (int, float)):
                tag = (
                    f"eval/{bench}/{key}"
                    if metrics.get("checkpoint", "").startswith("step-")
                    else f"eval/{bench}/{metrics.get('checkpoint')}/{key}"
                )
                writer.add_scalar(tag, float(metrics[key]), int(step))
        path = Path(writer.file_writer.event_writer._file_name)
    finally:
        writer.close()
    return path
