"""Each objective on a tiny random Qwen2 model equals an independent float64 computation, REDI
with alpha=0 is SFT on the chosen responses, DPO and SimPO equal TRL's implementations, and the
step normalisation makes micro-batching irrelevant."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from helpers import pair_records, tiny_model, tiny_tokenizer
from redi.train import objectives
from redi.train.batching import Collator, tokenize_records
from redi.train.config import RunConfig
from redi.train.logprobs import response_logprobs
from redi.train.trainer import batch_objective

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok, init_std=0.2)


def _records(n=4, seed=7):
    return pair_records(n, seed, max_filler=20)


def _reference_logps(model, tok, prompt_msgs, answer_msg):
    """Independent float64 path: template -> ids, one unpadded forward, log_softmax, sum over the
    response tokens (the template's trailing newline after <|im_end|> excluded)."""
    m64 = copy.deepcopy(model).double()
    prompt = tok.apply_chat_template(prompt_msgs, tokenize=True, add_generation_prompt=True)["input_ids"]
    full = tok.apply_chat_template(prompt_msgs + [answer_msg], tokenize=True)["input_ids"]
    assert full[: len(prompt)] == prompt
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(full[-1:]) == "\n" and full[-2] == im_end
    full = full[:-1]
    ids = torch.tensor([full])
    logits = m64(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    resp = range(len(prompt), len(full))
    total = sum(logp[t - 1, full[t]] for t in resp)
    return total, len(resp)


def _ours(model, tok, cfg, records, ref=None):
    data = tokenize_records(records, tok, cfg)
    if ref is not None:
        data.ref_chosen, data.ref_rejected = ref
    batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=cfg.objective == "sft")(
        [{"index": i, "weight": 1.0} for i in range(len(data))]
    )
    lp = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                           attention_mask=batch["attention_mask"], chunk_size=8)
    return batch_objective(cfg, lp, batch)


@pytest.mark.parametrize("objective", ["sft", "redi", "dpo", "simpo"])
def test_loss_equals_float64_reference(tok, model, objective):
    records = _records()
    cfg = RunConfig.from_dict({"objective": objective, "alpha": 0.6, "beta": 0.5, "gamma": 0.3})
    with torch.no_grad():
        c = [_reference_logps(model, tok, r["prompt"], r["chosen"][0]) for r in records]
        r_ = [_reference_logps(model, tok, r["prompt"], r["rejected"][0]) for r in records]
    lw = torch.stack([x for x, _ in c])
    nw = torch.tensor([n for _, n in c], dtype=torch.float64)
    ll = torch.stack([x for x, _ in r_])
    nl = torch.tensor([n for _, n in r_], dtype=torch.float64)
    ref = None
    if objective == "sft":
        recs = [{"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in records]
        want = -lw.sum() / nw.sum()  # token mean over the batch
    elif objective == "redi":
        recs = records
        want = (-lw / nw + 0.6 * ll / nl).mean()
    elif objective == "dpo":
        recs = records
        ref_w, ref_l = lw.numpy() + [0.3, -1.0, 2.0, 0.1], ll.numpy() + [1.0, 0.5, -2.0, 0.0]
        ref = (ref_w, ref_l)
        want = -F.logsigmoid(0.5 * ((lw - torch.tensor(ref_w)) - (ll - torch.tensor(ref_l)))).mean()
    else:
        recs = records
        want = -F.logsigmoid(0.5 * (lw / nw - ll / nl) - 0.3).mean()
    with torch.no_grad():
        got = _ours(model, tok, cfg, recs, ref)
    assert abs(float(got.loss) - float(want)) < 1e-5, (float(got.loss), float(want))
    torch.testing.assert_close(got.chosen_logp_per_token, (lw / nw), atol=1e-5, rtol=0)


def _grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_redi_alpha0_is_sft_on_chosen(tok, model):
    records = _records(3)
    redi0 = RunConfig.from_dict({"objective": "redi", "alpha": 0.0})
    sft = RunConfig.from_dict({"objective": "sft"})
    one = records[:1]
    g_redi = _grad(model, _ours(model, tok, redi0, one).loss)
    g_sft = _grad(model, _ours(model, tok, sft, [{"id": "a", "messages": one[0]["prompt"] + one[0]["chosen"]}]).loss)
    torch.testing.assert_close(g_redi, g_sft, atol=1e-6, rtol=1e-5)
    # and the rejected responses have no influence at all when alpha = 0
    swapped = [dict(r, rejected=records[(i + 1) % 3]["rejected"]) for i, r in enumerate(records)]
    torch.testing.assert_close(
        _grad(model, _ours(model, tok, redi0, records).loss),
        _grad(model, _ours(model, tok, redi0, swapped).loss), atol=0, rtol=0,
    )
    # while with alpha > 0 they do
    redi = RunConfig.from_dict({"objective": "redi", "alpha": 0.8})
    assert not torch.allclose(_grad(model, _ours(model, tok, redi, records).loss),
                              _grad(model, _ours(model, tok, redi, swapped).loss))


def test_micro_batches_with_step_denominator_equal_one_batch(tok, model):
    """Sum of micro-batch losses normalised by the step's unit count == the whole-batch loss,
    for the token-mean (sft) and the pair-mean (redi) reductions; fillers (weight 0) are inert."""
    records = _records(4)
    for objective in ("sft", "redi"):
        cfg = RunConfig.from_dict({"objective": objective})
        recs = records if objective == "redi" else [
            {"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in records]
        data = tokenize_records(recs, tok, cfg)
        collate = Collator(data, tok.pad_token_id, padding_free=False, sft_units=objective == "sft")

        def loss_of(items, denominator=None, collate=collate, cfg=cfg):
            b = collate(items)
            lp = response_logprobs(model, b["input_ids"], b["score_index"], b["targets"],
                                   attention_mask=b["attention_mask"], chunk_size=8)
            return batch_objective(cfg, lp, b, denominator=denominator), b

        whole, _ = loss_of([{"index": i, "weight": 1.0} for i in range(4)])
        g_whole = _grad(model, whole.loss)
        micro = [[(0, 1.0), (3, 1.0)], [(1, 1.0), (2, 0.0)], [(2, 1.0), (1, 0.0)]]  # with fillers
        units = sum(float(collate([{"index": i, "weight": w} for i, w in m])["units"]) for m in micro)
        model.zero_grad()
        total = 0.0
        for m in micro:
            res, _ = loss_of([{"index": i, "weight": w} for i, w in m], denominator=torch.tensor(units))
            res.loss.backward()
            total += float(res.loss.detach())
        g_micro = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert abs(total - float(whole.loss.detach())) < 1e-6
        torch.testing.assert_close(g_micro, g_whole, atol=1e-6, rtol=1e-5)


# ---- TRL parity -------------------------------------------------------------------------------


class _Acc:
    device = torch.device("cpu")

    def gather_for_metrics(self, x):
        return x.reshape(-1) if torch.is_tensor(x) else x

    gather = gather_for_metrics


def test_dpo_equals_trl():
    from collections import defaultdict

    from trl import DPOTrainer

    g = torch.Generator().manual_seed(0)
    b, beta = 5, 0.1
    lw, ll = (
        -50 * torch.rand(b, generator=g, dtype=torch.float64),
        -50 * torch.rand(b, generator=g, dtype=torch.float64),
    )
    rw, rl = (
        lw + torch.randn(b, generator=g, dtype=torch.float64),
        ll + torch.randn(b, generator=g, dtype=torch.float64),
    )
    n = torch.full((b,), 10.0, dtype=torch.float64)
    ours = objectives.dpo_loss(lw, n, ll, n, ref_chosen_logps=rw, ref_rejected_logps=rl, beta=beta).loss

    seq = 6  # TRL sums per-token log-probs: put each sequence's sum on its first token
    log_probs = torch.zeros(2 * b, seq - 1, dtype=torch.float64)
    log_probs[:, 0] = torch.cat([lw, ll])
    outputs = SimpleNamespace(
        log_probs=log_probs, entropy=torch.zeros_like(log_probs),
        mean_logits=torch.zeros_like(log_probs), is_top1=torch.zeros_like(log_probs, dtype=torch.bool),
    )
    fake_self = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_Acc(), aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
        loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    inputs = {
        "input_ids": torch.ones(2 * b, seq, dtype=torch.long),
        "attention_mask": torch.ones(2 * b, seq, dtype=torch.long),
        "completion_mask": torch.ones(2 * b, seq, dtype=torch.long),
        "ref_chosen_logps": rw, "ref_rejected_logps": rl,
    }
    trl_loss = DPOTrainer._compute_loss(fake_self, lambda **kw: outputs, inputs, return_outputs=False)
    assert abs(float(ours) - float(trl_loss)) < 1e-10
    # the per-step diagnostics: TRL's rewards/margins is beta x our reward_margin (nats), and
    # rewards/accuracies the share of positive ones
    result = objectives.compute(SimpleNamespace(objective="dpo", beta=beta), lw, n, ll, n, rw, rl)
    trl_metrics = fake_self._metrics["train"]
    assert float(beta * result.reward_margin.mean()) == pytest.approx(trl_metrics["rewards/margins"][-1], abs=1e-6)
    assert float((result.reward_margin > 0).double().mean()) == pytest.approx(trl_metrics["rewards/accuracies"][-1])
    assert 0 < float((result.reward_margin > 0).double().mean()) < 1  # the case tells both signs apart
    simpo = SimpleNamespace(objective="simpo", beta=2.0, gamma=0.5)
    assert objectives.compute(simpo, lw, n, ll, n).reward_margin is None
    assert math.isclose(
        float(objectives.dpo_loss(lw, n, ll, n, ref_chosen_logps=lw, ref_rejected_logps=ll, beta=beta).loss),
        math.log(2),
    )


def test_simpo_equals_trl_cpo_simpo():
    from trl.experimental.cpo import CPOTrainer

    g = torch.Generator().manual_seed(1)
    b, vocab, seq, beta, gamma = 4, 11, 9, 2.0, 1.0
    logits = torch.randn(2 * b, seq, vocab, generator=g, dtype=torch.float64)
    labels = torch.randint(0, vocab, (2 * b, seq), generator=g)
    labels[:, :3] = -100  # prompt
    labels[1, 7:] = -100  # shorter responses
    labels[6, 5:] = -100
    # TRL: per-token average log-probs (average_log_prob=True for simpo), then cpo_loss
    avg = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
    fake_self = SimpleNamespace(alpha=0.0, beta=beta, simpo_gamma=gamma, loss_type="simpo",
                                label_smoothing=0.0, accelerator=_Acc())
    trl_losses, _, _ = CPOTrainer.cpo_loss(fake_self, avg[:b], avg[b:])
    # ours: sums and lengths over the same response tokens
    shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
    mask = shifted_labels != -100
    tok_lp = torch.log_softmax(shifted_logits, -1).gather(-1, shifted_labels.clamp(min=0)[..., None])[..., 0]
    sums, lens = (tok_lp * mask).sum(-1), mask.sum(-1).double()
    ours = objectives.simpo_loss(sums[:b], lens[:b], sums[b:], lens[b:], beta=beta, gamma=gamma)
    torch.testing.assert_close(ours.per_example, trl_losses, atol=1e-10, rtol=0)
    assert abs(float(ours.loss) - float(trl_losses.mean())) < 1e-10


# ---- the registry -----------------------------------------------------------------------------


def test_registry_drives_compute_and_checks_its_inputs():
    """compute() calls each objective's own loss with its own parameters; missing inputs name
    what is missing (a registry entry that lies about pairwise / reference fails here)."""
    g = torch.Generator().manual_seed(3)
    lw, ll = (
        -20 * torch.rand(3, generator=g, dtype=torch.float64),
        -20 * torch.rand(3, generator=g, dtype=torch.float64),
    )
    nw, nl = torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64), torch.tensor([3.0, 7.0, 2.0], dtype=torch.float64)
    rw, rl = lw + 0.5, ll - 0.25
    for name, entry in objectives.OBJECTIVES.items():
        if entry.token_sums or entry.row_inputs:  # per-token or per-row inputs: tests/test_objectives_arena.py
            continue
        cfg = RunConfig.from_dict({"objective": name, "alpha": 0.3, "beta": 0.7, "gamma": 0.2})
        params = {p: getattr(cfg, p) for p in entry.params}
        args = (lw, nw, ll, nl) if entry.pairwise else (lw, nw)
        refs = {"ref_chosen_logps": rw, "ref_rejected_logps": rl} if entry.needs_reference else {}
        want = entry.loss(*args, **refs, **params).loss
        got = objectives.compute(cfg, lw, nw, ll, nl, rw, rl).loss
        assert float(got) == float(want), name
        if entry.pairwise:
            with pytest.raises(ValueError, match="needs rejected responses"):
                objectives.compute(cfg, lw, nw)
        if entry.needs_reference:
            with pytest.raises(ValueError, match="needs reference log-probs"):
                objectives.compute(cfg, lw, nw, ll, nl)
    with pytest.raises(ValueError, match="unknown objective 'orpo'; known: sft, redi, dpo, simpo"):
        objectives.get("orpo")


def test_registry_labels_families_and_defaults():
    from redi import paper

    assert objectives.run_label({"objective": "redi", "alpha": 0.8, "learning_rate": 1e-6}) == "REDI α=0.8, LR 1e-6"
    assert objectives.run_label({"objective": "simpo", "beta": 2.0, "gamma": 1.0, "learning_rate": 5e-7}) == (
        "SimPO β=2, γ=1, LR 5e-7")
    assert objectives.run_label({"objective": "dpo", "beta": 0.001}) == "DPO β=0.001"
    assert objectives.run_label({"objective": "sft", "learning_rate": 5e-5}) == "SFT, LR 5e-5"
    fams = [objectives.family({"objective": "redi", "alpha": a}) for a in (0.0, 0.5, 1.0)]
    assert fams == ["control", "redi", "symmetric"]
    assert objectives.family({"objective": "dpo", "beta": 0.1}) == "dpo"
    assert list(objectives.FAMILIES)[:6] == ["sft", "control", "redi", "symmetric", "dpo", "simpo"]
    assert [objectives.PARAMETERS[p].symbol for p in ("alpha", "beta", "gamma")] == ["α", "β", "γ"]
    for name, entry in objectives.OBJECTIVES.items():  # RunConfig's defaults are the paper's
        if name not in paper.LEARNING_RATE:  # objectives the paper did not run: their own
            continue
        cfg = RunConfig.from_dict({"objective": name})
        assert cfg.learning_rate == paper.LEARNING_RATE[name] and cfg.epochs == paper.EPOCHS[name]
        assert cfg.global_batch_size == paper.GLOBAL_BATCH_SIZE[name]
        assert cfg.beta == paper.BETA.get(name) and cfg.is_pairwise == entry.pairwise
    with pytest.raises(ValueError, match="beta must be > 0, got -1"):
        RunConfig.from_dict({"objective": "simpo", "beta": -1})
