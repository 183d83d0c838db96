"""The log-prob head's logits keep fp32 from bf16 inputs: the summed log-probs of a long response
and the weight gradient come out closer to an fp64 reference than with logits rounded to bf16
(the earlier path, kept as the fallback "rounded" mode)."""

import pytest
import torch
import torch.nn.functional as F

from redi.train.logprobs import _mm_fp32, chunked_token_logprobs, fp32_output_mode


def _inputs(n=2048, vocab=16384, hidden=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a random-weight proxy of an LM head: logits of a few nats spread
    h = (torch.randn(n, hidden, generator=g) * 1.0).bfloat16()
    w = (torch.randn(vocab, hidden, generator=g) * 0.25).bfloat16()
    t = torch.randint(0, vocab, (n,), generator=g)
    return h, w, t


def _reference(h, w, t):
    """fp64 log-probs (and d sum / d W) of the same bf16 inputs."""
    h64, w64 = h.double().requires_grad_(False), w.double().requires_grad_(True)
    lp = torch.log_softmax(h64 @ w64.t(), -1).gather(-1, t[:, None]).squeeze(-1)
    lp.sum().backward()
    return lp.detach(), w64.grad


def _rounded(h, w, t):
    """The earlier head: bf16 GEMM output rounded to bf16, then an fp32 log-softmax."""
    w = w.clone().requires_grad_(True)
    lp = torch.log_softmax(F.linear(h, w).float(), -1).gather(-1, t[:, None]).squeeze(-1)
    lp.sum().backward()
    return lp.detach(), w.grad


def test_modes():
    assert fp32_output_mode("cpu", torch.float32) == "native"
    assert fp32_output_mode("cpu", torch.bfloat16) == "upcast"
    a, b = torch.randn(3, 5).bfloat16(), torch.randn(5, 4).bfloat16()
    exact = a.double() @ b.double()
    assert _mm_fp32(a, b, "upcast").dtype == torch.float32
    assert (_mm_fp32(a, b, "upcast").double() - exact).abs().max() < 1e-5
    acc = torch.ones(3, 4)
    _mm_fp32(a, b, "upcast", acc=acc)
    assert (acc.double() - 1 - exact).abs().max() < 1e-5


def test_fp32_logits_shrink_the_error_of_a_long_sum():
    h, w, t = _inputs()
    ref, ref_grad = _reference(h, w, t)
    old, old_grad = _rounded(h, w, t)
    wr = w.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the GPU's training mode, on the CPU
        new = chunked_token_logprobs(h, wr, t, chunk_size=256)
    new.sum().backward()
    err_old = abs(float(old.double().sum() - ref.sum()))
    err_new = abs(float(new.detach().double().sum() - ref.sum()))
    tok_old = float((old.double() - ref).abs().mean())
    tok_new = float((new.detach().double() - ref).abs().mean())
    # rounding 2048 logits rows to bf16 moves the sum by tenths of a nat; fp32 logits by ~1e-4
    assert err_old > 1e-2, err_old
    assert err_new < 0.05 * err_old, (err_new, err_old)
    assert tok_new < 0.05 * tok_old, (tok_new, tok_old)
    g_old = float((old_grad.double() - ref_grad).norm() / ref_grad.norm())
    g_new = float((wr.grad.double() - ref_grad).norm() / ref_grad.norm())
    assert g_new < g_old, (g_new, g_old)  # the gradient GEMMs still take bf16 inputs


@pytest.mark.parametrize("chunk", [1, 300, 4096])
def test_fp32_chunked_head_unchanged(chunk):
    """fp32 inputs ("native"): chunking, in-place fp32 weight-gradient accumulation = the naive head."""
    h, w, t = _inputs(n=600, vocab=1000, hidden=32)
    h, w = h.float(), w.float()
    w1, w2 = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    a = chunked_token_logprobs(h, w1, t, chunk_size=chunk)
    b = torch.log_softmax(F.linear(h, w2), -1).gather(-1, t[:, None]).squeeze(-1)
    a.sum().backward()
    b.sum().backward()
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(w1.grad, w2.grad, atol=1e-5)
