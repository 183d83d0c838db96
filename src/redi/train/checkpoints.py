"""A run's checkpoint folders: which one a rerun resumes from, which files are the model and which
are trainer state, and making a finished checkpoint durable.

Layout (``{out_dir}/checkpoints/``, see ``run.py``): ``checkpoint-{step}/`` holds HF weights and
tokenizer, plus the trainer state needed to resume (optimizer, scheduler, RNG, ``trainer_state.json``,
:data:`REDI_STATE`). With ``keep_optimizer_state="last"`` only the newest keeps the resume state
(:func:`prune_resume_state`). A checkpoint is written into ``.staging-{step}/`` and renamed into
place when complete (``trainer.RediTrainer._save_checkpoint``), so a ``checkpoint-*`` folder is
never half written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from redi.files import fsync_dir

#: our own trainer state in a checkpoint (wall time, tokens seen, collapse step)
REDI_STATE = "redi_state.json"
#: files only needed to resume, by name prefix: optimizer.pt (torch), optimizer.bin / optimizer_0/
#: (FSDP), scheduler.pt, scaler.pt, rng_state*.pth, global_step*/ (DeepSpeed)
RESUME_PREFIXES = ("optimizer", "scheduler", "scaler", "rng_state", "global_step")
#: other files of a checkpoint that are trainer state, not part of the HF model folder
TRAINER_FILES = ("trainer_state.json", "training_args.bin", REDI_STATE, "latest", "zero_to_fp32.py")


def step_of(ckpt: Path) -> int:
    """``checkpoint-120`` -> 120."""
    return int(Path(ckpt).name.split("-", 1)[1])


def is_resumable(ckpt: Path) -> bool:
    """A checkpoint a run can resume from: complete (renamed) and with its optimizer state."""
    ckpt = Path(ckpt)
    has_opt = any(ckpt.glob("optimizer*")) or any(ckpt.glob("global_step*"))
    return (ckpt / "trainer_state.json").exists() and has_opt


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-{step}`` folder under ``root``, oldest first."""
    out = []
    for d in Path(root).glob("checkpoint-*"):
        suffix = d.name.split("-", 1)[1]
        if d.is_dir() and suffix.isdigit():
            out.append((int(suffix), d))
    return sorted(out)


def latest_resumable(root: Path) -> Path | None:
    """The newest checkpoint under ``root`` that :func:`is_resumable`, or ``None``."""
    for _, d in reversed(checkpoint_dirs(root)):
        if is_resumable(d):
            return d
    return None


def prune_resume_state(root: Path, keep: Path) -> None:
    """Remove optimizer/scheduler/RNG state from every checkpoint except ``keep``."""
    for _, d in checkpoint_dirs(root):
        if d.resolve() == Path(keep).resolve():
            continue
        for f in d.iterdir():
            if f.name.startswith(RESUME_PREFIXES):
                if f.is_dir():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    f.unlink(missing_ok=True)


def copy_model_files(src: Path, dst: Path) -> None:
    """Copy the HF model files of checkpoint ``src`` (weights, config, tokenizer) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in TRAINER_FILES and not f.name.startswith(RESUME_PREFIXES):
            shutil.copy2(f, dst / f.name)


def fsync_tree(path: Path) -> None:
    """``fsync`` every file and folder under ``path`` (before it is renamed into place)."""
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    os.fsync(f.fileno())
            except OSError:
                pass
        fsync_dir(dirpath)
