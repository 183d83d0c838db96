"""The objectives beyond the paper (REDI with its code's negative weighting, UFT, TOPR,
AdvDistill): each
loss and its gradient equal a float64 hand computation on hand-made log-probs; the registry
gives every objective a report family, validation takes names and keys from the registry, and
the per-token path through the trainer's batch function equals an independent float64 pass."""

import copy

import pytest
import torch

from helpers import pair_records, tiny_model, tiny_tokenizer
from redi.plan import ConfigError, run_name, stage2_runs
from redi.train import objectives
from redi.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = torch.float64


def _leaf(values):
    return torch.tensor(values, dtype=D, requires_grad=True)


# hand-made batch of 3 pairs: sums of response log-probs and response lengths
LW, NW = [-6.0, -2.5, -12.0], [10.0, 5.0, 8.0]
LL, NL = [-3.0, -9.0, -1.2], [6.0, 4.0, 3.0]


def _grads(loss, *leaves):
    return torch.autograd.grad(loss, leaves)


# ----------------------------------------------------------------------------------------------
# REDI with the paper code's negative weighting


@pytest.mark.parametrize("coef", [1.0, 0.5])
def test_redi_negw_loss_and_gradient_float64(coef):
    alpha, gamma, b = 0.8, 2.0, 3
    lw, ll = _leaf(LW), _leaf(LL)
    nw, nl = torch.tensor(NW, dtype=D), torch.tensor(NL, dtype=D)
    cfg = RunConfig.from_dict({"objective": "redi_negw", "alpha": alpha, "neg_weighting_gamma": gamma,
                               "chosen_coef": coef})
    got = objectives.compute(cfg, lw, nw, ll, nl)
    # by hand: the paper code's reinforce loss with use_neg_weighting (weight not detached)
    want = 0.0
    for i in range(b):
        x = LL[i] / NL[i]
        want += -coef * LW[i] / NW[i] + alpha * x * torch.exp(torch.tensor(gamma * x, dtype=D))
    want = want / b
    assert abs(float(got.loss.detach()) - float(want.detach())) < 1e-12
    g_w, g_l = _grads(got.loss, lw, ll)
    want_w = [-coef / NW[i] / b for i in range(b)]
    want_l = []
    for i in range(b):
        x = LL[i] / NL[i]
        # d/dll [alpha * x * exp(gamma x)] = alpha * exp(gamma x) * (1 + gamma x) / nl
        want_l.append(alpha * float(torch.exp(torch.tensor(gamma * x, dtype=D))) * (1 + gamma * x) / NL[i] / b)
    torch.testing.assert_close(g_w, torch.tensor(want_w, dtype=D), atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(g_l, torch.tensor(want_l, dtype=D), atol=1e-14, rtol=1e-12)
    # not detached: the gradient of pair 1 (x = -2.25 < -1/gamma) points the other way from REDI's
    assert g_l[1] < 0 < g_l[2] and abs(float(g_l[0])) < 1e-15  # pair 0 sits at x = -1/gamma


def test_redi_negw_term_bounded_at_minus_one_over_gamma():
    gamma = 4.0
    ll = _leaf([-0.25 * 5.0])  # per-token -0.25 = -1/gamma over 5 tokens
    out = objectives.redi_negw_loss(_leaf([-1.0]), torch.tensor([2.0], dtype=D), ll, torch.tensor([5.0], dtype=D),
                                    alpha=1.0, neg_weighting_gamma=gamma)
    (g,) = _grads(out.loss, ll)
    assert abs(float(g)) < 1e-15  # stationary at the floor


def test_redi_defaults_unchanged_by_the_options():
    """Off by default: REDI with no options is the paper's loss, and redi_negw is opt-in."""
    lw, ll = torch.tensor(LW, dtype=D), torch.tensor(LL, dtype=D)
    nw, nl = torch.tensor(NW, dtype=D), torch.tensor(NL, dtype=D)
    cfg = RunConfig.from_dict({"objective": "redi", "alpha": 0.8})
    assert cfg.chosen_coef == 1.0 and cfg.neg_weighting_gamma is None
    got = objectives.compute(cfg, lw, nw, ll, nl)
    assert abs(float(got.loss) - float((-lw / nw + 0.8 * ll / nl).mean())) < 1e-14
    assert RunConfig.from_dict({"objective": "redi_negw", "alpha": 0.8}).neg_weighting_gamma == 1.0


# ----------------------------------------------------------------------------------------------
# UFT: unlikelihood on the rejected tokens


def _token_batch():
    """Per-token log-probs of 2 chosen rows then 2 rejected rows, and each token's row."""
    chosen = [[-0.1, -2.0, -0.7], [-1.5, -0.2]]
    rejected = [[-0.05, -3.0, -0.4, -1e-9], [-2.0]]  # the last token has p ~ 1: the floor
    rows = chosen + rejected
    tok = _leaf([v for r in rows for v in r])
    seq = torch.tensor([i for i, r in enumerate(rows) for _ in r])
    return chosen, rejected, tok, seq


def _sums(tok, seq, n):
    return torch.zeros(n, dtype=D).index_add(0, seq, tok)


def test_uft_loss_and_gradient_float64():
    alpha = 0.3
    chosen, rejected, tok, seq = _token_batch()
    sums = _sums(tok, seq, 4)
    nw = torch.tensor([3.0, 2.0], dtype=D)
    nl = torch.tensor([4.0, 1.0], dtype=D)
    cfg = RunConfig.from_dict({"objective": "uft", "alpha": alpha})
    got = objectives.compute(cfg, sums[:2], nw, sums[2:], nl, token_logps=tok, seq_index=seq)
    floor = objectives.UNLIKELIHOOD_FLOOR
    want, grad = 0.0, []
    for row in chosen:
        grad += [-(1 - alpha) / len(row) / 2] * len(row)
    for row in rejected:
        one_minus = [max(1 - float(torch.exp(torch.tensor(v, dtype=D))), floor) for v in row]
        want += -alpha * sum(float(torch.log(torch.tensor(m, dtype=D))) for m in one_minus) / len(row)
        for v, m in zip(row, one_minus):
            p = float(torch.exp(torch.tensor(v, dtype=D)))
            # d/dv log(1 - e^v) = -p / (1 - p); zero where the floor holds
            grad.append(0.0 if m == floor else alpha * p / (1 - p) / len(row) / 2)
    want += sum(-(1 - alpha) * sum(r) / len(r) for r in chosen)
    want /= 2
    assert abs(float(got.loss.detach()) - want) < 1e-12, (float(got.loss.detach()), want)
    (g,) = _grads(got.loss, tok)
    torch.testing.assert_close(g, torch.tensor(grad, dtype=D), atol=1e-12, rtol=1e-10)
    assert torch.isfinite(got.loss)


def test_uft_needs_token_logps():
    cfg = RunConfig.from_dict({"objective": "uft", "alpha": 0.5})
    x = torch.zeros(2, dtype=D)
    with pytest.raises(ValueError, match="per-token log-probs"):
        objectives.compute(cfg, x, x + 1, x, x + 1)


# ----------------------------------------------------------------------------------------------
# TOPR: truncated importance weights on negatives


def test_topr_loss_and_gradient_float64():
    b = 3
    lw, ll = _leaf(LW), _leaf(LL)
    nw, nl = torch.tensor(NW, dtype=D), torch.tensor(NL, dtype=D)
    ref_w = torch.tensor([-5.0, -2.0, -11.0], dtype=D)
    ref_l = torch.tensor([-2.0, -9.5, -1.2], dtype=D)  # ratios e^-1, 1 (clipped from e^0.5), 1
    cfg = RunConfig.from_dict({"objective": "topr"})
    got = objectives.compute(cfg, lw, nw, ll, nl, ref_chosen_logps=ref_w, ref_rejected_logps=ref_l)
    ratio = [min(1.0, float(torch.exp(torch.tensor(LL[i] - float(ref_l[i]), dtype=D)))) for i in range(b)]
    assert ratio[1] == 1.0 and ratio[2] == 1.0 and ratio[0] < 1.0
    want = sum(-LW[i] / NW[i] + ratio[i] * LL[i] / NL[i] for i in range(b)) / b
    assert abs(float(got.loss.detach()) - want) < 1e-12
    g_w, g_l = _grads(got.loss, lw, ll)
    # the weight is detached: the rejected gradient is ratio / |y_l| / B, nothing more
    torch.testing.assert_close(g_w, torch.tensor([-1 / NW[i] / b for i in range(b)], dtype=D))
    torch.testing.assert_close(g_l, torch.tensor([ratio[i] / NL[i] / b for i in range(b)], dtype=D))


def test_topr_needs_the_reference_pass():
    assert objectives.needs_reference("topr")
    cfg = RunConfig.from_dict({"objective": "topr"})
    x = torch.zeros(2, dtype=D)
    with pytest.raises(ValueError, match="reference log-probs"):
        objectives.compute(cfg, x, x + 1, x, x + 1)


# ----------------------------------------------------------------------------------------------
# AdvDistill: group advantages over the pairs of each group


def test_advdistill_pairs_sum_to_the_group_loss_float64():
    # two groups of per-token log-likelihoods l_i = logp/|y| with verifier rewards
    groups = [([-0.3, -0.9], [-0.5, -1.2, -0.2]), ([-0.7], [-0.4])]
    traces = _leaf([v for pos, neg in groups for v in (*pos, *neg)])
    rewards, pairs, offset = [], [], 0
    for pos, neg in groups:
        rewards += [1.0] * len(pos) + [0.0] * len(neg)
        for a in range(len(pos)):
            for b in range(len(neg)):
                pairs.append((offset + a, offset + len(pos) + b, len(pos), len(neg)))
        offset += len(pos) + len(neg)
    ci = torch.tensor([p[0] for p in pairs])
    ri = torch.tensor([p[1] for p in pairs])
    ones = torch.ones(len(pairs), dtype=D)
    cfg = RunConfig.from_dict({"objective": "advdistill"})
    got = objectives.compute(cfg, traces[ci], ones, traces[ri], ones,
                             group_chosen=torch.tensor([float(p[2]) for p in pairs], dtype=D),
                             group_rejected=torch.tensor([float(p[3]) for p in pairs], dtype=D))
    # by hand: per group, A = (r - mean) / std (ddof 0); L_g = -(1/n) sum A_i l_i; mean over pairs
    want, grad, offset = 0.0, [], 0
    for pos, neg in groups:
        r = torch.tensor([1.0] * len(pos) + [0.0] * len(neg), dtype=D)
        adv = (r - r.mean()) / r.std(unbiased=False)
        ls = torch.tensor([*pos, *neg], dtype=D)
        want += float(-(adv * ls).sum() / len(r))
        grad += [float(-a / len(r) / len(pairs)) for a in adv]
    want /= len(pairs)
    assert abs(float(got.loss.detach()) - want) < 1e-12, (float(got.loss), want)
    (g,) = _grads(got.loss, traces)
    torch.testing.assert_close(g, torch.tensor(grad, dtype=D), atol=1e-14, rtol=1e-12)


def test_advdistill_needs_group_counts():
    cfg = RunConfig.from_dict({"objective": "advdistill"})
    x = torch.zeros(2, dtype=D)
    with pytest.raises(ValueError, match="needs \\['group_chosen', 'group_rejected'\\] from the data rows"):
        objectives.compute(cfg, x, x + 1, x, x + 1)
    from redi.plan import validate_config

    with pytest.raises(ConfigError, match="curation.pairs': objective 'advdistill'.*set curation.pairs to 'groups'"):
        validate_config(_config_with([{"objective": "advdistill"}]))
    config = _config_with([{"objective": "advdistill", "learning_rate": 1e-6}])
    config["curation"] = {"pairs": "groups"}
    assert list(stage2_runs(validate_config(config))) == ["advdistill-lr1e-6"]
    config["training"]["stage2"]["negatives"] = "both"
    with pytest.raises(ConfigError, match="training.stage2.negatives': objective 'advdistill'"):
        validate_config(config)


def test_row_values_reach_the_batch_and_missing_ones_name_the_row(tmp_path):
    from redi.train.batching import Collator, attach_row_values, tokenize_records

    tok = tiny_tokenizer()
    records = pair_records(3, 5, max_filler=4)
    for k, r in enumerate(records):
        r["group"] = {"chosen": k + 1, "rejected": 2}
    path = tmp_path / "pref.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in records))
    cfg = RunConfig.from_dict({"objective": "advdistill"})
    data = tokenize_records(records, tok, cfg)
    attach_row_values(data, path, objectives.get("advdistill").row_inputs, "advdistill")
    batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=False)(
        [{"index": i, "weight": 1.0} for i in (2, 0)])
    assert batch["group_chosen"].tolist() == [3.0, 1.0] and batch["group_rejected"].tolist() == [2.0, 2.0]
    del records[1]["group"]
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in records))
    with pytest.raises(ValueError, match=f"row {records[1]['id']!r} has no number at 'group.chosen'"):
        attach_row_values(data, path, objectives.get("advdistill").row_inputs, "advdistill")


# ----------------------------------------------------------------------------------------------
# the registry: families, defaults without paper entries, sweep grids, validation


def test_objective_without_families_gets_its_own():
    obj = objectives.Objective("orpo_like", "ORPO-like", "a test objective", objectives.redi_loss, params=("alpha",))
    assert [(f.key, f.label, f.objective) for f in obj.families] == [("orpo_like", "ORPO-like", "orpo_like")]
    assert obj.family({"objective": "orpo_like"}) == "orpo_like"


def test_registry_rejects_family_traps():
    fam = objectives.Family
    with pytest.raises(ValueError, match="several families but no family_of"):
        objectives.Objective("x", "X", "d", objectives.redi_loss, families=(fam("a", "A", "x"), fam("b", "B", "x")))
    with pytest.raises(ValueError, match="names objective"):
        objectives.Objective("x", "X", "d", objectives.redi_loss, families=(fam("a", "A", "y"),))
    with pytest.raises(ValueError, match="defined by both"):
        objectives._families({"x": objectives.Objective("x", "X", "d", objectives.redi_loss,
                                                        families=(fam("redi", "R", "x"),)),
                              **objectives.OBJECTIVES})
    bad = objectives.Objective("x", "X", "d", objectives.redi_loss, families=(fam("a", "A", "x"),),
                               family_of=lambda run: "zzz")
    with pytest.raises(ValueError, match="not one of its families"):
        bad.family({})


@pytest.mark.parametrize("name", objectives.names())
def test_every_objective_has_a_labelled_family_lr_and_sweep(name):
    obj = objectives.get(name)
    run = {"objective": name, **{p: 0.5 for p in obj.params}}
    assert objectives.FAMILIES[objectives.family(run)].label
    cfg = RunConfig.from_dict({"objective": name, **{p: 0.5 for p in obj.params}})
    assert 0 < cfg.learning_rate < 1 and cfg.epochs >= 1 and cfg.global_batch_size >= 1
    if obj.pairwise:
        assert obj.sweep.get("learning_rate"), f"{name}: no learning-rate grid"
        assert obj.sweep["learning_rate"][0] == obj.defaults["learning_rate"]


def _config_with(entries):
    from test_config import raw

    config = raw("config.yaml")
    config["training"]["stage2"]["runs"] = entries
    return config


def test_plan_takes_objectives_and_keys_from_the_registry():
    from redi.plan import validate_config

    config = validate_config(_config_with([
        {"objective": "redi_negw", "alpha": 0.8, "neg_weighting_gamma": [1.0, 2.0], "learning_rate": 1e-6},
        {"objective": "uft", "alpha": 0.5},
        {"objective": "topr", "learning_rate": 5e-7},
    ]))
    runs = stage2_runs(config)
    assert set(runs) == {"redi_negw-a0.8-ng1-lr1e-6", "redi_negw-a0.8-ng2-lr1e-6", "uft-a0.5", "topr-lr5e-7"}
    assert runs["redi_negw-a0.8-ng2-lr1e-6"]["neg_weighting_gamma"] == 2.0
    assert runs["uft-a0.5"]["learning_rate"] == objectives.get("uft").defaults["learning_rate"]
    assert run_name("topr", {"learning_rate": 5e-7}) == "topr-lr5e-7"
    with pytest.raises(ConfigError, match="runs.0.objective': 'orpo' is not a stage-2 objective; known: redi"):
        validate_config(_config_with([{"objective": "orpo", "alpha": 0.5}]))
    with pytest.raises(ConfigError, match=r"runs.0.alhpa': unknown key\(s\) \['alhpa'\]"):
        validate_config(_config_with([{"objective": "redi", "alpha": 0.5, "alhpa": 0.2}]))
    with pytest.raises(ConfigError, match="neg_weighting_gamma must be > 0"):
        validate_config(_config_with([{"objective": "redi_negw", "alpha": 0.5, "neg_weighting_gamma": -1.0}]))


# ----------------------------------------------------------------------------------------------
# through the trainer's batch function on a real (tiny) model


def test_uft_through_batch_objective_equals_float64_model_pass():
    from redi.train.batching import Collator, tokenize_records
    from redi.train.logprobs import response_logprobs
    from redi.train.trainer import batch_objective

    tok = tiny_tokenizer()
    model = tiny_model(tok, init_std=0.2)
    records = pair_records(3, 11, max_filler=12)
    cfg = RunConfig.from_dict({"objective": "uft", "alpha": 0.4})
    m64 = copy.deepcopy(model).double()

    def tokens(prompt, answer):
        p = tok.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)["input_ids"]
        full = tok.apply_chat_template(prompt + [answer], tokenize=True)["input_ids"][:-1]  # drop "\n"
        logp = torch.log_softmax(m64(input_ids=torch.tensor([full])).logits[0], -1)
        return torch.stack([logp[t - 1, full[t]] for t in range(len(p), len(full))])

    with torch.no_grad():
        want = 0.0
        for r in records:
            c, j = tokens(r["prompt"], r["chosen"][0]), tokens(r["prompt"], r["rejected"][0])
            want += -(0.6) * c.mean() - 0.4 * torch.log((1 - j.exp()).clamp(min=objectives.UNLIKELIHOOD_FLOOR)).mean()
        want /= len(records)
        data = tokenize_records(records, tok, cfg)
        batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=False)(
            [{"index": i, "weight": 1.0} for i in range(len(data))])
        lp = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                               attention_mask=batch["attention_mask"], chunk_size=8)
        got = batch_objective(cfg, lp, batch)
    assert abs(float(got.loss) - float(want)) < 1e-5, (float(got.loss), float(want))
