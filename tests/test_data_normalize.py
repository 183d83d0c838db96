"""Schema normalisation: Raw, 220k-flat and MV-only inputs, malformed rows, missing columns."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from redi.data.io import read_jsonl, read_kv_meta
from redi.data.normalize import detect_schema, normalize
from redi.data.schemas import META_NORMALIZE, canonical_schema
from redi.data.synthetic import synthetic_corpus_schema
from redi.ids import problem_id
from test_data_common import raw_row, write_parquet


def test_problem_id_whitespace_normalised():
    assert problem_id("Compute  1 +\n1.") == problem_id(" Compute 1 + 1. ")
    assert len(problem_id("x")) == 16
    assert problem_id("a") != problem_id("b")


def test_raw_schema_with_malformed_rows(tmp_path):
    rows = [
        raw_row("P0", gens=["a", "b"], llama=[True, False], mv=[True, True]),
        raw_row("P1", gens=["a", "b"], llama=[True], mv=[True, True]),  # label length mismatch
        {**raw_row("P2"), "generations": None},
        {
            **raw_row("P3"),
            "generations": [],
            "correctness": {
                "llama_verification": [],
                "math_verify_answer": [],
                "math_verify_reparsed_answer": [],
            },
        },
        {**raw_row("P4"), "problem": None},
        {**raw_row("P5"), "answer": None},
        {**raw_row("P6"), "correctness": None},
        raw_row("P7", gens=["x"], llama=[None], mv=[True], valid=" Yes "),  # null label element -> False
        raw_row("P8", gens=["x", "y"], llama=[True, True], mv=[True, False]),
    ]
    src = write_parquet(rows, tmp_path / "raw.parquet", synthetic_corpus_schema())
    out = normalize(src, tmp_path / "canon.parquet", tmp_path / "rej.jsonl")
    assert out["schema"] == "raw"
    # label lists are judged by curation's rule, never here: P1 and P6 are kept
    assert out["input_rows"] == 9 and out["canonical_rows"] == 5 and out["rejected_rows"] == 4
    assert out["reject_reasons"] == {
        "generations_none": 1,
        "generations_empty": 1,
        "problem_not_string": 1,
        "answer_missing": 1,
    }
    assert out["notes"]["label_llama_null"] == 1 and out["notes"]["label_mv_null"] == 1
    assert out["notes"]["null_label_elements_as_false"] == 1
    rejects = read_jsonl(tmp_path / "rej.jsonl")
    assert sorted(r["row_index"] for r in rejects) == [2, 3, 4, 5]
    assert all(r["step"] == "normalize" and r["reason"] for r in rejects)
    table = pq.read_table(tmp_path / "canon.parquet")
    assert table.schema.equals(canonical_schema())
    canon = table.to_pylist()
    assert [r["row_index"] for r in canon] == [0, 1, 6, 7, 8]
    assert canon[0]["label_llama"] == [True, False] and canon[0]["label_mv"] == [True, True]
    assert canon[1]["label_llama"] == [True]  # kept as it is; curation drops it under a rule reading it
    assert canon[2]["label_llama"] is None and canon[2]["label_mv"] is None
    assert canon[3]["label_llama"] == [False] and canon[3]["problem_is_valid"] == " Yes "
    assert canon[4]["problem_id"] == problem_id("P8") and canon[4]["schema"] == "raw"
    meta = read_kv_meta(tmp_path / "canon.parquet", META_NORMALIZE)
    assert meta["rejected_rows"] == 4 and meta["input_rows"] == 9 and meta["has_problem_is_valid"]


def _flat(problem, gens, llama, mv, complete=None, source="olympiads"):
    return {
        "problem": problem,
        "solution": "",
        "answer": "2",
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "source": source,
        "uuid": "u",
        "is_reasoning_complete": complete if complete is not None else [True] * len(gens),
        "generations": gens,
        "correctness_math_verify": mv,
        "correctness_llama": llama,
        "finish_reasons": ["stop"] * len(gens),
        "correctness_count": 1,
        "messages": [],
    }


def test_flat_220k_schema(tmp_path):
    rows = [
        _flat("P0", ["a", "b"], [True, False], [False, True]),
        _flat("P1", ["a", "b"], [True, False, True], [False, True]),  # mismatch
        _flat("P2", ["a"], None, [True]),  # llama labels missing
        _flat("P3", ["a", "b"], [True, True], [True, True], complete=[True]),  # bad complete -> null
    ]
    src = tmp_path / "flat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = normalize(src, tmp_path / "canon.parquet", tmp_path / "rej.jsonl")
    assert out["schema"] == "flat"
    assert out["reject_reasons"] == {}  # label lists are the curation rule's business
    canon = pq.read_table(tmp_path / "canon.parquet").to_pylist()
    assert [r["row_index"] for r in canon] == [0, 1, 2, 3]
    assert canon[0]["label_llama"] == [True, False] and canon[0]["label_mv"] == [False, True]
    assert canon[0]["problem_is_valid"] is None and canon[0]["is_reasoning_complete"] == [True, True]
    assert canon[0]["finish_reasons"] == ["stop", "stop"]
    assert canon[2]["label_llama"] is None and canon[2]["label_mv"] == [True]
    assert canon[3]["is_reasoning_complete"] is None
    assert not out["has_problem_is_valid"]
    assert out["label_lists"]["label_llama"] == {"field": "correctness_llama", "rows_with_list": 3, "canonical_rows": 4}
    assert out["notes"]["is_reasoning_complete_set_null"] == 1


def test_mv_only_schema_directory_of_parquet(tmp_path):
    # mixed types in one column are not representable in parquet; test non-string generations in jsonl
    d2 = tmp_path / "corpus2"
    d2.mkdir()
    (d2 / "a.jsonl").write_text(
        json.dumps(
            {
                "problem": "P1",
                "answer": "4",
                "generations": ["a", None],
                "correctness_math_verify": [True, False],
            }
        )
        + "\n"
    )
    (d2 / "b.jsonl").write_text(
        json.dumps({"problem": "  ", "answer": "4", "generations": ["a"], "correctness_math_verify": [True]})
        + "\n"
    )
    out = normalize(d2, tmp_path / "c2.parquet", tmp_path / "r2.jsonl")
    assert out["schema"] == "mv_only"
    assert out["reject_reasons"] == {"generation_not_string": 1, "problem_empty": 1}

    d3 = tmp_path / "corpus3"
    write_parquet(
        [{"problem": "P0", "answer": 3, "generations": ["a"], "correctness_math_verify": [True]}],
        d3 / "part-0.parquet",
    )
    write_parquet(
        [
            {
                "problem": "P1",
                "answer": "4",
                "generations": ["a", "b"],
                "correctness_math_verify": [True, False],
            }
        ],
        d3 / "part-1.parquet",
    )
    out = normalize(d3, tmp_path / "c3.parquet", tmp_path / "r3.jsonl")
    assert out["schema"] == "mv_only" and out["canonical_rows"] == 2
    canon = pq.read_table(tmp_path / "c3.parquet").to_pylist()
    assert [r["row_index"] for r in canon] == [0, 1]
    assert canon[0]["label_llama"] is None and canon[0]["source"] == "unknown"
    assert canon[0]["answer"] == "3"  # non-string gold answers are stringified
    assert canon[1]["label_mv"] == [True, False]


def test_no_schema_matches_lists_missing_columns(tmp_path):
    src = write_parquet(
        [{"problem": "P", "answer": "1", "generations": ["a"], "labels": [True]}], tmp_path / "odd.parquet"
    )
    with pytest.raises(ValueError) as err:
        normalize(src, tmp_path / "c.parquet", tmp_path / "r.jsonl")
    msg = str(err.value)
    assert "odd.parquet" in msg
    assert (
        "raw: missing ['problem_is_valid', 'correctness.llama_verification', 'correctness.math_verify_reparsed_answer']"
        in msg
    )
    assert "flat: missing ['correctness_llama', 'correctness_math_verify', 'is_reasoning_complete']" in msg
    assert "mv_only: missing ['correctness_math_verify']" in msg


def test_detect_schema_prefers_raw(tmp_path):
    import pyarrow as pa

    schema = synthetic_corpus_schema().append(pa.field("correctness_math_verify", pa.list_(pa.bool_())))
    assert detect_schema(schema) == "raw"
