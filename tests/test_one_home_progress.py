"""A job's log says its progress once: one rate limit per job (``redi.progress``), however many
evaluations and reporters the job runs, and no second per-batch line from the backend. The
README promises a progress line "at most every 30 s"."""

from __future__ import annotations

import json
import logging

import pytest

from helpers import save_tiny_student
from redi import progress
from redi.progress import Progress, RateLimit


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_reporters_of_one_job_share_the_rate_limit(caplog):
    """An eval_group-like job: 10 evaluations in 48 s, each a generation reporter (3 batches)
    and a verification reporter; lines come at most every 30 s, plus the end of a reporter
    that had spoken."""
    clock, limit = Clock(), RateLimit()
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for k in range(10):
            gen = Progress(f"generation ckpt-{k}", 30, "samples", logger=log, clock=clock, limit=limit)
            for _ in range(3):
                clock.now += 1.2
                gen.update(10, tokens=100)
            ver = Progress("verification", 30, "items", logger=log, clock=clock, limit=limit)
            clock.now += 1.2
            ver.update(30)
    lines = [(r.created, r.getMessage()) for r in caplog.records]
    assert clock.now == pytest.approx(48.0)
    # the job's first update, the end of that reporter, and one line after 30 s (ckpt-8's first
    # batch at 31.2 s) with its end: 4 lines, not the 60 a line per reporter start/end would give
    assert [m.split(":")[0] for _, m in lines] == [
        "generation ckpt-0", "generation ckpt-0", "generation ckpt-7", "generation ckpt-7",
    ]  # fmt: skip
    assert "10/30 samples" in lines[0][1] and "30/30 samples" in lines[1][1]


def test_a_reporter_alone_keeps_its_first_periodic_and_last_lines():
    clock, limit = Clock(), RateLimit()
    p = Progress("training r", 100, "steps", clock=clock, limit=limit, interval_s=30)
    logged = []
    for step in range(100):
        clock.now += 1.0
        logged.append(p.update(1, force=step == 49))
    spoke = [i + 1 for i, line in enumerate(logged) if line]
    assert spoke == [1, 31, 50, 80, 100]  # first, every 30 s, forced (a save), last


def test_an_evaluation_job_logs_progress_at_most_every_30_s(tmp_path, caplog, monkeypatch):
    """A real job (tiny Qwen2, transformers backend, real Math-Verify): one checkpoint on three
    benchmarks, several batches each, in well under 30 s: the job's first progress line and
    that reporter's end, no per-batch backend lines, no start/end lines per evaluation."""
    from redi.eval.group import evaluate_checkpoint

    monkeypatch.setattr(progress, "JOB", RateLimit())  # a fresh job (pytest runs many in one process)
    model = save_tiny_student(tmp_path / "model")
    benches = {}
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([{"problem": f"What is {k} + {k}?", "answer": str(2 * k)} for k in range(2)]))
        benches[name] = path
    config = {"n_samples": 2, "batch_size": 1, "verify_timeout_s": 5.0, "sampling": {"max_new_tokens": 6}}
    with caplog.at_level(logging.INFO):
        evaluate_checkpoint(model, benches, tmp_path / "eval", config, run="r", checkpoint="step-1", threads=1)
    words = ("generated ", "generation ", "verification:")
    lines = [r.getMessage() for r in caplog.records if any(w in r.getMessage() for w in words)]
    assert len(lines) <= 2, lines
    assert lines and lines[0].startswith("generation r/step-1/a: 2/4 samples")
