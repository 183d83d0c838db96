"""Chunked log-probs equal the naive full-logits computation (values and gradients), through a
real model too, and padded vs padding-free (packed) batches give the same loss and gradients."""

import pytest
import torch

from helpers import pair_records, tiny_model, tiny_tokenizer
from redi.train.batching import Collator, TokenizedData, tokenize_records
from redi.train.config import RunConfig
from redi.train.logprobs import chunked_token_logprobs, naive_token_logprobs, response_logprobs
from redi.train.trainer import batch_objective


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n, chunk", [(37, 8), (16, 16), (5, 512), (64, 7)])
def test_chunked_equals_naive_values_and_grads(n, chunk, bias):
    g = torch.Generator().manual_seed(n * 31 + chunk)
    h_dim, vocab = 24, 301
    hidden = torch.randn(n, h_dim, generator=g, requires_grad=True)
    weight = (0.5 * torch.randn(vocab, h_dim, generator=g)).requires_grad_()
    b = (0.1 * torch.randn(vocab, generator=g)).requires_grad_() if bias else None
    targets = torch.randint(0, vocab, (n,), generator=g)
    upstream = torch.randn(n, generator=g)  # arbitrary dL/dlogp, incl. negative weights

    got = chunked_token_logprobs(hidden, weight, targets, b, chunk_size=chunk)
    want = naive_token_logprobs(hidden, weight, targets, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    params = [hidden, weight] + ([b] if bias else [])
    g_got = torch.autograd.grad((got * upstream).sum(), params)
    g_want = torch.autograd.grad((want * upstream).sum(), params)
    for a, e in zip(g_got, g_want):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=0)


def test_chunked_matches_float64_reference():
    """Not only equal to the naive fp32 path: equal to the exact log-softmax (fp64)."""
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(50, 16, generator=g), torch.randn(500, 16, generator=g)
    targets = torch.randint(0, 500, (50,), generator=g)
    exact = torch.log_softmax(hidden.double() @ weight.double().T, -1).gather(-1, targets[:, None])[:, 0]
    got = chunked_token_logprobs(hidden, weight, targets, chunk_size=9)
    torch.testing.assert_close(got.double(), exact, atol=1e-5, rtol=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _pairs(n=5, seed=1):
    return pair_records(n, seed, max_filler=25)


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_model_chunked_equals_naive(tok):
    cfg = RunConfig.from_dict({"objective": "redi"})
    data = tokenize_records(_pairs(), tok, cfg)
    batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=False)(
        [{"index": i, "weight": 1.0} for i in range(len(data))]
    )
    model = tiny_model(tok, init_std=0.2, tie_word_embeddings=True)
    out = {}
    for chunk in (0, 4):  # 0 = naive full logits through the unpatched head
        model.zero_grad()
        lp = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                               attention_mask=batch["attention_mask"], chunk_size=chunk)
        loss = batch_objective(cfg, lp, batch).loss
        loss.backward()
        out[chunk] = (lp.detach(), loss.detach(), _grads(model))
    torch.testing.assert_close(out[4][0], out[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[4][1], out[0][1], atol=1e-5, rtol=0)
    for a, e in zip(out[4][2], out[0][2]):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=0)


@pytest.mark.parametrize("objective", ["sft", "redi"])
def test_padded_and_packed_give_the_same_loss(tok, objective):
    """Padding-free packing (position_ids, no mask) vs right padding (attention_mask), sdpa on
    CPU: transformers builds a block-diagonal causal mask from packed position_ids."""
    cfg = RunConfig.from_dict({"objective": objective})
    records = _pairs(6)
    if objective == "sft":
        records = [{"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in records]
    data = tokenize_records(records, tok, cfg)
    assert len(set(map(len, data.chosen))) > 1  # unequal lengths: padding really happens
    items = [{"index": i, "weight": 1.0} for i in range(len(data))]
    model = tiny_model(tok, init_std=0.2, attn_implementation="sdpa")
    res = {}
    for packed in (False, True):
        batch = Collator(data, tok.pad_token_id, padding_free=packed, sft_units=objective == "sft")(items)
        assert ("position_ids" in batch) == packed and batch["input_ids"].shape[0] == (
            1 if packed else len(batch["lengths"])
        )
        model.zero_grad()
        lp = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                               attention_mask=batch.get("attention_mask"),
                               position_ids=batch.get("position_ids"), chunk_size=16)
        loss = batch_objective(cfg, lp, batch).loss
        loss.backward()
        res[packed] = (loss.detach(), _grads(model))
    torch.testing.assert_close(res[True][0], res[False][0], atol=1e-5, rtol=0)
    for a, e in zip(res[True][1], res[False][1]):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_packing_layout(tok):
    """Packed positions restart per sequence and the scored targets are the response tokens."""
    cfg = RunConfig.from_dict({"objective": "redi"})
    data = tokenize_records(_pairs(2), tok, cfg)
    batch = Collator(data, tok.pad_token_id, padding_free=True, sft_units=False)(
        [{"index": 0, "weight": 1.0}, {"index": 1, "weight": 1.0}]
    )
    rows = [(data.prompts[0], data.chosen[0]), (data.prompts[1], data.chosen[1]),
            (data.prompts[0], data.rejected[0]), (data.prompts[1], data.rejected[1])]
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert len(starts) == 4
    ids = batch["input_ids"][0]
    for (p, r), s, k in zip(rows, starts, range(4)):
        assert ids[s : s + len(p)].tolist() == p.tolist()
        sel = batch["seq_index"] == k
        assert batch["targets"][sel].tolist() == r.tolist()
        assert (batch["score_index"][sel] + 1).tolist() == list(range(s + len(p), s + len(p) + len(r)))
    assert batch["lengths"].tolist() == [len(r) for _, r in rows]
    assert isinstance(data, TokenizedData)


def test_chunked_under_bf16_autocast_matches_linear_head():
    """Under autocast the chunked head does what nn.Linear + fp32 log-softmax would: bf16 matmul,
    fp32 softmax; gradients come back in the parameters' dtype."""
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(40, 32, generator=g, requires_grad=True)
    weight = (0.3 * torch.randn(200, 32, generator=g)).requires_grad_()
    targets = torch.randint(0, 200, (40,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = chunked_token_logprobs(hidden, weight, targets, chunk_size=16)
        logits = torch.nn.functional.linear(hidden, weight)
    assert logits.dtype == torch.bfloat16 and got.dtype == torch.float32
    want = torch.log_softmax(logits.float(), -1).gather(-1, targets[:, None])[:, 0]
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)
    gh, gw = torch.autograd.grad(got.sum(), [hidden, weight])
    eh, ew = torch.autograd.grad(want.sum(), [hidden, weight])
    assert gh.dtype == gw.dtype == torch.float32
    torch.testing.assert_close(gh, eh, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(gw, ew, atol=5e-2, rtol=5e-2)
