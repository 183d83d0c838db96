"""Per-token log-probabilities without the ``[tokens, vocab]`` logits of a whole sequence.

One response of 19k tokens with Qwen's 151,936-token vocabulary has 2.9e9 logits (11.6 GB in
fp32, several times that once log-softmax and its gradient exist). Training only needs
``log p(target)`` at the response positions, so:

1. the model body runs as usual and yields hidden states ``[positions, hidden]``;
2. only the positions whose *next* token is a response token are kept (prompt and padding are
   never projected onto the vocabulary);
3. :func:`chunked_token_logprobs` projects ``chunk_size`` positions at a time onto the vocabulary
   (``hidden_chunk @ lm_head.T``), takes ``logsumexp`` in fp32 and gathers the target's logit;
   only the per-position log-sum-exp is kept;
4. backward recomputes each chunk's logits and forms the gradient in place
   (``d logp_t / d logits = onehot(t) - softmax``), so one chunk's logits live at a time in
   either pass.

The head is inserted by patching the ``forward`` of the model's output-embedding module
(:func:`install_logprob_head`), so the model is still called through its (possibly
DDP/DeepSpeed/FSDP-wrapped) ``forward`` and parameter gathering hooks still fire; while a
request is active (:func:`response_logprobs`), the "logits" the model returns are the gathered
per-token log-probs ``[N]`` instead. The parameter names and the saved checkpoint are unchanged.
"""

from __future__ import annotations

import contextlib
import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _compute_dtype(device: torch.device, fallback: torch.dtype) -> torch.dtype:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return fallback


class _TargetLogprob(torch.autograd.Function):
    """``log_softmax(hidden @ weight.T + bias)[i, targets[i]]``, chunked over positions."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size, compute_dtype):
        n = hidden.shape[0]
        out = torch.empty(n, dtype=torch.float32, device=hidden.device)
        lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            b = None if bias is None else bias.to(compute_dtype)
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                logits = F.linear(hidden[s:e].to(compute_dtype), w, b).float()
                lse[s:e] = torch.logsumexp(logits, dim=-1)
                out[s:e] = logits.gather(-1, targets[s:e, None]).squeeze(-1) - lse[s:e]
                del logits
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk_size = chunk_size
        ctx.compute_dtype = compute_dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        chunk, cdt = ctx.chunk_size, ctx.compute_dtype
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        n = hidden.shape[0]
        grad_h = torch.empty_like(hidden) if need_h else None
        # Accumulate the weight gradient in fp32 across chunks (exact in fp32, stable in bf16).
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = (
            torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
            if (need_b and bias is not None)
            else None
        )
        grad_out = grad_out.float()
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(cdt)
            b = None if bias is None else bias.to(cdt)
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                h = hidden[s:e].to(cdt)
                g = grad_out[s:e, None]
                # softmax, in place over the recomputed logits; then -g * softmax + g * onehot
                gl = F.linear(h, w, b).float().sub_(lse[s:e, None]).exp_().mul_(-g)
                gl.scatter_add_(-1, targets[s:e, None], g)
                gl_c = gl.to(cdt)
                del gl
                if grad_h is not None:
                    grad_h[s:e] = (gl_c @ w).to(hidden.dtype)
                if grad_w is not None:
                    grad_w.add_((gl_c.t() @ h).float())
                if grad_b is not None:
                    grad_b.add_(gl_c.float().sum(0))
                del gl_c, h
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_b is not None:
            grad_b = grad_b.to(bias.dtype)
        return grad_h, grad_w, grad_b, None, None, None


def chunked_token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    bias: Tensor | None = None,
    chunk_size: int = 512,
) -> Tensor:
    """Log-prob of ``targets[i]`` under ``softmax(hidden[i] @ weight.T + bias)``; fp32 ``[N]``.

    ``hidden`` is ``[N, H]``, ``weight`` ``[V, H]``, ``targets`` ``[N]`` (int64). Peak extra
    memory is one ``[chunk_size, V]`` fp32 block. Under autocast the matmuls run in the autocast
    dtype (as ``nn.Linear`` would) and the softmax in fp32.
    """
    if chunk_size <= 0:
        return naive_token_logprobs(hidden, weight, targets, bias)
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.float32) + 0 * weight.sum()
    cdt = _compute_dtype(hidden.device, weight.dtype)
    return _TargetLogprob.apply(hidden, weight, bias, targets.long(), int(chunk_size), cdt)


def naive_token_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Reference: full ``[N, V]`` logits, fp32 log-softmax, gather. For tests and benchmarks."""
    logits = F.linear(hidden, weight, bias).float()
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.long()[:, None]).squeeze(-1)


# ----------------------------------------------------------------------------------------------
# Routing the model's own forward through the chunked head.


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module  # DDP / DeepSpeed engine
    return model


def install_logprob_head(model: nn.Module) -> nn.Module:
    """Patch the output embedding's ``forward`` (idempotent); returns the head module.

    Without an active request the head behaves exactly as before (full logits).
    """
    head = _unwrap(model).get_output_embeddings()
    if head is None:
        raise ValueError("model has no output embeddings (lm_head)")
    if getattr(head, "_redi_patched", False):
        return head
    # A bound method in the instance dict: ``copy.deepcopy`` rebinds it to the copy.
    head.forward = types.MethodType(_head_forward, head)
    head._redi_request = None
    head._redi_patched = True
    return head


def _head_forward(self, hidden_states: Tensor) -> Tensor:
    request = self._redi_request
    if request is None:
        return type(self).forward(self, hidden_states)
    positions, targets, chunk_size = request
    flat = hidden_states.reshape(-1, hidden_states.shape[-1]).index_select(0, positions)
    return chunked_token_logprobs(flat, self.weight, targets, self.bias, chunk_size)


@contextlib.contextmanager
def _request(head: nn.Module, positions: Tensor, targets: Tensor, chunk_size: int):
    head._redi_request = (positions, targets, chunk_size)
    try:
        yield
    finally:
        head._redi_request = None


def response_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    score_index: Tensor,
    targets: Tensor,
    *,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
    chunk_size: int = 512,
) -> Tensor:
    """Per-token log-probs ``[N]`` (fp32) of ``targets`` at flat positions ``score_index``.

    ``score_index`` indexes the flattened ``[batch * seq]`` positions of ``input_ids`` whose
    next token is ``targets`` (a response token). ``chunk_size=0`` computes the naive full
    logits through the unmodified head (reference path, for tests and benchmarks).
    """
    kwargs = {"input_ids": input_ids, "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if chunk_size <= 0:
        logits = model(**kwargs).logits
        flat = logits.reshape(-1, logits.shape[-1]).index_select(0, score_index).float()
        return torch.log_softmax(flat, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    head = install_logprob_head(model)
    with _request(head, score_index, targets, chunk_size):
        out = model(**kwargs)
    token_logps = out.logits
    if token_logps.dim() != 1 or token_logps.shape[0] != score_index.shape[0]:
        raise RuntimeError(
            "the model's forward changed the output head's result (shape "
            f"{tuple(token_logps.shape)}); this model class is not supported by the chunked head"
        )
    return token_logps


def batch_logprobs(model: nn.Module, batch: dict, chunk_size: int = 512) -> Tensor:
    """:func:`response_logprobs` of a batch made by :class:`redi.train.batching.Collator` (keys
    ``input_ids``, ``score_index``, ``targets`` and ``attention_mask`` (padded) or
    ``position_ids`` (packed)): per-token log-probs ``[N]``, fp32."""
    return response_logprobs(
        model,
        batch["input_ids"],
        batch["score_index"],
        batch["targets"],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch.get("position_ids"),
        chunk_size=chunk_size,
    )


def sequence_sums(token_logps: Tensor, seq_index: Tensor, n_seqs: int) -> Tensor:
    """Sum per-token values into their sequences: ``[N] -> [n_seqs]``."""
    return torch.zeros(n_seqs, dtype=token_logps.dtype, device=token_logps.device).index_add(
        0, seq_index, token_logps
    )
