"""pass@k, SEM, averages and best-checkpoint selection on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from redi.eval.metrics import (
    benchmark_average,
    correctness_matrix,
    pass_at_k,
    pass_at_k_curve,
    sem,
    summarise,
    tidy_row,
)
from redi.eval.select import select_best, select_best_files


def _samples(matrix, lengths=None, finish=None, status=None):
    rows = []
    for p, row in enumerate(matrix):
        for j, c in enumerate(row):
            rows.append(
                {
                    "problem_id": f"p{p}",
                    "sample_index": j,
                    "text": "",
                    "extracted": None,
                    "correct": bool(c),
                    "status": "ok" if status is None else status[p][j],
                    "length": 10 if lengths is None else lengths[p][j],
                    "finish_reason": "stop" if finish is None else finish[p][j],
                }
            )
    return pd.DataFrame(rows)


def test_pass_at_k_hand_values():
    # n=4, c=1: pass@1 = 1/4; pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 1/2; pass@4 = 1
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 3) == pytest.approx(0.75)
    assert pass_at_k(4, 1, 4) == 1.0
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_pass_at_k_curve_matches_enumeration():
    # exact check against averaging over all k-subsets
    from itertools import combinations

    rng = np.random.default_rng(0)
    m = rng.random((7, 5)) < 0.4
    curve = pass_at_k_curve(m)
    assert list(curve) == ["1", "2", "3", "4", "5"]
    for k in range(1, 6):
        brute = np.mean(
            [np.mean([row[list(s)].any() for s in combinations(range(5), k)]) for row in m]
        )
        assert curve[str(k)] == pytest.approx(brute)
    assert curve["1"] == pytest.approx(m.mean())


def test_sem_and_summary_hand_example():
    # 3 problems x 4 samples; per-sample-index scores P_j = column means
    m = [[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]]
    # P = [2/3, 1/3, 1, 1/3]; mean = 7/12; std(ddof=0) = sqrt(mean((P-7/12)^2))
    p = np.array([2 / 3, 1 / 3, 1, 1 / 3])
    expected_sem = math.sqrt(np.mean((p - 7 / 12) ** 2)) / 2
    lengths = [[5, 7, 9, 100], [1, 2, 3, 4], [10, 10, 10, 10]]
    finish = [["stop", "stop", "stop", "length"]] + [["stop"] * 4] * 2
    status = [["ok", "ok", "ok", "truncated"], ["timeout", "no_answer", "ok", "ok"], ["ok"] * 4]
    s = summarise(_samples(m, lengths, finish, status), 4)
    assert s["pass@1"] == pytest.approx(7 / 12)
    assert s["per_sample_pass@1"] == pytest.approx(list(p))
    assert s["sem"] == pytest.approx(expected_sem)
    assert sem(p) == pytest.approx(expected_sem)
    # not lighteval's stderr (std of per-problem scores / sqrt(N))
    lighteval = np.std([0.75, 0.25, 0.75], ddof=1) / math.sqrt(3)
    assert s["sem"] != pytest.approx(lighteval)
    # pass@2 per problem: c=3 -> 1; c=1 -> 1 - C(3,2)/C(4,2) = 0.5; c=3 -> 1
    assert s["pass@k"]["2"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert s["pass@k"]["4"] == pytest.approx(1.0)
    assert s["n_problems"] == 3 and s["n_samples"] == 4
    assert s["mean_length"] == pytest.approx(sum(map(sum, lengths)) / 12)
    assert s["median_length"] == pytest.approx(8.0)  # sorted: ...,7,9,... -> (7+9)/2
    assert s["max_length"] == 100
    assert s["truncated"] == 1 and s["timeouts"] == 1 and s["no_answer"] == 1
    assert s["generated_tokens"] == sum(map(sum, lengths))
    row = tidy_row({**s, "run": "r", "benchmark": "b"})
    assert [c for c in row if c.startswith("pass@")] == ["pass@1", "pass@2", "pass@3", "pass@4"]


def test_sem_single_sample_is_not_available_and_incomplete_grid_rejected():
    assert summarise(_samples([[1], [0]]), 1)["sem"] is None  # undefined for k = 1, never 0.0
    df = _samples([[1, 0], [0, 1]])
    with pytest.raises(ValueError):
        correctness_matrix(df.iloc[:-1], 2)  # a problem with fewer samples than claimed
    with pytest.raises(ValueError):
        correctness_matrix(df, 3)


def _m(bench, p1, per, k=None, run="r", ckpt="final", step=None):
    return {
        "run": run,
        "checkpoint": ckpt,
        "step": step,
        "benchmark": bench,
        "n_samples": len(per),
        "pass@1": p1,
        "sem": 0.0,
        "pass@k": k or {"1": p1},
        "per_sample_pass@1": per,
        "model_path": f"/models/{ckpt}",
    }


def test_benchmark_average():
    ms = [
        _m("a", 0.5, [0.4, 0.6], {"1": 0.5, "2": 0.7}),
        _m("b", 0.1, [0.1, 0.1], {"1": 0.1, "2": 0.2}),
        _m("c", 0.3, [0.2, 0.4], {"1": 0.3, "2": 0.4}),
        _m("d", 0.7, [0.8, 0.6], {"1": 0.7, "2": 0.9}),
        _m("e", 0.4, [0.3, 0.5], {"1": 0.4, "2": 0.6}),
    ]
    avg = benchmark_average(ms, expected="abcde")
    assert avg["pass@1"] == pytest.approx(2.0 / 5)
    assert avg["pass@k"]["2"] == pytest.approx(2.8 / 5)
    # A_j = mean over benchmarks of P_bj = [1.8/5, 2.2/5]; SEM = std([0.36, 0.44]) / sqrt(2)
    assert avg["per_sample_pass@1"] == pytest.approx([0.36, 0.44])
    assert avg["sem"] == pytest.approx(0.04 / math.sqrt(2))
    with pytest.raises(ValueError):
        benchmark_average(ms[:4], expected="abcde")
    with pytest.raises(ValueError):
        benchmark_average(ms + [ms[0]])
    with pytest.raises(ValueError):
        benchmark_average(ms, expected=["a", "b", "c", "d", "x"])
    mixed = benchmark_average([ms[0], _m("f", 0.2, [0.2, 0.2, 0.2])])
    assert mixed["sem"] is None and mixed["pass@1"] == pytest.approx(0.35)


def test_select_best_rule(tmp_path):
    ms = [
        _m("math", 0.30, [0.3], ckpt="step-100", step=100),
        _m("math", 0.50, [0.5], ckpt="step-200", step=200),
        _m("math", 0.50, [0.5], ckpt="step-300", step=300),  # tie -> later step wins
        _m("math", 0.45, [0.45], ckpt="step-400", step=400),
    ]
    best = select_best(ms, run="r")
    assert (best["checkpoint"], best["step"], best["pass@1"]) == ("step-300", 300, 0.5)
    assert best["path"] == "/models/step-300"
    assert [c["step"] for c in best["candidates"]] == [100, 200, 300, 400]
    best = select_best(ms[:2], checkpoint_paths={"step-200": "ckpts/checkpoint-200"})
    assert best["checkpoint"] == "step-200" and best["path"] == "ckpts/checkpoint-200"
    with pytest.raises(ValueError):
        select_best([ms[0], _m("aime", 0.9, [0.9], ckpt="step-9", step=9)])
    with pytest.raises(ValueError):
        select_best(ms, run="other")
    with pytest.raises(ValueError):
        select_best([])
    paths = []
    for m in ms:
        p = tmp_path / m["checkpoint"] / "metrics.json"
        p.parent.mkdir()
        p.write_text(json.dumps(m))
        paths.append(p)
    out = tmp_path / "best.json"
    select_best_files(paths, out, run="r")
    assert json.loads(out.read_text())["checkpoint"] == "step-300"
