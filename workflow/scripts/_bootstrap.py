"""Make the repository's ``src/`` importable in every script (conda envs need not install it).

Snakemake puts this folder on ``sys.path`` for ``script:`` jobs; each adapter imports this
module first.
"""

import logging
import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

# Hugging Face progress bars (weight loading, downloads) write carriage returns into job logs;
# the package logs its own progress lines (redi.progress, issue 15). Read when transformers is
# first imported, so set here, before any adapter imports the package.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Every job, not only those that set torch's threads (data jobs and their forked Math-Verify
# workers too): freed memory stays in the process (redi.runtime.keep_freed_memory, issue 17).
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
