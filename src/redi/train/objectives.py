"""The four training objectives, one small function each.

Inputs are per-sequence log-probabilities of the response tokens (sums, ``logp(y|x)``) and
response lengths ``|y|`` (response tokens, prompt excluded; the closing ``<|im_end|>`` counts).
Every function takes

* ``weights``: 1 for real examples, 0 for the zero-weight fillers that top up an epoch's last,
  short global batch (see ``schedule.py``); default all ones;
* ``denominator``: what the weighted sum is divided by. Default: this batch's own count, so a
  direct call returns the batch mean. The trainer passes the count over the whole optimizer step
  (all micro-batches and devices), so the step's gradient is that of one big batch whatever the
  micro-batching, gradient accumulation, packing or world size.

Reductions (decided here, used everywhere):

* ``sft``: token mean: ``-sum_i logp(y_i) / sum_i |y_i|`` over the global batch (every response
  token weighs the same; unit = token).
* pair objectives: mean over pairs of the per-pair loss (unit = pair).

Metrics are per example (detached): ``chosen_logp_per_token = logp(y_w)/|y_w|``, the same for
rejected, and ``margin = chosen_logp_per_token - rejected_logp_per_token`` (the same definition
for every pair objective, so runs compare on one scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ObjectiveResult:
    loss: Tensor  # scalar: sum_i w_i * per_example_i / denominator
    per_example: Tensor  # [B] unreduced loss contributions (sft: -logp sum per sequence)
    units: Tensor  # scalar: this batch's count of normalisation units (tokens or pairs), weighted
    chosen_logp_per_token: Tensor  # [B], detached
    rejected_logp_per_token: Tensor | None = None  # [B], detached
    margin: Tensor | None = None  # [B], detached


def _weights(weights: Tensor | None, like: Tensor) -> Tensor:
    return torch.ones_like(like) if weights is None else weights.to(like.dtype)


def _per_token(logps: Tensor, lengths: Tensor) -> Tensor:
    return logps / lengths.to(logps.dtype).clamp(min=1)


def _reduce(per_example: Tensor, w: Tensor, units: Tensor, denominator) -> Tensor:
    denom = units if denominator is None else denominator
    if not torch.is_tensor(denom):
        denom = torch.tensor(float(denom), dtype=per_example.dtype, device=per_example.device)
    return (w * per_example).sum() / denom.to(per_example.dtype).clamp(min=1e-12)


def sft_loss(
    logps: Tensor, lengths: Tensor, *, weights: Tensor | None = None, denominator=None
) -> ObjectiveResult:
    """Mean negative log-likelihood per response token: ``-sum logp / sum |y|``."""
    w = _weights(weights, logps)
    units = (w * lengths.to(logps.dtype)).sum()
    per_example = -logps
    pt = _per_token(logps, lengths).detach()
    return ObjectiveResult(_reduce(per_example, w, units, denominator), per_example, units, pt)


def redi_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    alpha: float,
    *,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """REDI: ``-logp(y_w)/|y_w| + alpha * logp(y_l)/|y_l|``, mean over pairs."""
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    per_example = -chosen_pt + alpha * rejected_pt
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    *,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """DPO (sigmoid): ``-log sigmoid(beta * ((lw - ref_w) - (ll - ref_l)))`` on sums of log-probs.

    Lengths are used only for the per-token metrics.
    """
    w = _weights(weights, chosen_logps)
    logits = (chosen_logps - ref_chosen_logps.to(chosen_logps.dtype)) - (
        rejected_logps - ref_rejected_logps.to(rejected_logps.dtype)
    )
    per_example = -F.logsigmoid(beta * logits)
    return _pair_result(
        per_example,
        w,
        denominator,
        _per_token(chosen_logps, chosen_lengths),
        _per_token(rejected_logps, rejected_lengths),
    )


def simpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    beta: float,
    gamma: float,
    *,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """SimPO: ``-log sigmoid(beta * (lw/|y_w| - ll/|y_l|) - gamma)``; no reference model."""
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    per_example = -F.logsigmoid(beta * (chosen_pt - rejected_pt) - gamma)
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def _pair_result(per_example, w, denominator, chosen_pt, rejected_pt) -> ObjectiveResult:
    units = w.sum()
    chosen_pt, rejected_pt = chosen_pt.detach(), rejected_pt.detach()
    return ObjectiveResult(
        loss=_reduce(per_example, w, units, denominator),
        per_example=per_example,
        units=units,
        chosen_logp_per_token=chosen_pt,
        rejected_logp_per_token=rejected_pt,
        margin=chosen_pt - rejected_pt,
    )


def compute(
    cfg,
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    *,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """Dispatch on ``cfg.objective`` (a :class:`redi.train.config.RunConfig`)."""
    kw = {"weights": weights, "denominator": denominator}
    if cfg.objective == "sft":
        return sft_loss(chosen_logps, chosen_lengths, **kw)
    if rejected_logps is None or rejected_lengths is None:
        raise ValueError(f"objective {cfg.objective!r} needs rejected responses")
    if cfg.objective == "redi":
        return redi_loss(
            chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, cfg.alpha, **kw
        )
    if cfg.objective == "dpo":
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError("objective 'dpo' needs reference log-probs (ref_logps_path)")
        return dpo_loss(
            chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, cfg.beta,
            chosen_lengths, rejected_lengths, **kw,
        )
    if cfg.objective == "simpo":
        return simpo_loss(
            chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, cfg.beta, cfg.gamma,
            **kw,
        )
    raise ValueError(f"unknown objective {cfg.objective!r}")
