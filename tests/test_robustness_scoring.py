"""Robustness of scoring against hostile model output (untrusted text), through the real path.

A scripted backend stands in for the model and answers every benchmark problem with one
hostile response; :func:`redi.eval.run.evaluate` scores them with the real bounded
Math-Verify (:func:`redi.eval.score.score_generations` -> :func:`redi.verify.verify_many`).
Nothing may execute, every sample must be recorded with a status, no verification worker may
outlive the call, worker memory must stay under its cap, and the whole evaluation must finish
within a bound computed from the per-item timeout.
"""

from __future__ import annotations

import json
import math
import threading
import time

import pandas as pd
import psutil
import pytest

import redi.eval.run as run_mod
from helpers import tiny_tokenizer
from redi.eval.benchmarks import load_benchmark
from redi.eval.generate import Generation
from redi.eval.run import evaluate
from redi.verify import MAX_FRAC_DEPTH, verify_many

TIMEOUT_S = 1.0
WORKERS = 2
MEMORY_MB = 512
PREFIX = "<think>\nhmm\n</think>\n\n"


def _hostile(marker: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (response text, statuses it may be recorded with). None may be correct except
    the two controls (``plain`` and ``nul``)."""
    touch = f"__import__('os').system('touch {marker}')"
    deep = "\\frac{1}{" * (3 * MAX_FRAC_DEPTH) + "2" + "}" * (3 * MAX_FRAC_DEPTH)
    compared = {"ok", "no_answer", "timeout", "error"}
    hung = {"timeout", "error"}
    return {
        "plain": (PREFIX + "So $\\boxed{4}$.", {"ok"}),
        "python": (PREFIX + f"$\\boxed{{{touch}}}$", compared),
        "python_bare": (PREFIX + touch, compared),
        "eval": (PREFIX + f"\\boxed{{eval(\"{touch}\")}} \\boxed{{exec('{touch}')}}", compared),
        "dunder": (
            PREFIX + "\\boxed{().__class__.__base__.__subclasses__()[-1].__init__.__globals__"
            f"['__builtins__']['__import__']('os').system('touch {marker}')}}",
            compared,
        ),
        "lambda": (PREFIX + f"$\\boxed{{(lambda: {touch})()}}$", compared),
        "shell": (PREFIX + f"\\boxed{{$(touch {marker})}} `touch {marker}`; touch {marker}", compared),
        "tower": (PREFIX + "$\\boxed{9^{9^{9^{9}}}}$", hung),
        "pow_py": (PREFIX + "2**10**10", hung),
        "pow_boxed": (PREFIX + "\\boxed{2**10**10}", compared),
        "factorial": (PREFIX + "$\\boxed{1000000!}$", compared),
        "factorial_big": (PREFIX + "$\\boxed{(10^{100})!}$", compared),
        "long_number": (PREFIX + "\\boxed{" + "9" * 100_000 + "}", compared),
        "long_text": (PREFIX + "blah " * 20_000 + "\\boxed{5}", compared),
        "deep_frac": (PREFIX + "$\\boxed{" + deep + "}$", {"too_deep"}),
        "deep_cfrac": (PREFIX + "\\boxed{" + "\\cfrac{1}{" * 300 + "2" + "}" * 300 + "}", compared),
        "unbalanced_open": (PREFIX + "\\boxed{\\frac{1}{2" + "{" * 5000, compared),
        "unbalanced_close": (PREFIX + "}" * 5000 + "\\boxed{4", compared),
        "many_boxed": (PREFIX + " ".join(f"\\boxed{{{k}}}" for k in range(5000)), compared),
        "nul": (PREFIX + "\x00$\\boxed{4\x00}$\x00" + "\x00" * 1000, {"ok"}),
        "no_think": ("\\boxed{4} " + touch, {"no_think_close"}),
    }


CONTROLS = {"plain", "nul"}


class HostileBackend:
    def __init__(self, texts_by_problem):
        self.texts = texts_by_problem

    def generate(self, jobs, sampling, on_batch):
        gens = [
            Generation(job.problem_id, i, self.texts[job.problem_id], 3, "stop")
            for job in jobs
            for i in job.sample_indices
        ]
        on_batch(gens, 0.1)

    def close(self):
        pass


class ChildWatch:
    """Samples the RSS of every child process of this one while scoring runs."""

    def __init__(self):
        self.peak_rss = 0
        self.seen = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    self.peak_rss = max(self.peak_rss, child.memory_info().rss)
                    self.seen.add(child.pid)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-eval")
    marker = f"/tmp/pwned_{root.name}_{time.monotonic_ns()}"
    cases = _hostile(marker)
    bench = root / "bench.json"
    bench.write_text(json.dumps([{"problem": f"Hostile case {name}: what is 2 + 2?", "answer": "4"}
                                 for name in cases]))  # fmt: skip
    problems = load_benchmark(bench)
    names = dict(zip((p.problem_id for p in problems), cases))
    texts = {pid: cases[name][0] for pid, name in names.items()}
    mp = pytest.MonkeyPatch()
    mp.setattr(run_mod, "make_backend", lambda *a, **k: HostileBackend(texts))
    tokenizer = tiny_tokenizer()
    from redi.verify import _mv

    _mv()  # imports done before the memory baseline is taken
    parent = psutil.Process()
    rss_before = parent.memory_info().rss
    t0 = time.monotonic()
    try:
        with ChildWatch() as watch:
            metrics = evaluate(
                root / "no-model", "hostile", bench, root / "out",
                {"n_samples": 1, "verify_timeout_s": TIMEOUT_S, "verify_memory_mb": MEMORY_MB},
                run="r", checkpoint="final", threads=WORKERS, tokenizer=tokenizer,
            )  # fmt: skip
    finally:
        mp.undo()
    elapsed = time.monotonic() - t0
    samples = pd.read_parquet(root / "out" / "samples.parquet")
    samples["name"] = samples["problem_id"].map(names)
    return {
        "cases": cases, "marker": marker, "metrics": metrics, "samples": samples.set_index("name"),
        "elapsed": elapsed, "watch": watch, "rss_before": rss_before, "rss_after": parent.memory_info().rss,
        "root": root,
    }  # fmt: skip


def test_nothing_executes(scored):
    import os

    assert not os.path.exists(scored["marker"])


def test_every_sample_is_recorded_with_a_status(scored):
    samples, cases = scored["samples"], scored["cases"]
    assert sorted(samples.index) == sorted(cases)
    for name, (_, allowed) in cases.items():
        row = samples.loc[name]
        assert row["status"] in allowed, (name, row["status"])
        assert bool(row["correct"]) == (name in CONTROLS), (name, row["status"], row["extracted"])
        if row["status"] in ("too_deep", "timeout", "no_think_close"):
            assert pd.isna(row["extracted"])  # no value is made up for an unscored sample
        else:
            assert pd.isna(row["extracted"]) or len(row["extracted"]) <= 1000
    counts = scored["metrics"]["status_counts"]
    assert sum(counts.values()) == len(cases)
    assert scored["metrics"]["timeouts"] == counts.get("timeout", 0) >= 1
    assert scored["metrics"]["pass@1"] == pytest.approx(len(CONTROLS) / len(cases))
    on_disk = json.loads((scored["root"] / "out" / "metrics.json").read_text())
    assert on_disk["status_counts"] == counts


def test_finishes_within_the_computed_bound(scored):
    """Worst case of redi.verify's batching: every batch of the first round overruns once
    (ceil(batches / workers) rounds of one timeout), then every item alone overruns
    (ceil(items / workers) rounds); plus a fixed allowance for pool start-up, respawns and the
    evaluation's own bookkeeping."""
    n = len(scored["cases"]) - 1  # the no_think sample never reaches a worker
    batch = max(1, min(32, math.ceil(n / WORKERS)))
    rounds = math.ceil(math.ceil(n / batch) / WORKERS) + math.ceil(n / WORKERS)
    bound = TIMEOUT_S * rounds + 20.0
    assert scored["elapsed"] < bound, (scored["elapsed"], bound)


def test_no_worker_outlives_the_call_and_memory_stays_bounded(scored):
    assert psutil.Process().children(recursive=True) == []
    watch = scored["watch"]
    assert watch.seen, "the watcher saw no worker process"
    for pid in watch.seen:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # a worker's address space is capped at its size when forked + MEMORY_MB, so its resident
    # memory cannot pass the parent's resident memory (shared pages) + the cap
    assert watch.peak_rss < scored["rss_before"] + (MEMORY_MB + 64) * 2**20, watch.peak_rss / 2**20
    assert scored["rss_after"] - scored["rss_before"] < 300 * 2**20


def test_hostile_gold_answers_from_the_corpus(tmp_path):
    """The verification stage compares untrusted corpus golds too (gold first)."""
    marker = tmp_path / "pwned"
    deep = "\\frac{1}{" * 300 + "2" + "}" * 300
    pairs = [
        ("9^{9^{9^{9}}}", "\\boxed{4}"),
        (deep, "\\boxed{2}"),
        (f"__import__('os').system('touch {marker}')", "\\boxed{0}"),
        ("4\x00", "\\boxed{4}"),
        ("\x00", "\\boxed{4}"),
        ("4", "\\boxed{4}"),
    ]
    out = verify_many(pairs, timeout_s=TIMEOUT_S, workers=WORKERS, memory_mb=MEMORY_MB)
    assert out[0].status in ("timeout", "error") and not out[0].correct
    assert out[1].status == "too_deep" and not out[1].correct
    assert not out[2].correct and not marker.exists()
    assert (out[3].status, out[3].correct) == ("ok", True)
    assert (out[4].status, out[4].correct) == ("unparseable", False)
    assert (out[5].status, out[5].correct) == ("ok", True)
    assert psutil.Process().children(recursive=True) == []


def test_a_worker_that_dies_marks_only_its_item(monkeypatch):
    """A verification worker killed mid-item (the OOM killer, a crash in a C extension): the
    item is recorded as ``error``, the others of its batch are re-run and scored."""
    import os
    import signal

    from redi import verify as V

    real = V._check_one

    def crashing(gold, answer):
        if "crash" in answer:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does
        return real(gold, answer)

    monkeypatch.setattr(V, "_check_one", crashing)  # inherited by the forked workers
    pairs = [("4", "\\boxed{4}"), ("4", "\\boxed{crash}"), ("5", "\\boxed{5}"), ("4", "\\boxed{3}")]
    out = verify_many(pairs, timeout_s=TIMEOUT_S * 5, workers=1)
    assert [(v.status, v.correct) for v in out] == [("ok", True), ("error", False), ("ok", True), ("ok", False)]
    assert psutil.Process().children(recursive=True) == []


def test_workers_die_with_a_killed_parent(tmp_path):
    """The per-item bound is enforced by the parent; if the parent is SIGKILLed (a job's time
    limit) while a worker computes a power tower, the worker must not live on."""
    import signal
    import subprocess
    import sys

    code = (
        "from redi.verify import verify_many\n"
        "print('go', flush=True)\n"
        "verify_many([('4', '\\\\boxed{9^{9^{9^{9}}}}'), ('4', '2**10**10')], timeout_s=600, workers=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    workers: list[psutil.Process] = []
    try:
        assert proc.stdout.readline().strip() == "go"
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while len(parent.children()) < 2:
            assert time.monotonic() < deadline, "no workers started"
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are inside the hostile items now
        workers = parent.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, [w.pid for w in alive]
    finally:  # never leave this test's own processes behind, whatever failed
        if proc.poll() is None:
            proc.kill()
        for worker in workers:
            try:
                worker.kill()
            except psutil.Error:
                pass
        proc.stdout.close()
