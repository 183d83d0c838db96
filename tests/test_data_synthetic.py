"""Synthetic teacher corpus: schema, determinism, held-out split, label semantics."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from redi.data.synthetic import (
    EXCLUDED_SOURCE,
    SynthConfig,
    add_no_carry,
    generate,
    sub_no_borrow,
    write_corpus,
)

SMALL = {"n_train_problems": 400, "n_test_problems": 60}
RAW_COLUMNS = {
    "problem",
    "solution",
    "answer",
    "problem_type",
    "question_type",
    "source",
    "uuid",
    "is_reasoning_complete",
    "generations",
    "correctness",
    "finish_reasons",
    "correctness_count",
    "problem_is_valid",
    "solution_is_valid",
}
BOXED = re.compile(r"\\boxed\{(.*)\}\$\. I hope it is correct$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    stats = write_corpus(SMALL, d / "train.parquet", d / "test.json")
    return d, stats


def test_schema_and_files(corpus):
    d, stats = corpus
    table = pq.read_table(d / "train.parquet")
    assert set(table.column_names) == RAW_COLUMNS
    assert table.num_rows == SMALL["n_train_problems"] == stats["rows"]
    corr = table.schema.field("correctness").type
    assert {f.name for f in corr} == {
        "llama_verification",
        "math_verify_answer",
        "math_verify_reparsed_answer",
    }
    test = json.loads((d / "test.json").read_text())
    assert len(test) == SMALL["n_test_problems"]
    assert all(set(x) == {"problem", "answer"} for x in test)


def test_deterministic_for_seed(tmp_path):
    a = write_corpus({**SMALL, "seed": 3}, tmp_path / "a.parquet", tmp_path / "a.json")
    b = write_corpus({**SMALL, "seed": 3}, tmp_path / "b.parquet", tmp_path / "b.json")
    assert a == b
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    rows_c, _ = generate({**SMALL, "seed": 4})
    rows_a, _ = generate({**SMALL, "seed": 3})
    assert [r["problem"] for r in rows_a] != [r["problem"] for r in rows_c]


def test_test_problems_never_in_train():
    rows, test = generate({"n_train_problems": 1500, "n_test_problems": 300, "seed": 1})
    train = {r["problem"] for r in rows if r["problem"] is not None}
    assert len(train) >= 1500 - SynthConfig().malformed_rows
    test_problems = [t["problem"] for t in test]
    assert len(set(test_problems)) == len(test_problems)
    assert not set(test_problems) & train


def test_corpus_contents_and_labels():
    rows, _ = generate({"n_train_problems": 2000, "n_test_problems": 10})
    good = [r for r in rows if r["generations"] and r["correctness"] and r["problem"] and r["answer"]]
    kinds = len(rows) - len(good)
    assert kinds >= 4  # malformed rows exist (None/empty generations, missing problem/answer/labels)
    assert any(r["source"] == EXCLUDED_SOURCE for r in rows)
    assert any(r["problem_is_valid"].strip().lower() != "yes" for r in rows)
    n_gen = n_disagree = n_correct = 0
    for r in good:
        c = r["correctness"]
        if len(c["llama_verification"]) != len(r["generations"]):
            continue  # the label-length malformed row
        assert c["math_verify_answer"] == c["math_verify_reparsed_answer"]
        for g, truth, judge, fin in zip(
            r["generations"], c["math_verify_reparsed_answer"], c["llama_verification"], r["finish_reasons"]
        ):
            n_gen += 1
            n_correct += truth
            n_disagree += truth != judge
            assert g.startswith("<think>\n")
            m = BOXED.search(g)
            if fin == "length":
                assert "</think>" not in g and not truth
                continue
            assert "</think>" in g and m, g
            assert (m.group(1) == r["answer"]) == truth, (r["problem"], g, r["answer"])
    assert 0.4 < n_correct / n_gen < 0.7
    assert 0.01 < n_disagree / n_gen < 0.06
    avg_chars = sum(len(g) for r in good for g in r["generations"]) / n_gen
    assert 100 < avg_chars < 300


def test_mistake_helpers():
    assert add_no_carry(37, 45) == 72
    assert add_no_carry(12, 13) == 25
    assert sub_no_borrow(82, 18) == 76
    assert sub_no_borrow(58, 23) == 35


def test_cfg_validation():
    with pytest.raises(ValueError, match="no_such_key"):
        SynthConfig.from_dict({"no_such_key": 1})
    with pytest.raises(ValueError):
        SynthConfig.from_dict({"min_generations": 3, "max_generations": 2})
