"""Shared test setup."""

import sys
from pathlib import Path

import pytest

# Snakemake puts a `script:`'s own folder on sys.path; tests that run the adapters with runpy
# need the same, so that `import _bootstrap` resolves.
SCRIPTS = str(Path(__file__).resolve().parents[1] / "workflow" / "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and CI's 2 cores are shared); restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
