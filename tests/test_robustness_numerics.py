"""Numerical trouble in training: a NaN or Inf loss, or a NaN/Inf gradient behind a finite loss,
in the last or an earlier micro-batch of a step, with clipping on or off. The run must stop
with the optimizer step's number, save nothing for that step, keep the last good checkpoint
(finite weights, resumable) and write no final model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import tiny_training_inputs
from redi.train.checkpoints import latest_resumable
from redi.train.run import train
from redi.train.trainer import NonFiniteError

NAN, INF = float("nan"), float("inf")


class ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``factor`` in backward (a finite loss with
    a non-finite gradient)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_training_inputs(tmp_path_factory.mktemp("tiny"), n=12, max_filler=8)


def _poison(monkeypatch, at_call, kind):
    """Make the ``at_call``-th micro-batch's objective non-finite (1-based)."""
    from redi.train import trainer as T

    original = T.batch_objective
    calls = {"n": 0}

    def poisoned(cfg, token_logps, batch, denominator=None):
        res = original(cfg, token_logps, batch, denominator)
        calls["n"] += 1
        if calls["n"] == at_call:
            if kind == "nan_loss":
                res.loss = res.loss * NAN
            elif kind == "inf_loss":
                res.loss = res.loss + INF
            elif kind == "nan_grad":
                res.loss = ScaleGrad.apply(res.loss, NAN)
            elif kind == "inf_grad":
                res.loss = ScaleGrad.apply(res.loss, INF)
        return res

    monkeypatch.setattr(T, "batch_objective", poisoned)


SFT = {"objective": "sft", "global_batch_size": 2, "per_device_batch_size": 2, "max_steps": 5,
       "save_steps": 2, "learning_rate": 1e-3}  # fmt: skip
REDI_GA2 = {"objective": "redi", "global_batch_size": 4, "per_device_batch_size": 2, "max_steps": 5,
            "save_steps": 2, "learning_rate": 1e-3}  # two micro-batches per step  # fmt: skip


@pytest.mark.parametrize(
    "run, data_key, at_call, kind, step, what",
    [
        (SFT, "sft", 3, "inf_loss", 3, r"non-finite loss \(inf\)"),
        (SFT, "sft", 3, "nan_grad", 3, r"non-finite gradient norm \(nan\)"),
        (SFT, "sft", 3, "inf_grad", 3, r"non-finite gradient norm \((inf|nan)\)"),
        ({**SFT, "max_grad_norm": 0.0}, "sft", 3, "nan_grad", 3, r"non-finite gradient norm \(nan\)"),
        (REDI_GA2, "pref", 5, "nan_loss", 3, r"non-finite loss \(nan\)"),  # first micro-batch of step 3
        (REDI_GA2, "pref", 6, "inf_grad", 3, r"non-finite gradient norm \((inf|nan)\)"),
    ],
    ids=["sft-inf-loss", "sft-nan-grad", "sft-inf-grad", "no-clipping-nan-grad", "ga2-nan-loss-early-microbatch",
         "ga2-inf-grad"],
)  # fmt: skip
def test_non_finite_step_stops_and_keeps_the_last_good_checkpoint(
    data, tmp_path, monkeypatch, run, data_key, at_call, kind, step, what
):
    _poison(monkeypatch, at_call, kind)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=rf"{what} at optimizer step {step}\b") as err:
        train(run, data["model"], data[data_key], str(out), threads=1)
    ckpts = out / "checkpoints"
    assert f"last good checkpoint: {ckpts / 'checkpoint-2'}" in str(err.value)
    assert latest_resumable(ckpts) == ckpts / "checkpoint-2"
    assert not (ckpts / "checkpoint-4").exists() and not list(ckpts.glob(".staging-*"))
    assert not (out / "model").exists() and not (out / "summary.json").exists()
    from safetensors.torch import load_file

    weights = load_file(str(ckpts / "checkpoint-2" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    steps = [json.loads(line)["step"] for line in (ckpts / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step))  # nothing recorded for the bad step
    assert all(json.loads(line)["grad_norm"] is not None for line in (ckpts / "metrics.jsonl").read_text().splitlines())


def test_non_finite_first_step_says_there_is_no_checkpoint(data, tmp_path, monkeypatch):
    _poison(monkeypatch, 1, "nan_grad")
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"at optimizer step 1\b.*none \(a rerun starts from the start model\)"):
        train(SFT, data["model"], data["sft"], str(out), threads=1)
    assert not any(Path(out / "checkpoints").glob("checkpoint-*"))
