"""Make the repository's ``src/`` importable in every script (conda envs need not install it).

Snakemake puts this folder on ``sys.path`` for ``script:`` jobs; each adapter imports this
module first.
"""

import logging
import os
import sys
import time
import traceback
from pathlib import Path


def log_uncaught_errors() -> None:
    """Append an error that ends the job (its traceback) to the rule's own log file, as well as
    stderr: without this it reached only Snakemake's console (or the SLURM job's output file),
    and a job that died before or while setting up logging left its log empty. Installed before
    anything else is imported, so a missing package of the job's environment lands there too."""
    job = getattr(sys.modules.get("__main__"), "snakemake", None)  # the script preamble's object
    logs = list(getattr(job, "log", None) or [])
    if not logs:
        return
    path, previous = str(logs[0]), sys.excepthook

    def hook(kind, value, tb):
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as handle:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                handle.write(f"{stamp} ERROR job failed:\n{''.join(traceback.format_exception(kind, value, tb))}")
        except OSError:
            pass
        previous(kind, value, tb)

    sys.excepthook = hook


log_uncaught_errors()

SRC = str(Path(__file__).resolve().parents[2] / "src")
# first, even when already on the path further back: an editable install of another checkout
# (its .pth entry) would otherwise shadow this checkout's package
sys.path[:] = [SRC, *(p for p in sys.path if p != SRC)]

# Hugging Face progress bars (weight loading, downloads) write carriage returns into job logs;
# the package logs its own progress lines (redi.progress). Read when transformers is
# first imported, so set here, before any adapter imports the package.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Every job, not only those that set torch's threads (data jobs and their forked Math-Verify
# workers too): freed memory stays in the process (redi.runtime.keep_freed_memory).
from redi.runtime import keep_freed_memory  # noqa: E402

keep_freed_memory()


def setup_logging(log_path: str) -> None:
    """Send the package's log records, warnings and an uncaught exception's traceback to the
    rule's log file (the traceback also reaches stderr, as before)."""
    from redi.runtime import log_uncaught_exceptions

    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    log_uncaught_exceptions()
