"""Process-level settings every entry point applies before heavy work."""

from __future__ import annotations

import os


def set_threads(n: int) -> None:
    """Pin torch and BLAS to ``n`` threads.

    Snakemake runs several jobs at once; two jobs that each take every core run many times
    slower than two single-thread jobs, so each job uses exactly its ``threads``.
    """
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set once in this process
        pass
