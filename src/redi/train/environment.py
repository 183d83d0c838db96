"""Where and how a training job computes: device, precision mode, attention, padding, gradient
checkpointing, DeepSpeed. One home for the numerics that training and the DPO
reference pass (``redi.train.reference``) must agree on: the reference log-probs record the
precision mode they were computed in, and a run refuses a file made in another mode.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from .config import RunConfig

log = logging.getLogger(__name__)


@dataclass
class Environment:
    device: str
    n_gpus: int
    world_size: int
    bf16: bool
    attn_implementation: str
    padding_free: bool
    gradient_checkpointing: bool
    deepspeed: bool = False

    @property
    def precision(self) -> str:
        """How the forward pass computes (see :func:`precision_mode`)."""
        return precision_mode(self.bf16, self.deepspeed)

    def numerics(self) -> dict:
        """What actually ran, for the run summary."""
        return {
            "precision": self.precision,
            "attention": self.attn_implementation,
            "padding": "packed (position_ids, no padding)" if self.padding_free else "padded (attention_mask)",
            "gradient_checkpointing": self.gradient_checkpointing,
            "deepspeed": self.deepspeed,
        }


PRECISION_MODES = {
    "fp32": "fp32 weights, fp32 compute",
    "bf16-autocast": "fp32 master weights, bf16 autocast (single device, DDP, FSDP)",
    "bf16": "bf16 weights, no autocast (DeepSpeed bf16; fp32 master copy inside its optimizer)",
}


def precision_mode(bf16: bool, deepspeed: bool) -> str:
    """The forward numerics of a training job: a key of :data:`PRECISION_MODES`.

    The DPO reference pass must use the same mode as the policy, or the step-0 loss is not
    ``log 2``: DeepSpeed converts the module to bf16 and runs without
    autocast, while accelerate's DDP/FSDP keep fp32 weights under bf16 autocast.
    """
    if not bf16:
        return "fp32"
    return "bf16" if deepspeed else "bf16-autocast"


def under_deepspeed() -> bool:
    """True inside a worker that ``accelerate launch`` started with a DeepSpeed config."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true")


def resolve_bf16(bf16: bool | str) -> bool:
    """A run's ``bf16`` setting on this machine: ``auto`` = CUDA with bf16 support."""
    if bf16 != "auto":
        return bool(bf16)
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_environment(cfg: RunConfig, world_size: int = 1, deepspeed: bool | None = None) -> Environment:
    """Turn the ``auto`` settings into concrete ones for this machine.

    ``deepspeed``: whether the training job runs under DeepSpeed (default: this process's
    accelerate environment); the reference pass passes the training job's value.
    """
    import torch

    cuda = torch.cuda.is_available()
    n_gpus = torch.cuda.device_count() if cuda else 0
    device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
    bf16 = resolve_bf16(cfg.bf16)
    attn = cfg.attn_implementation
    if attn == "auto":
        attn = "sdpa"
        if cuda:
            try:
                import flash_attn  # noqa: F401

                attn = "flash_attention_2"
            except ImportError:
                pass
    padding_free = cfg.padding_free
    if padding_free == "auto":
        # packed rows need an attention that reads sequence boundaries without an O(S^2) mask
        # (FlashAttention varlen, FlexAttention block masks); SDPA would get a dense block mask
        padding_free = attn.startswith(("flash", "flex"))
    gc = cfg.gradient_checkpointing
    if gc == "auto":
        gc = cuda
    ds = under_deepspeed() if deepspeed is None else bool(deepspeed)
    return Environment(device, n_gpus, world_size, bool(bf16), attn, bool(padding_free), bool(gc), ds)


def check_launch_precision(bf16: bool, run_name: str = "") -> None:
    """Refuse a worker that ``accelerate launch`` started with another mixed precision than the
    run's ``bf16`` (the shipped configs say ``mixed_precision: bf16``; ``redi train run`` and
    the workflow pass ``--mixed_precision`` from the run, a hand-written launch may not).

    Raises:
        ValueError: naming both settings and the fix. Under DeepSpeed the mismatch would crash
            later (``ds bf16.enabled=True vs hf bf16=False``); under DDP/FSDP it would train
            under bf16 autocast while the summary records fp32.
    """
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    wanted = "bf16" if bf16 else "no"
    if launched is None or launched == wanted:
        return
    raise ValueError(
        f"run {run_name!r}: bf16 is {bool(bf16)} on this machine but accelerate launch set mixed_precision "
        f"{launched!r} (its --mixed_precision or the config file's mixed_precision); launch with "
        f"--mixed_precision {wanted} (redi train run does), or set the run's bf16 to match"
    )


def check_reference_numerics(ref_logps_path: str, env: Environment) -> None:
    """Refuse cached reference log-probs computed in another precision mode than this run's.

    Raises:
        ValueError: naming both modes (the DPO loss would not start at ``log 2``).
    """
    import pyarrow.parquet as pq

    meta = json.loads((pq.read_schema(ref_logps_path).metadata or {}).get(b"redi", b"{}"))
    made = meta.get("precision")
    if made is None:
        log.warning(
            "%s records no precision mode; cannot check it matches this run's %r", ref_logps_path, env.precision
        )
    elif made != env.precision:
        raise ValueError(
            f"{ref_logps_path}: reference log-probs were computed in precision mode {made!r} but this "
            f"run trains in {env.precision!r} ({PRECISION_MODES[env.precision]}); the DPO loss would not "
            "start at log 2. Recompute them with the training job's accelerate config and bf16 setting."
        )


__all__ = [
    "PRECISION_MODES",
    "Environment",
    "check_launch_precision",
    "check_reference_numerics",
    "precision_mode",
    "resolve_bf16",
    "resolve_environment",
    "under_deepspeed",
]
