"""End-to-end runs on a tiny model: outputs and checkpoints, resume after SIGKILL, the NaN guard,
the collapse guard, DPO with cached reference log-probs, and the CLI."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import tiny_training_inputs
from redi.train.collapse import CollapseDetector
from redi.train.run import train
from redi.train.schedule import checkpoint_steps
from redi.train.trainer import NonFiniteError

METRIC_KEYS = {
    "step", "epoch", "loss", "chosen_logp_per_token", "rejected_logp_per_token", "margin",
    "grad_norm", "update_norm", "learning_rate", "tokens_per_second", "collapse_flag",
    "pref_accuracy", "reward_accuracy", "reward_margin",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_training_inputs(tmp_path_factory.mktemp("tiny"), n=10, max_filler=12)


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def _metrics(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


RUN = {"objective": "redi", "global_batch_size": 4, "per_device_batch_size": 2, "max_steps": 6,
       "save_steps": 2, "learning_rate": 1e-3, "seed": 5}


def test_run_outputs_checkpoints_and_metrics(inputs, tmp_path):
    out = tmp_path / "redi"
    summary = train(dict(RUN, save_each_epoch=True), inputs["model"], inputs["pref"], str(out), threads=1)
    expected = checkpoint_steps(10, 4, 1, 2, True, max_steps=6)
    assert expected == [2, 3, 4, 6]
    assert summary["checkpoint_steps"] == expected == summary["saved_checkpoints"]
    assert sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")) == expected
    assert not list((out / "checkpoints").glob(".staging-*"))
    # only the newest checkpoint keeps the resume state; all keep loadable weights
    assert (out / "checkpoints/checkpoint-6/optimizer.pt").exists()
    assert not (out / "checkpoints/checkpoint-4/optimizer.pt").exists()
    assert (out / "checkpoints/checkpoint-2/model.safetensors").exists()
    rows = _metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(set(r) == METRIC_KEYS for r in rows)
    assert all(r["margin"] == pytest.approx(r["chosen_logp_per_token"] - r["rejected_logp_per_token"]) for r in rows)
    assert rows[0]["learning_rate"] == 0.0 and rows[0]["update_norm"] == 0.0  # warm-up step 1
    assert rows[1]["learning_rate"] == pytest.approx(1e-3) and rows[1]["update_norm"] > 0
    assert rows[-1]["learning_rate"] < rows[2]["learning_rate"]  # linear decay
    assert rows[3]["epoch"] == pytest.approx(4 / 3)
    s = json.loads((out / "summary.json").read_text())
    for key in ("run", "objective", "steps", "wall_seconds", "train_tokens", "tokens_per_second",
                "collapsed", "collapse_step", "stopped_reason", "checkpoint_steps", "device",
                "n_gpus", "world_size"):
        assert key in s
    assert (s["run"], s["steps"], s["collapsed"], s["stopped_reason"]) == ("redi", 6, False, "completed")
    # the final model loads with transformers and equals the final checkpoint's weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out / "model")
    assert AutoTokenizer.from_pretrained(out / "model").chat_template
    final, ckpt = _weights(out / "model"), _weights(out / "checkpoints/checkpoint-6")
    assert all(torch.equal(final[k], ckpt[k]) for k in final)
    # a rerun with everything in place only rewrites the outputs
    again = train(dict(RUN, save_each_epoch=True), inputs["model"], inputs["pref"], str(out), threads=1)
    assert again["steps"] == 6 and len(_metrics(out / "metrics.jsonl")) == 6


KILLER = textwrap.dedent("""
    import json, os, signal, sys
    from redi.train import trainer as T
    from redi.train.run import train
    original = T.RediTrainer.training_step
    def training_step(self, *a, **k):
        if self.state.global_step == int(sys.argv[5]):  # inside the step after that checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *a, **k)
    T.RediTrainer.training_step = training_step
    train(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], threads=1)
""")


def test_preference_accuracy_is_the_share_of_pairs_the_model_ranks_right(inputs, tmp_path):
    """One optimizer step = all 10 pairs (global batch 10), so each step's pref_accuracy is the
    share of the 10 pairs whose chosen trace has the higher per-token log-prob under the model
    before that step's update: symmetric REDI, which raises exactly that difference, must move it
    up to every pair; REDI has no reference model, so no reward accuracy."""
    run = dict(RUN, alpha=1.0, global_batch_size=10, max_steps=8, save_steps=8, learning_rate=3e-3)
    train(run, inputs["model"], inputs["pref"], str(tmp_path / "redi"), threads=1)
    rows = _metrics(tmp_path / "redi" / "metrics.jsonl")
    accuracy = [r["pref_accuracy"] for r in rows]
    assert all(round(10 * a, 9) == round(10 * a) for a in accuracy)  # whole pairs out of 10
    assert accuracy[-1] == 1.0 and accuracy[0] < 1.0, accuracy
    assert all(r["reward_accuracy"] is None and r["reward_margin"] is None for r in rows)


def test_resume_after_sigkill_gives_identical_weights(inputs, tmp_path):
    ref = tmp_path / "uninterrupted"
    train(RUN, inputs["model"], inputs["pref"], str(ref), threads=1)

    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # killed during step 5: checkpoint-4 is the newest (mid-epoch 2: 3 steps per epoch)
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(RUN), inputs["model"], inputs["pref"],
                           str(out), "4"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (out / "checkpoints/checkpoint-4").is_dir() and not (out / "model").exists()
    before = _metrics(out / "checkpoints/metrics.jsonl")
    assert [r["step"] for r in before][:4] == [1, 2, 3, 4]
    # a save interrupted half-way leaves a staging folder behind: it must be ignored
    (out / "checkpoints/.staging-6/checkpoint-6").mkdir(parents=True)
    (out / "checkpoints/.staging-6/checkpoint-6/model.safetensors").write_bytes(b"torn")

    summary = train(RUN, inputs["model"], inputs["pref"], str(out), threads=1)
    assert (summary["steps"], summary["resumed_from_step"]) == (6, 4)
    a, b = _weights(ref / "model"), _weights(out / "model")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bitwise
    m_ref, m_res = _metrics(ref / "metrics.jsonl"), _metrics(out / "metrics.jsonl")
    assert [r["step"] for r in m_res] == [1, 2, 3, 4, 5, 6]  # no duplicated steps
    assert m_res[:4] == before[:4]  # steps 1-4 come from the killed run (their timings differ)
    for x, y in zip(m_ref, m_res):
        assert x["loss"] == y["loss"] and x["update_norm"] == y["update_norm"], (x, y)


def test_nan_loss_stops_naming_the_step(inputs, tmp_path, monkeypatch):
    from redi.train import trainer as T

    calls = {"n": 0}
    original = T.batch_objective

    def poisoned(cfg, token_logps, batch, denominator=None):
        res = original(cfg, token_logps, batch, denominator)
        calls["n"] += 1
        if calls["n"] == 3:  # one micro-batch per step: step 3
            res.loss = res.loss * float("nan")
        return res

    monkeypatch.setattr(T, "batch_objective", poisoned)
    out = tmp_path / "nan"
    run = {"objective": "sft", "global_batch_size": 2, "per_device_batch_size": 2, "max_steps": 5,
           "save_steps": 2, "learning_rate": 1e-3}
    with pytest.raises(NonFiniteError, match=r"non-finite loss \(nan\) at optimizer step 3") as err:
        train(run, inputs["model"], inputs["sft"], str(out), threads=1)
    assert "checkpoint-2" in str(err.value)
    assert (out / "checkpoints/checkpoint-2").is_dir() and not (out / "checkpoints/checkpoint-4").exists()
    assert not (out / "model").exists()
    assert [r["step"] for r in _metrics(out / "checkpoints/metrics.jsonl")] == [1, 2]
    # fixed, the rerun resumes from the last good checkpoint and finishes
    monkeypatch.setattr(T, "batch_objective", original)
    assert train(run, inputs["model"], inputs["sft"], str(out), threads=1)["steps"] == 5


def test_collapse_detector():
    d = CollapseDetector(window=2, drop=0.5)
    flags = [d.update(c, r) for c, r in [(-1, -2), (-1, -2), (-1.1, -2.1), (-1.2, -2.2)]]
    assert flags == [False] * 4  # gentle drift
    d = CollapseDetector(window=2, drop=0.5)
    flags = [d.update(c, r) for c, r in [(-1, -2), (-1, -2), (-1.6, -2.8), (-1.7, -3.0)]]
    assert flags == [False, False, False, True]
    d = CollapseDetector(window=2, drop=0.5)  # only the rejected falls: the intended effect
    assert not any(d.update(-1.0, r) for r in (-2, -2, -4, -5))


def test_collapse_stop_ends_the_run_and_is_reported(inputs, tmp_path, monkeypatch):
    from redi.train import trainer as T

    monkeypatch.setattr(T.CollapseDetector, "update", _fake_update)  # flags from step 3 on
    out = tmp_path / "collapse"
    run = dict(RUN, max_steps=5, collapse={"window": 1, "drop": 0.1, "stop": True})
    summary = train(run, inputs["model"], inputs["pref"], str(out), threads=1)
    assert (summary["collapsed"], summary["collapse_step"], summary["stopped_reason"], summary["steps"]) == (
        True, 3, "collapse", 3)
    rows = _metrics(out / "metrics.jsonl")
    assert [r["collapse_flag"] for r in rows] == [False, False, True]
    assert (out / "model/model.safetensors").exists()


def _fake_update(detector, chosen, rejected):
    detector.calls = getattr(detector, "calls", 0) + 1
    return detector.calls >= 3


def test_dpo_with_cached_reference_via_cli(inputs, tmp_path):
    from redi.train.cli import main

    run = tmp_path / "run.yaml"
    run.write_text("objective: dpo\nbeta: 0.5\nglobal_batch_size: 4\nper_device_batch_size: 2\n"
                   "max_steps: 2\nlearning_rate: 0.001\nwarmup_ratio: 0\n")
    ref = tmp_path / "ref_logps.parquet"
    assert main(["ref-logps", "--config", str(run), "--model", inputs["model"], "--data", inputs["pref"],
                 "--out", str(ref)]) == 0
    import pandas as pd

    df = pd.read_parquet(ref)
    assert list(df.columns) == ["id", "ref_chosen_logp", "ref_rejected_logp"] and len(df) == 10
    assert (df["ref_chosen_logp"] < 0).all()
    out = tmp_path / "dpo"
    assert main(["train", "--config", str(run), "--model", inputs["model"], "--data", inputs["pref"],
                 "--out", str(out), "--ref-logps", str(ref)]) == 0
    rows = _metrics(out / "metrics.jsonl")
    assert abs(rows[0]["loss"] - math.log(2)) < 1e-5  # policy == reference at step 1 (fp32 sums)
    assert rows[1]["loss"] != rows[0]["loss"]
    with pytest.raises(ValueError, match="ref_logps_path"):
        train({"objective": "dpo"}, inputs["model"], inputs["pref"], str(tmp_path / "x"))


def test_reference_pass_is_only_for_objectives_that_need_one(tmp_path):
    """The objective registry decides (needs_reference), not a name: REDI is pairwise but has no
    reference model, so its pass is refused before any model loads; without an objective the
    pass takes the first registry objective that needs one."""
    from redi.train import objectives
    from redi.train.reference import compute_reference_logps

    run = {"objective": "redi", "alpha": 0.8, "global_batch_size": 4, "per_device_batch_size": 2}
    with pytest.raises(ValueError, match="objective is 'redi'"):
        compute_reference_logps(str(tmp_path / "no-model"), str(tmp_path / "no-data"), str(tmp_path / "r"), run, 1)
    assert [n for n, o in objectives.OBJECTIVES.items() if o.needs_reference][0] == "dpo"
