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
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _compute_dtype(device: torch.device, fallback: torch.dtype) -> torch.dtype:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return fallback


# ----------------------------------------------------------------------------------------------
# fp32 results from low-precision GEMM inputs
#
# A bf16 GEMM accumulates in fp32 and, by default, rounds its result to bf16. The log-softmax
# needs the logits themselves: rounded to bf16 (8 bits of mantissa, ~0.4 % relative) each
# token's log-prob is off by up to ~|logit| / 256, and over a 19k-token response sum these errors
# do not average away (the summed log-probs are what DPO/REDI compare). So the head asks the GEMM
# for an fp32 *output* from bf16 inputs: the same tensor-core work, no rounding of the result.
#
# Modes (:func:`fp32_output_mode`), per device and input dtype:
#   "native"   inputs already fp32: an ordinary fp32 GEMM;
#   "out_dtype" CUDA with ``torch.mm(a, b, out_dtype=torch.float32)`` (the ``aten::mm.dtype``
#              overload, CUDA-only in torch 2.13; probed once per device): fp32 output, and the
#              weight gradient accumulates straight into its fp32 buffer (``addmm``, beta = 1);
#   "upcast"   CPU (no ``mm.dtype`` kernel there): the bf16 inputs are widened to fp32 first;
#              bf16 x bf16 products are exact in fp32, so the result is the fp32-output GEMM's
#              (up to summation order), at fp32 GEMM cost;
#   "rounded"  any other device without the overload: the bf16 result widened to fp32 (the
#              earlier behaviour, kept as the fallback).

_OUT_DTYPE_OK: dict[str, tuple[bool, bool]] = {}  # device:dtype -> (mm.dtype works, addmm into fp32 works)


def _probe_out_dtype(device: torch.device, dtype: torch.dtype) -> tuple[bool, bool]:
    key = f"{device}:{dtype}"
    if key not in _OUT_DTYPE_OK:
        a = torch.ones(2, 2, dtype=dtype, device=device)
        try:
            mm_ok = torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
        except (RuntimeError, TypeError, NotImplementedError):
            mm_ok = False
        try:
            acc = torch.ones(2, 2, dtype=torch.float32, device=device)
            torch.addmm(acc, a, a, out_dtype=torch.float32, out=acc)
            add_ok = mm_ok and float(acc.sum()) == 12.0
        except (RuntimeError, TypeError, NotImplementedError):
            add_ok = False
        _OUT_DTYPE_OK[key] = (bool(mm_ok), bool(add_ok))
    return _OUT_DTYPE_OK[key]


def fp32_output_mode(device: torch.device | str, dtype: torch.dtype) -> str:
    """How the head gets fp32 logits from ``dtype`` inputs on ``device``: ``"native"``,
    ``"out_dtype"``, ``"upcast"`` or ``"rounded"`` (see the comment above this function)."""
    device = torch.device(device)
    if dtype == torch.float32 or dtype == torch.float64:
        return "native"
    if device.type == "cuda" and _probe_out_dtype(device, dtype)[0]:
        return "out_dtype"
    if device.type == "cpu":
        return "upcast"
    return "rounded"


def _mm_fp32(a: Tensor, b: Tensor, mode: str, acc: Tensor | None = None) -> Tensor:
    """``a @ b`` as fp32 (added into the fp32 ``acc`` in place when given; returns ``acc``)."""
    if mode == "out_dtype":
        try:
            if acc is None:
                return torch.mm(a, b, out_dtype=torch.float32)
            if _probe_out_dtype(a.device, a.dtype)[1]:  # beta = 1: the GEMM adds into acc
                return torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
            return acc.add_(torch.mm(a, b, out_dtype=torch.float32))
        except RuntimeError as exc:  # a shape or layout the probe did not cover: the fallback from now on
            warnings.warn(f"fp32-output GEMM refused ({exc}); logits rounded to {a.dtype} from here on", stacklevel=2)
            _OUT_DTYPE_OK[f"{a.device}:{a.dtype}"] = (False, False)
            mode = "rounded"
    if mode == "upcast":
        a, b = a.float(), b.float()
    if mode in ("native", "upcast"):
        if acc is None:
            return torch.mm(a, b) if a.dtype == torch.float32 else torch.mm(a, b).float()
        return acc.addmm_(a, b) if a.dtype == acc.dtype else acc.add_(torch.mm(a, b))
    out = torch.mm(a, b).float()  # "rounded"
    return out if acc is None else acc.add_(out)


def _logits_fp32(h: Tensor, w: Tensor, b: Tensor | None, mode: str) -> Tensor:
    logits = _mm_fp32(h, w.t(), mode)
    return logits if b is None else logits.add_(b.float())


class _TargetLogprob(torch.autograd.Function):
    """``log_softmax(hidden @ weight.T + bias)[i, targets[i]]``, chunked over positions; the
    logits are formed in fp32 from compute-dtype inputs (:func:`fp32_output_mode`)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size, compute_dtype):
        n = hidden.shape[0]
        out = torch.empty(n, dtype=torch.float32, device=hidden.device)
        lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
        mode = fp32_output_mode(hidden.device, compute_dtype)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            b = None if bias is None else bias.to(compute_dtype)
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                logits = _logits_fp32(hidden[s:e].to(compute_dtype), w, b, mode)
                lse[s:e] = torch.logsumexp(logits, dim=-1)
                out[s:e] = logits.gather(-1, targets[s:e, None]).squeeze(-1) - lse[s:e]
                del logits
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk_size = chunk_size
        ctx.compute_dtype = compute_dtype
        ctx.mode = mode
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        chunk, cdt, mode = ctx.chunk_size, ctx.compute_dtype, ctx.mode
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        n = hidden.shape[0]
        grad_h = torch.empty_like(hidden) if need_h else None
        # The weight gradient accumulates in fp32 across chunks, straight into its buffer where
        # the GEMM can write fp32 (no [V, H] product and fp32 copy of it per chunk).
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
                gl = _logits_fp32(h, w, b, mode).sub_(lse[s:e, None]).exp_().mul_(-g)
                gl.scatter_add_(-1, targets[s:e, None], g)
                gl_c = gl.to(cdt)
                del gl
                if grad_h is not None:
                    grad_h[s:e] = (gl_c @ w).to(hidden.dtype)
                if grad_w is not None:
                    _mm_fp32(gl_c.t(), h, mode, acc=grad_w)
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
    memory is one ``[chunk_size, V]`` fp32 block. Under autocast the matmuls take inputs in the
    autocast dtype (as ``nn.Linear`` would) and give fp32 logits where the device can
    (:func:`fp32_output_mode`); the softmax is fp32.
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
