"""Shared test setup."""

import sys
from pathlib import Path

# Snakemake puts a `script:`'s own folder on sys.path; tests that run the adapters with runpy
# need the same, so that `import _bootstrap` resolves.
SCRIPTS = str(Path(__file__).resolve().parents[1] / "workflow" / "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
