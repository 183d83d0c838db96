"""Benchmarks' gold normalisation and scoring of responses (bounded Math-Verify)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from redi.eval.benchmarks import (
    clean_gold,
    gold_response,
    load_benchmark,
    normalise_answer,
    problem_id,
)
from redi.eval.score import SAMPLE_COLUMNS, score_generations, score_gold

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {
    "math": "math.json",
    "aime": "aime.json",
    "amc": "amc.json",
    "minerva": "minerva.json",
    "olympiad_bench": "olympiad_bench.json",
}


def test_normalise_answer():
    assert normalise_answer(142.0) == ("142",)
    assert normalise_answer(2.5) == ("2.5",)
    assert normalise_answer("025") == ("025",)
    assert normalise_answer(["9.6\n"]) == ("9.6",)
    assert normalise_answer(["4", "4\n"]) == ("4",)  # duplicates after stripping dropped
    assert normalise_answer(["-\\frac{1}{3}\n", "-1/3\n"]) == ("-\\frac{1}{3}", "-1/3")
    assert normalise_answer(["$69$,$84$"]) == ("69,84",)
    assert clean_gold("$(-\\infty, 0) \\cup\\{1\\}$.") == "(-\\infty, 0) \\cup\\{1\\}"
    assert clean_gold("1,2,...") == "1,2,..."
    with pytest.raises(ValueError):
        normalise_answer(["  "])


def test_load_benchmark_ids(tmp_path):
    path = tmp_path / "b.json"
    rows = [{"problem": "What is  1+1?", "answer": "2"}, {"problem": "What is 1+1?", "answer": 2.0}]
    path.write_text(json.dumps(rows))
    ps = load_benchmark(path)
    assert ps[0].problem_id == problem_id("What is 1+1?") and len(ps[0].problem_id) == 16
    assert ps[1].problem_id == ps[0].problem_id + "-1"  # identical text keeps a unique id
    assert [p.gold for p in ps] == ["2", "2"]
    assert len(load_benchmark(path, limit=1)) == 1


def _gen(pid, text, finish="stop", idx=0):
    return {"problem_id": pid, "sample_index": idx, "text": text, "length": 3, "finish_reason": finish}


def test_score_rules(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(
        json.dumps(
            [
                {"problem": "p0", "answer": "\\frac{1}{2}"},
                {"problem": "p1", "answer": ["0.01\n", "0.02\n"]},  # two acceptable golds
            ]
        )
    )
    p0, p1 = load_benchmark(path)
    good = "ok\n</think>\n\nTherefore, the final answer is: $\\boxed{0.5}$. I hope it is correct"
    gens = [
        _gen(p0.problem_id, good, idx=0),
        _gen(p0.problem_id, "never closes the think \\boxed{1/2}", idx=1),
        _gen(p0.problem_id, good, finish="length", idx=2),  # truncated: wrong whatever it says
        _gen(p0.problem_id, "x</think> \\boxed{3} </think> the end: \\boxed{\\frac12}", idx=3),
        _gen(p0.problem_id, "x</think>no answer here", idx=4),
        _gen(p1.problem_id, "x</think>$\\boxed{0.02}$", idx=0),  # second gold matches
        _gen(p1.problem_id, "x</think>$\\boxed{0.03}$", idx=1),
    ]
    df = score_generations([p0, p1], gens, workers=1, timeout_s=5.0)
    got = [(r.correct, r.status) for r in df.itertuples()]
    assert got == [
        (True, "ok"),
        (False, "no_think_close"),
        (False, "truncated"),
        (True, "ok"),  # the segment after the LAST </think> is scored
        (False, "no_answer"),
        (True, "ok"),
        (False, "ok"),
    ]
    assert list(df.columns) == list(SAMPLE_COLUMNS)
    assert df.loc[0, "extracted"] is not None


def test_without_a_forced_think_the_whole_response_is_the_answer(tmp_path):
    """A prompt that did not open ``<think>`` (``force_think: false``, the untrained row of a
    student that is not an R1-style reasoner): a response without ``</think>`` is scored on its
    whole text, one with ``</think>`` after its last one, a truncated one stays wrong. With the
    forced ``<think>`` (the default) such a response is ``no_think_close`` as before."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps([{"problem": "p0", "answer": "7"}]))
    (p0,) = load_benchmark(path)
    gens = [
        _gen(p0.problem_id, "3 + 4 = 7, so the answer is $\\boxed{7}$.", idx=0),
        _gen(p0.problem_id, "The answer is $\\boxed{8}$.", idx=1),
        _gen(p0.problem_id, "\\boxed{8} draft</think> so $\\boxed{7}$", idx=2),
        _gen(p0.problem_id, "$\\boxed{7}$ and more", finish="length", idx=3),
    ]
    bare = score_generations([p0], gens, workers=1, require_think_close=False)
    assert [(r.correct, r.status) for r in bare.itertuples()] == [
        (True, "ok"), (False, "ok"), (True, "ok"), (False, "truncated")
    ]
    forced = score_generations([p0], gens, workers=1)
    assert [r.status for r in forced.itertuples()] == ["no_think_close", "no_think_close", "ok", "truncated"]


def test_hanging_answer_is_bounded(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps([{"problem": "p", "answer": "1"}, {"problem": "q", "answer": "2"}]))
    p, q = load_benchmark(path)
    gens = [
        _gen(p.problem_id, "x</think>\\boxed{9^{9^{9^{9}}}}"),  # runs for minutes unbounded
        _gen(q.problem_id, "x</think>\\boxed{2}"),
    ]
    t0 = time.monotonic()
    df = score_generations([p, q], gens, workers=1, timeout_s=1.0)
    elapsed = time.monotonic() - t0
    assert list(df["status"]) == ["timeout", "ok"]
    assert list(df["correct"]) == [False, True]
    assert elapsed < 8.0


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_gold_as_response_scores_at_least_99_percent(name):
    problems = load_benchmark(ROOT / "data" / "benchmarks" / BENCHMARKS[name])
    assert len(problems) == {"math": 500, "aime": 30, "amc": 83, "minerva": 272, "olympiad_bench": 675}[name]
    result = score_gold(problems, workers=2, timeout_s=5.0)
    assert result["n"] == len(problems)
    misses = [(m["index"], m["gold"], m["status"]) for m in result["misses"]]
    assert result["accuracy"] >= 0.99, misses
    assert gold_response("7").endswith("$\\boxed{7}$. I hope it is correct")
