"""Issue 15: the collapse verdict uses the evaluation curve and the smoothed chosen log-prob.

tests/fixtures/collapse/runs.json holds metrics.jsonl records (the trainer's exact keys) and the
held-out curve of the default config's stage-2 runs as a review of the default run described them (made by
make_fixture.py): symmetric REDI fell 22.4 % -> 7.4 % while chosen per-token log-prob drifted
-0.06 -> -0.28 and nothing was flagged."""

import json
from pathlib import Path

import numpy as np
import pytest

from redi.train.collapse import VERDICTS, CollapseDetector, CollapseRule, assess, running_median, verdict_text

RAW = json.loads((Path(__file__).parent / "fixtures" / "collapse" / "runs.json").read_text())


def scores_at(acc: float, seed: int, n_problems: int = 500, k: int = 4) -> dict:
    """Per-problem scores ``{id: (correct, k)}`` with mean about ``acc``: every checkpoint of a
    run sees the same problems with the same difficulty (as a real evaluation does)."""
    difficulty = np.random.default_rng(0).random(n_problems)
    prob = np.clip(2 * acc * difficulty, 0, 1)
    rng = np.random.default_rng(seed)
    correct = rng.binomial(k, prob)
    target = round(acc * n_problems * k)  # pass@1 of the scores = the curve's value
    while correct.sum() != target:
        step = 1 if correct.sum() < target else -1
        free = np.flatnonzero((correct < k) if step > 0 else (correct > 0))
        correct[rng.choice(free)] += step
    return {f"p{i}": (int(c), k) for i, c in enumerate(correct)}


# the fixture's curves with per-problem scores (the paired statistic needs them)
FIXTURE = {
    name: {**run, "curve": [(s, v, e, scores_at(v, 1 + i)) for i, (s, v, e) in enumerate(run["curve"])]}
    for name, run in RAW.items()
}


def guard_fires(records, window=5, drop=1.0):  # the default config's in-training guard
    det = CollapseDetector(window, drop)
    return any(det.update(r["chosen_logp_per_token"], r["rejected_logp_per_token"]) for r in records)


def test_fixture_is_the_issue_run():
    run = RAW["redi-a1-lr1e-4"]
    assert [p[1] for p in run["curve"]][0] == 0.224 and run["curve"][-1][1] == 0.074
    assert run["metrics"][0]["chosen_logp_per_token"] == pytest.approx(-0.06, abs=0.05)
    assert run["metrics"][-1]["chosen_logp_per_token"] == pytest.approx(-0.28, abs=0.05)
    assert not guard_fires(run["metrics"])  # the miss the issue reports


def test_symmetric_run_is_flagged_and_healthy_runs_are_not():
    verdicts = {name: assess(run["metrics"], run["curve"]) for name, run in FIXTURE.items()}
    bad = verdicts["redi-a1-lr1e-4"]
    assert bad.verdict == "collapsed" and bad.collapsed
    assert bad.drop[0] == 52 and bad.peak[0] == 0  # first checkpoint 2 paired SEs below the peak
    assert bad.chosen_start == pytest.approx(-0.06, abs=0.02) and bad.chosen_end < -0.2
    # the step where BOTH conditions hold: the first evaluated step (78) at or after the smoothed
    # chosen log-prob went below its bar (63) whose accuracy is significantly below an earlier one
    assert bad.chosen_step == 63 and bad.step == 78
    assert verdict_text(bad) == "collapsed at step 78"
    assert bad.chosen_series and bad.chosen_bar == pytest.approx(bad.chosen_start - 0.1)
    assert verdicts["redi-a0.8-lr1e-4"].verdict == "stable"
    assert verdicts["redi-a0-lr1e-4"].verdict == "stable"


def test_one_signal_alone_is_suspect_and_noise_is_smoothed():
    run = FIXTURE["redi-a1-lr1e-4"]
    assert assess(run["metrics"], FIXTURE["redi-a0.8-lr1e-4"]["curve"]).verdict == "suspect"
    assert assess(FIXTURE["redi-a0.8-lr1e-4"]["metrics"], run["curve"]).verdict == "suspect"
    assert assess(run["metrics"], None).verdict == "suspect"
    assert assess([], []).verdict == "unknown"
    # one wild batch (the rejected log-prob's kind of noise, here on chosen) does not flag a run
    records = [dict(r) for r in FIXTURE["redi-a0.8-lr1e-4"]["metrics"]]
    records[-1]["chosen_logp_per_token"] = -3.0
    assert assess(records, None).verdict == "stable"
    # a dip that recovers before the end is not a collapse
    dip = [dict(r, chosen_logp_per_token=(-0.5 if 40 <= r["step"] < 60 else -0.06)) for r in records]
    assert assess(dip, None).verdict == "stable"
    # the in-training guard alone still counts
    flagged = [dict(r, collapse_flag=r["step"] == 30) for r in records]
    out = assess(flagged, FIXTURE["redi-a0.8-lr1e-4"]["curve"])
    assert out.verdict == "collapsed" and out.guard_step == 30


def test_running_median_skips_gaps_and_rule_text_states_thresholds():
    assert running_median([1.0, 9.0, None, 2.0, 3.0], 3) == [1.0, 5.0, 5.0, 2.0, 3.0]
    text = CollapseRule(span=7, chosen_drop=0.25).text()
    assert "7 steps" in text and "0.25 nats/token" in text and "2 paired standard errors" in text


def test_signals_at_different_steps_are_suspect_and_missing_scores_are_not_judged():
    run = FIXTURE["redi-a1-lr1e-4"]
    # accuracy recovered by the time the log-prob fell: both signals, never at the same step
    curve = [run["curve"][0], (26, 0.15, 0.02, scores_at(0.15, 9)), (78, 0.224, 0.026, scores_at(0.224, 10))]
    out = assess(run["metrics"], curve)
    assert out.verdict == "suspect" and out.step == 26 and verdict_text(out) == "suspect from step 26"
    assert any("never at the same" in r for r in out.reasons)
    # without per-problem scores (older metrics.json) accuracy is not judged, and that is said
    bare = assess(run["metrics"], RAW["redi-a1-lr1e-4"]["curve"])
    assert bare.verdict == "suspect" and bare.drop is None and bare.no_scores == 5
    assert any("lack per-problem scores" in r for r in bare.reasons)
    assert {a.verdict for a in (out, bare, assess([], []))} <= set(VERDICTS)
