"""Lint: ``ruff check`` (config in pyproject.toml: pycodestyle, pyflakes, isort, bugbear,
pyupgrade; line length 120) is clean over the Python the project ships and tests. ruff comes
with the ``test`` extra, so CI runs this with the README's test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "workflow", "bench"]


def test_ruff_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
