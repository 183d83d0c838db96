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


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A saved tiny student (init std 0.2) with its SFT and pair files
    (``helpers.tiny_training_inputs``: 8 examples, fillers up to 12 words), made once per module;
    a module that needs other sizes defines its own ``inputs``."""
    from helpers import tiny_training_inputs

    return tiny_training_inputs(tmp_path_factory.mktemp("tiny"), n=8, max_filler=12)
