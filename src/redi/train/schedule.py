"""Optimizer-step arithmetic shared by the trainer and the Snakefile.

Snakemake builds one evaluation job per saved checkpoint from :func:`checkpoint_steps`, and the
trainer saves exactly at those steps (it calls the same function), so the two can never drift.

Step counting rules (the trainer's batching implements them, ``batching.GlobalBatchSampler``):

* every optimizer step consumes one *global batch* of ``global_batch`` examples;
* an epoch has ``ceil(n_examples / global_batch)`` steps: the last global batch of an epoch may be
  short, and is topped up with zero-weight filler examples so that every step has the same shape
  on every device (fillers cost compute but contribute nothing to the loss or the metrics);
* the trainer never drops examples, so ``n_examples`` is the number of rows in the data file;
* ``max_steps`` (optional) overrides ``epochs`` (the Hugging Face ``Trainer`` semantics): training
  runs exactly ``max_steps`` steps, continuing into further epochs if needed.
"""

from __future__ import annotations

import math


def _check(n_examples: int, global_batch: int, epochs: int, max_steps: int | None) -> None:
    if int(n_examples) <= 0:
        raise ValueError(f"n_examples must be positive, got {n_examples}")
    if int(global_batch) <= 0:
        raise ValueError(f"global_batch must be positive, got {global_batch}")
    if max_steps is None and int(epochs) <= 0:
        raise ValueError(f"epochs must be positive when max_steps is not set, got {epochs}")
    if max_steps is not None and int(max_steps) <= 0:
        raise ValueError(f"max_steps must be positive or None, got {max_steps}")


def steps_per_epoch(n_examples: int, global_batch: int) -> int:
    """Optimizer steps in one pass over ``n_examples`` (the last, short batch counts as a step)."""
    _check(n_examples, global_batch, 1, None)
    return math.ceil(int(n_examples) / int(global_batch))


def total_steps(
    n_examples: int, global_batch: int, epochs: int, max_steps: int | None = None
) -> int:
    """Total optimizer steps of a run: ``max_steps`` if given, else ``epochs * steps_per_epoch``."""
    _check(n_examples, global_batch, epochs, max_steps)
    if max_steps is not None:
        return int(max_steps)
    return int(epochs) * steps_per_epoch(n_examples, global_batch)


def checkpoint_steps(
    n_examples: int,
    global_batch: int,
    epochs: int,
    save_steps: int,
    save_each_epoch: bool,
    max_steps: int | None = None,
    save: bool = True,
) -> list[int]:
    """The exact, sorted optimizer steps at which the trainer saves a checkpoint.

    Every multiple of ``save_steps`` (``save_steps <= 0`` or ``None`` disables these), every
    epoch end if ``save_each_epoch``, and always the final step; none at all when ``save`` is
    false (a measurement run: the run key ``save: false``).
    """
    total = total_steps(n_examples, global_batch, epochs, max_steps)
    if not save:
        return []
    steps = {total}
    if save_steps and int(save_steps) > 0:
        steps.update(range(int(save_steps), total + 1, int(save_steps)))
    if save_each_epoch:
        spe = steps_per_epoch(n_examples, global_batch)
        steps.update(range(spe, total + 1, spe))
    return sorted(steps)
