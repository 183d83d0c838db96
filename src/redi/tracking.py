"""Live curves through the trackers users already have: the Trainer's own ``report_to``.

Config (``tracking`` in config/config.yaml; config/README.md)::

    tracking:
      report_to: [tensorboard]   # any of tensorboard, wandb, mlflow; [] = none
      project: redi              # W&B project / MLflow experiment: the sweep's name

* TensorBoard (default; local event files, works offline): every run writes to
  ``results/train/{run}/tensorboard/`` (``tensorboard --logdir results/train`` shows the sweep,
  one curve per run). Tags carry the run's stage (``sft`` or ``stage2``), so that SFT's long step
  axis never squeezes stage 2's onto one chart: ``train/<stage>/<metric>`` for every per-step
  metric the trainer records (loss, chosen/rejected per-token log-prob, margin, gradient norm,
  update norm, learning rate, tokens/s), and ``eval/<stage>/<benchmark>/pass@1`` (and
  ``.../sem``) at each checkpoint's step, appended by the evaluation job as it lands
  (:func:`log_evaluation`). A stage-2 run's eval curve starts at step 0 with its start model (the
  start run's last checkpoint evaluation), and each run's hyper-parameters (objective, its own
  parameters, learning rate) go to TensorBoard's HParams dashboard, so the sweep reads as a
  table or parallel coordinates against its accuracy.
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
STAGE_ENV = "REDI_TRACKING_STAGE"  # the training process's stage (sft / stage2), for scalars()


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


def stage(run: dict) -> str:
    """``sft`` for stage-1 runs, ``stage2`` for pairwise runs: the tag prefix of their curves."""
    from redi.train import objectives

    return "stage2" if objectives.get(run["objective"]).pairwise else "sft"


def recorded_run(run_dir: str | Path) -> dict | None:
    """The run's config as training recorded it (``summary.json``, else the live
    ``checkpoints/run.json``), or None."""
    for path in (Path(run_dir) / "summary.json", Path(run_dir) / "checkpoints" / "run.json"):
        try:
            config = json.loads(path.read_text()).get("config")
        except (OSError, ValueError):
            continue
        if config:
            return config
    return None


def trainer_arguments(tracking: dict, run: dict, run_dir: str | Path) -> dict:
    """``TrainingArguments`` keywords (``report_to``, ``run_name``) for one run, and the
    environment the Trainer's integrations read (set only where the user has not set it)."""
    if "tensorboard" in tracking["report_to"]:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(run_dir))
    os.environ[STAGE_ENV] = stage(run)
    if "wandb" in tracking["report_to"]:
        os.environ.setdefault("WANDB_PROJECT", tracking["project"])
        os.environ.setdefault("WANDB_RUN_GROUP", sweep_group(run))
    if "mlflow" in tracking["report_to"]:
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", tracking["project"])
        os.environ.setdefault("MLFLOW_TAGS", json.dumps({"sweep_group": sweep_group(run)}))
    return {"report_to": tracking["report_to"] or "none", "run_name": run.get("name")}


def scalars(record: dict, stage_name: str | None = None) -> dict:
    """The finite numeric entries of a metrics record, for ``Trainer.log`` (step/epoch/flags out),
    named ``<stage>/<key>`` (the Trainer's TensorBoard callback adds ``train/``); ``stage_name``
    defaults to the one :func:`trainer_arguments` set for this process (none: bare keys)."""
    stage_name = stage_name if stage_name is not None else os.environ.get(STAGE_ENV, "")
    prefix = f"{stage_name}/" if stage_name else ""
    out = {}
    for key, value in record.items():
        if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value == value and abs(value) != float("inf"):
            out[prefix + key] = float(value)
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
    """Append one checkpoint's evaluation (``eval/<stage>/<benchmark>/pass@1`` and ``.../sem`` at
    its step) to the run's TensorBoard folder; returns the event file, or None when TensorBoard is
    off or the evaluation has no step (``final``/``best`` are logged at their step if known).

    Once per run and benchmark it also writes step 0 of a stage-2 run (its start run's last
    checkpoint evaluation, ``results/eval/{start}/step-{N}/{benchmark}/metrics.json``, when it
    exists) and the run's HParams session (objective, negatives, its own parameters, learning rate; metric:
    this tag's pass@1). Marker files ``tensorboard/.step0-{benchmark}`` / ``.hparams`` record that.
    """
    tracking = resolve(tracking)
    step = metrics.get("step")
    if "tensorboard" not in tracking["report_to"] or step is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    run = recorded_run(run_dir) or {}
    prefix = f"eval/{stage(run)}" if run.get("objective") else "eval"
    bench = metrics["benchmark"]
    ckpt = str(metrics.get("checkpoint", ""))
    folder = tensorboard_dir(run_dir)
    writer = SummaryWriter(log_dir=str(folder), filename_suffix=f".eval-{ckpt}-{bench}")
    try:
        for key in ("pass@1", "sem"):
            if isinstance(metrics.get(key), (int, float)):
                tag = f"{prefix}/{bench}/{key}" if ckpt.startswith("step-") else f"{prefix}/{bench}/{ckpt}/{key}"
                writer.add_scalar(tag, float(metrics[key]), int(step))
        if ckpt.startswith("step-") and run.get("start") and run.get("objective") != "sft":
            _log_start(writer, run_dir, run["start"], bench, prefix)
        if run.get("objective"):
            _log_hparams(writer, folder, run, f"{prefix}/{bench}/pass@1")
        path = Path(writer.file_writer.event_writer._file_name)
    finally:
        writer.close()
    return path


def _log_start(writer, run_dir: Path, start: str, bench: str, prefix: str) -> None:
    """Step 0 of a stage-2 eval curve: the start run's last checkpoint evaluation (once)."""
    marker = tensorboard_dir(run_dir) / f".step0-{bench}"
    if marker.exists():
        return
    results = run_dir.parent.parent  # results/train/{run} -> results
    try:
        last = int(json.loads((results / "train" / start / "summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    path = results / "eval" / start / f"step-{last}" / bench / "metrics.json"
    try:
        start_metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for key in ("pass@1", "sem"):
        if isinstance(start_metrics.get(key), (int, float)):
            writer.add_scalar(f"{prefix}/{bench}/{key}", float(start_metrics[key]), 0)
    marker.write_text(str(path))


def _log_hparams(writer, folder: Path, run: dict, metric_tag: str) -> None:
    """The run's HParams session (once): objective, negatives source (stage 2), its own parameters
    and the learning rate, with ``metric_tag`` (an eval pass@1 tag of this run) as the metric the
    dashboard shows."""
    from torch.utils.tensorboard.summary import hparams

    from redi.train import objectives

    marker = folder / ".hparams"
    if marker.exists():
        return
    params = {"objective": str(run["objective"]), "stage": stage(run)}
    if run.get("negatives"):  # stage 2: teacher / student / both
        params["negatives"] = str(run["negatives"])
    for key in (*objectives.get(run["objective"]).params, "learning_rate"):
        if isinstance(run.get(key), (int, float)):
            params[key] = float(run[key])
    experiment, start, end = hparams(params, {metric_tag: 0.0})  # the metric's value is read from its scalars
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)
    marker.write_text(json.dumps(params))
