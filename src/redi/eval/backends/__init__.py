"""Sampling backends, one per file (as lm-evaluation-harness keeps one model backend per file),
registered here by name (``evaluation.backend``):

* ``transformers`` - :mod:`redi.eval.backends.transformers_backend` (CPU, CI, one GPU);
* ``vllm`` - :mod:`redi.eval.backends.vllm_backend` (GPUs; ``vllm`` imported only when an engine
  is built).

What they share (records, seeds, stop tokens, the budget check) is :mod:`redi.eval.generate`.
Adding a backend = a file with a :class:`~redi.eval.generate.Backend` subclass + its entry here.
"""

from __future__ import annotations

import inspect
import os

from redi.eval.backends.transformers_backend import TransformersBackend
from redi.eval.backends.vllm_backend import VLLMBackend
from redi.eval.generate import Backend

BACKENDS: dict[str, type[Backend]] = {
    "transformers": TransformersBackend,
    "vllm": VLLMBackend,
}

# constructor arguments that are not options of the config's backend block
_NOT_OPTIONS = {"self", "model_path", "tokenizer", "batch_size", "trust_remote_code"}


def backend_options(name: str) -> set[str]:
    """The option names the backend ``name`` accepts (its constructor's keywords)."""
    return set(inspect.signature(BACKENDS[name].__init__).parameters) - _NOT_OPTIONS


def groups_per_run(setting: bool | str, backend: str) -> bool:
    """``evaluation.group_per_run`` resolved: ``auto`` takes the backend's ``group_per_run``
    (transformers: true, vllm: false), a boolean is kept.

    Raises:
        ValueError: an unknown backend or setting.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; expected one of {sorted(BACKENDS)}")
    if setting == "auto":
        return BACKENDS[backend].group_per_run
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"evaluation key 'group_per_run' must be auto, true or false, got {setting!r}")


def make_backend(
    name: str,
    model_path: str | os.PathLike,
    *,
    tokenizer=None,
    batch_size: int,
    trust_remote_code: bool = False,
    **options,
) -> Backend:
    """Build the backend registered as ``name``; ``options`` go to its constructor (see
    :func:`backend_options`; ``EvalConfig.from_dict`` has already checked their names).

    Raises:
        ValueError: ``name`` is not a registered backend.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; expected one of {sorted(BACKENDS)}")
    return BACKENDS[name](
        model_path, tokenizer, batch_size=batch_size, trust_remote_code=trust_remote_code, **options
    )


__all__ = ["BACKENDS", "TransformersBackend", "VLLMBackend", "backend_options", "groups_per_run", "make_backend"]
