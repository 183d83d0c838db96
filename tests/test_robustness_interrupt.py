"""Interruptions: SIGKILL of training and of evaluation, run through the command line exactly as
a job runs them, and a full disk while a checkpoint is written. The rerun must resume
(training from its last checkpoint with the same data order; evaluation re-using the
journalled samples) and end with the same results as an uninterrupted run.

Every command-line run here has a hub token canary and offline mode in its environment: the
runs must succeed without the hub and the canary must appear in no file and no output.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers import save_tiny_student, write_data
from redi.train.checkpoints import latest_resumable
from redi.train.run import train

CANARY = "hf_secret_canary_3f9c2b7e"
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_TOKEN": CANARY,
    "HUGGING_FACE_HUB_TOKEN": CANARY,
}
RUN = {"objective": "redi", "global_batch_size": 4, "per_device_batch_size": 2, "max_steps": 24,
       "save_steps": 2, "learning_rate": 1e-3, "seed": 5}  # fmt: skip
OUTPUTS: list[Path] = []  # every folder a command-line run wrote (grepped for the canary)
STREAMS: list[str] = []  # their stdout + stderr


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def _metrics(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _cli(args, out_dir, kill_when=None, timeout=300):
    """Run ``python -m redi.cli ARGS``; with ``kill_when``, SIGKILL it as soon as that
    predicate holds. Returns the finished process."""
    OUTPUTS.append(Path(out_dir))
    proc = subprocess.Popen([sys.executable, "-m", "redi.cli", *args], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if kill_when is not None:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not kill_when():
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    output, _ = proc.communicate(timeout=timeout)
    STREAMS.append(output)
    return proc, output


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-train")
    save_tiny_student(root / "student", init_std=0.2)
    _, pref = write_data(root, n=16, max_filler=12)
    return {"model": str(root / "student"), "pref": str(pref)}


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    train(RUN, data["model"], data["pref"], str(out), threads=1)
    return out


def _same_training(reference, out):
    a, b = _weights(reference / "model"), _weights(out / "model")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise
    ref, res = _metrics(reference / "metrics.jsonl"), _metrics(out / "metrics.jsonl")
    assert [r["step"] for r in res] == list(range(1, RUN["max_steps"] + 1))  # no step twice
    for x, y in zip(ref, res):
        assert (x["loss"], x["update_norm"], x["grad_norm"]) == (y["loss"], y["update_norm"], y["grad_norm"])


# ----------------------------------------------------------------------------- training


def test_training_killed_after_its_first_checkpoint_resumes_identically(data, reference, tmp_path):
    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    args = ["train", "run", "--run-json", json.dumps(RUN), "--model", data["model"], "--data", data["pref"],
            "--out", str(out), "--threads", "1"]  # fmt: skip
    proc, output = _cli(args, out, kill_when=lambda: any(ckpts.glob("checkpoint-*")))
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    assert not (out / "model").exists() and not (out / "summary.json").exists()
    resume_from = latest_resumable(ckpts)
    assert resume_from is not None, sorted(p.name for p in ckpts.iterdir())
    step = int(resume_from.name.split("-")[1])
    assert step < RUN["max_steps"]

    proc, output = _cli(args, out)
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] >= step and summary["steps"] == RUN["max_steps"]
    assert f"resuming from {resume_from}" in output
    _same_training(reference, out)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(data, reference, tmp_path, monkeypatch):
    """ENOSPC half-way through writing checkpoint-4's optimizer state: the run stops with the
    error, checkpoint-2 stays complete and resumable, and the rerun resumes from it."""
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt") and "staging-4" in str(f):
            with open(f, "wb") as fh:
                fh.write(b"\0" * 4096)  # a torn file, as a full disk leaves it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    with pytest.raises(OSError) as err:
        train(RUN, data["model"], data["pref"], str(out), threads=1)
    assert err.value.errno == errno.ENOSPC
    ckpts = out / "checkpoints"
    assert not (ckpts / "checkpoint-4").exists() and not (out / "model").exists()
    assert latest_resumable(ckpts) == ckpts / "checkpoint-2"
    assert [r["step"] for r in _metrics(ckpts / "metrics.jsonl")] == [1, 2, 3, 4]

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    summary = train(RUN, data["model"], data["pref"], str(out), threads=1)
    assert summary["resumed_from_step"] == 2
    assert not list(ckpts.glob(".staging-*"))
    _same_training(reference, out)


# ----------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-eval")
    model = save_tiny_student(root / "model")
    bench = root / "bench.json"
    bench.write_text(json.dumps([{"problem": f"What is {k} + {k}?", "answer": str(2 * k)} for k in range(8)]))
    return {"model": str(model), "bench": str(bench)}


def _eval_args(inputs, out):
    # one prompt per batch: a batch's sampling seed depends only on its prompt and sample
    # indices, so a resumed run regenerates unfinished prompts exactly (see redi.eval.generate)
    return ["eval", "evaluate", "--model", inputs["model"], "--benchmark", "toy", "--benchmark-path",
            inputs["bench"], "--out-dir", str(out), "--run", "r", "--checkpoint", "final", "--n-samples",
            "2", "--max-new-tokens", "160", "--batch-size", "1", "--threads", "1"]  # fmt: skip


TIMING = {"wall_seconds", "generation_seconds", "tokens_per_second", "reused_samples"}


def test_evaluation_killed_after_its_first_batch_reuses_it_and_ends_the_same(eval_inputs, tmp_path):
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "killed"
    proc, output = _cli(_eval_args(eval_inputs, ref_out), ref_out)
    assert proc.returncode == 0, output[-3000:]

    journal = out / "generations.jsonl"
    first_batch = lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 1  # noqa: E731
    proc, output = _cli(_eval_args(eval_inputs, out), out, kill_when=first_batch)
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    assert not (out / "metrics.json").exists() and not (out / "samples.parquet").exists()
    before = {(r["problem_id"], r["sample_index"]): r["text"]
              for r in map(json.loads, journal.read_text().splitlines()) if r}  # fmt: skip
    assert 2 <= len(before) < 16

    proc, output = _cli(_eval_args(eval_inputs, out), out)
    assert proc.returncode == 0, output[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reused_samples"] == len(before)
    samples = pd.read_parquet(out / "samples.parquet")
    for (pid, idx), text in before.items():  # finished work is re-used, not regenerated
        assert samples[(samples.problem_id == pid) & (samples.sample_index == idx)]["text"].item() == text
    reference = pd.read_parquet(ref_out / "samples.parquet")
    pd.testing.assert_frame_equal(samples, reference)  # the same samples, scored the same
    ref_metrics = json.loads((ref_out / "metrics.json").read_text())
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING | {"model_path"}}  # noqa: E731
    assert strip(metrics) == strip(ref_metrics)


class CountingBackend:
    """Deterministic stand-in for the model: one batch per prompt, text from (problem, index)."""

    def __init__(self):
        self.generated = []

    def generate(self, jobs, sampling, on_batch):
        from redi.eval.generate import Generation

        for job in jobs:
            gens = [Generation(job.problem_id, i, f"<think>\n{job.problem_id}:{i}\n</think> \\boxed{{{i}}}", 5,
                               "stop") for i in job.sample_indices]  # fmt: skip
            self.generated += [(g.problem_id, g.sample_index) for g in gens]
            on_batch(gens, 0.01)

    def close(self):
        pass


def test_disk_full_while_journalling_an_evaluation(eval_inputs, tmp_path, monkeypatch):
    """ENOSPC half-way through appending the second batch to the journal: the evaluation stops
    with the error; the rerun drops the torn line, keeps every complete sample and generates
    only the rest."""
    import redi.eval.run as run_mod
    from redi.eval.run import Journal, evaluate

    real_append = Journal.append
    calls = {"n": 0}

    def full_disk(self, records):
        calls["n"] += 1
        if calls["n"] == 2:
            line = json.dumps(records[0])
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n" + line[: len(line) // 2])  # one record, then a torn one
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return real_append(self, records)

    args = dict(config={"n_samples": 2, "sampling": {"max_new_tokens": 64}}, run="r", checkpoint="final", threads=1)
    out = tmp_path / "ev"
    monkeypatch.setattr(Journal, "append", full_disk)
    monkeypatch.setattr(run_mod, "make_backend", lambda *a, **k: CountingBackend())
    with pytest.raises(OSError) as err:
        evaluate(eval_inputs["model"], "toy", eval_inputs["bench"], out, **args)
    assert err.value.errno == errno.ENOSPC and not (out / "metrics.json").exists()

    monkeypatch.setattr(Journal, "append", real_append)
    backend = CountingBackend()
    monkeypatch.setattr(run_mod, "make_backend", lambda *a, **k: backend)
    metrics = evaluate(eval_inputs["model"], "toy", eval_inputs["bench"], out, **args)
    assert metrics["reused_samples"] == 3  # batch 1 (2 samples) + the complete line of batch 2
    assert len(backend.generated) == 16 - 3
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == 16 and not samples.duplicated(["problem_id", "sample_index"]).any()
    assert metrics["pass@1"] == pytest.approx(1 / 16)  # only "0" for problem 0 (gold 0) is right


# ----------------------------------------------------------------------------- hub token


def test_hub_token_is_never_written(tmp_path):
    """The canary token was in the environment of every command-line run above: it must not
    appear in any file they wrote or in anything they printed."""
    if not OUTPUTS:
        pytest.skip("no command-line run in this session (run the whole module)")
    files = [f for d in OUTPUTS if d.exists() for f in d.rglob("*") if f.is_file()]
    assert files
    for f in files:
        assert CANARY.encode() not in f.read_bytes(), f
    for text in STREAMS:
        assert CANARY not in text
